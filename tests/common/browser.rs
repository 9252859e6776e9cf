//! Headless Chromium for the browser tests, driven through the DevTools protocol over
//! a pipe (`--remote-debugging-pipe`: messages are JSON terminated by a NUL byte, the
//! browser reads fd 3 and writes fd 4), so no port, websocket or extra crate is
//! needed. The browser is `$CHROMIUM`, else `chromium` or `chromium-browser` on the
//! PATH; [`chromium_or_skip`] says what to do without one.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The browser to use; without one, `None` after printing why (the test then passes),
/// or a panic when `DMLVIZ_REQUIRE_BROWSER` is set (CI).
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        if std::env::var_os("DMLVIZ_REQUIRE_BROWSER").is_some() {
            panic!("DMLVIZ_REQUIRE_BROWSER is set but no chromium was found (set CHROMIUM or install Debian's chromium)");
        }
        println!("SKIPPED: no chromium on PATH (install Debian's chromium, or set CHROMIUM); set DMLVIZ_REQUIRE_BROWSER to make this a failure");
    }
    found
}

/// How long one protocol call or page load may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium binary to use, if any.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// A headless Chromium driven over the DevTools pipe.
pub struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    /// Events received while waiting for a reply, not yet looked at.
    events: VecDeque<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser with a fresh profile. Chromium now and then exits during
    /// start-up while the tests load both cores; one that does not answer its first
    /// command is started again (three tries in all).
    pub fn launch(chromium: &Path) -> Browser {
        for _ in 0..2 {
            let mut browser = Browser::spawn(chromium);
            if browser.answers() {
                return browser;
            }
        }
        Browser::spawn(chromium)
    }

    /// Whether the browser replies to `Browser.getVersion`.
    fn answers(&mut self) -> bool {
        let id = self.send(None, "Browser.getVersion", json!({}));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["id"].as_u64() == Some(id) => return m.get("error").is_none(),
                Ok(m) => self.events.push_back(m),
                Err(_) => return false,
            }
        }
    }

    fn spawn(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let flags = "--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-component-update \
                     --disable-sync --disable-extensions --hide-scrollbars --mute-audio --remote-debugging-pipe";
        // The shell maps our pipes onto the browser's fd 3 (commands) and fd 4 (replies).
        let script = format!(
            "exec \"$0\" {flags} --user-data-dir=\"$1\" about:blank 3<&0 4>&1 0</dev/null 1>&2"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(chromium)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            input,
            messages,
            events: VecDeque::new(),
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a command (to a page session, or the browser) and waits for its result.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["id"].as_u64() == Some(id) => {
                    if let Some(e) = m.get("error") {
                        panic!("{method} failed: {e}");
                    }
                    return m["result"].clone();
                }
                Ok(m) => self.events.push_back(m),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{method}: no reply from chromium in {TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: chromium exited"),
            }
        }
    }

    /// Writes a command; returns its id.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        // A browser that exited shows as a closed pipe on the next read.
        let _ = self
            .input
            .write_all(&bytes)
            .and_then(|_| self.input.flush());
        id
    }

    /// Waits for an event of `session` named `method`.
    pub fn wait_event(&mut self, session: &str, method: &str) {
        if let Some(i) = self
            .events
            .iter()
            .position(|e| e["method"] == method && e["sessionId"] == session)
        {
            self.events.remove(i);
            return;
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self
                .messages
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(m) if m["method"] == method && m["sessionId"] == session => return,
                Ok(m) => self.events.push_back(m),
                Err(e) => panic!("waiting for {method}: {e:?}"),
            }
        }
    }

    /// Takes the errors reported so far for `session`: exceptions, `console.error`
    /// and browser log entries of level error (failed resource loads among them).
    pub fn take_errors(&mut self, session: &str) -> Vec<String> {
        while let Ok(m) = self.messages.try_recv() {
            self.events.push_back(m);
        }
        let mut errors = Vec::new();
        self.events.retain(|e| {
            if e["sessionId"] != session {
                return true;
            }
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    errors.push(format!("exception: {}", p["exceptionDetails"]))
                }
                Some("Runtime.consoleAPICalled")
                    if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                {
                    errors.push(format!("console.{}: {}", p["type"], p["args"]))
                }
                Some("Log.entryAdded") if p["entry"]["level"] == "error" => errors.push(format!(
                    "{}: {} {}",
                    p["entry"]["source"], p["entry"]["text"], p["entry"]["url"]
                )),
                _ => {}
            }
            false
        });
        errors
    }

    /// Opens a new tab and returns its target id and session id.
    pub fn new_page(&mut self) -> (String, String) {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(Some(&session), method, json!({}));
        }
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        (target, session)
    }

    /// Evaluates JavaScript in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expression}: {e}");
        }
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes standard base64 (the screenshot data).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | x << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// File URL of a path (percent-encoded).
pub fn file_url(path: &Path) -> String {
    format!(
        "file://{}",
        dmlviz::html::url(&path.canonicalize().unwrap().display().to_string())
            .replace("&amp;", "&")
    )
}
