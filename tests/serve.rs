//! `dmlviz serve` as real processes over loopback, two of them on one real PostgreSQL
//! (started by the test): predictions, a class enrolled through one server recognised
//! by the other, all-or-nothing enrolment, the token, bad images, the body limit, a
//! database restart without restarting the servers, a server killed mid-enrolment
//! (its class whole or absent), and Ctrl-C.

mod common;

use common::{dmlviz, ok, tiny_run};
use dmlviz::bench::serve::{kill_during_enrolment, KillAt, ServerProcess};
use dmlviz::pg_gallery::local_cluster::LocalCluster;
use dmlviz::serve::client::{multipart, request, Response};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A running server, killed when dropped (also when the test panics).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `dmlviz serve` with `args` on a free loopback port and waits for its line.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dmlviz"))
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], &[]).unwrap()
    }

    fn predict(&self, image: &[u8]) -> Response {
        request(self.addr, "POST", "/predict?k=3", &[], image).unwrap()
    }

    fn predict_explained(&self, image: &[u8]) -> Response {
        request(
            self.addr,
            "POST",
            "/predict?k=3&explain=gradcam",
            &[],
            image,
        )
        .unwrap()
    }

    fn enrol(&self, class: &str, files: &[(&str, &[u8])], token: Option<&str>) -> Response {
        let (kind, body) = multipart(files);
        let mut headers = vec![("Content-Type", kind)];
        if let Some(t) = token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        request(
            self.addr,
            "POST",
            &format!("/classes/{class}/images"),
            &headers,
            &body,
        )
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn two_servers_share_a_postgres_gallery_and_survive_its_restart() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cluster = LocalCluster::start(root).unwrap();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "epshn", "phases = [\"all\"]\n");
    let run_s = run.to_str().unwrap();
    ok(dmlviz(&["index", "export", "--run", run_s, "--to", &url]));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_s = token_file.to_str().unwrap();

    // Write-enabled without a token: refused before it listens.
    let refused = dmlviz(&["serve", "--run", run_s, "--addr", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token-file"));

    let common = ["--run", run_s, "--index", &url, "--token-file", token_s];
    let a = Server::start(&[&common[..], &["--max-body-mib", "1"][..]].concat());
    let b = Server::start(&common);
    let health = a.get("/health");
    assert_eq!(health.status, 200, "{}", body(&health));
    assert_eq!(health.json().unwrap()["images"], 40);

    let dog = root.join("fixtures/emoji-cub/images/005.dog");
    let google = std::fs::read(dog.join("google.png")).unwrap();
    let twitter = std::fs::read(dog.join("twitter.png")).unwrap();
    let p = a.predict(&twitter);
    assert_eq!(p.status, 200, "{}", body(&p));
    assert_eq!(p.json().unwrap()["neighbours"].as_array().unwrap().len(), 3);

    // Bad requests: an undecodable image, no token, a wrong token, too large a body,
    // an unknown class, one bad image among good ones (nothing of it is stored).
    let bad = a.predict(b"definitely not an image");
    assert_eq!(bad.status, 400, "{}", body(&bad));
    assert!(bad.json().unwrap()["error"].as_str().unwrap().len() > 5);
    assert_eq!(a.enrol("dog", &[("g.png", &google)], None).status, 401);
    assert_eq!(
        a.enrol("dog", &[("g.png", &google)], Some("wrong")).status,
        403
    );
    assert_eq!(a.predict(&vec![0u8; 2 << 20]).status, 413);
    assert_eq!(a.get("/classes/no-such-class").status, 404);
    let mixed = a.enrol(
        "half",
        &[("g.png", &google), ("x.png", b"junk")],
        Some(TOKEN),
    );
    assert_eq!(mixed.status, 400, "{}", body(&mixed));
    assert!(body(&mixed).contains("x.png"));
    assert_eq!(b.get("/classes/half").status, 404);

    // Enrolled through one server, recognised by the other.
    let done = a.enrol(
        "dog",
        &[("g.png", &google), ("t.png", &twitter)],
        Some(TOKEN),
    );
    assert_eq!(done.status, 201, "{}", body(&done));
    assert_eq!(done.json().unwrap()["gallery_size"], 42);
    let seen = b.predict(&twitter).json().unwrap();
    assert_eq!(seen["nearest"], "dog", "{seen}");
    assert_eq!(b.get("/classes/dog").json().unwrap()["images"], 2);

    // The database goes down: 503 with a message; back up: answers again, no restart.
    cluster.kill().unwrap();
    let down = b.predict(&twitter);
    assert_eq!(down.status, 503, "{}", body(&down));
    assert!(body(&down).contains("unavailable"), "{}", body(&down));
    assert_eq!(b.get("/health").status, 503);
    cluster.resume().unwrap();
    let back = b.predict(&twitter);
    assert_eq!(back.status, 200, "{}", body(&back));
    assert_eq!(back.json().unwrap()["nearest"], "dog");

    // A server killed (SIGKILL) while PostgreSQL shows its 64-image enrolment's
    // transaction open: the class is wholly present or wholly absent.
    let common_owned: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    let exe = Path::new(env!("CARGO_BIN_EXE_dmlviz"));
    let mut victim = ServerProcess::spawn(exe, &common_owned).unwrap();
    let killed = kill_during_enrolment(
        &cluster,
        &mut victim,
        TOKEN,
        "killed",
        &google,
        64,
        KillAt::AfterTransactionOpenMs(0),
    )
    .unwrap();
    assert!(
        killed.whole_or_absent(),
        "half an enrolment stored: {killed:?}"
    );
    assert!(killed.rows == 0 || killed.rows == 64, "{killed:?}");
    assert_eq!(
        b.get("/classes/killed").status,
        if killed.rows == 0 { 404 } else { 200 }
    );

    // Grad-CAM rides along as a PNG in the JSON.
    let cam = a.predict_explained(&twitter);
    assert_eq!(cam.status, 200, "{}", body(&cam));
    let png = cam.json().unwrap()["gradcam_png_base64"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        png.starts_with("iVBORw0KGgo"),
        "a base64 PNG: {}",
        &png[..20.min(png.len())]
    );

    // Ctrl-C: the server stops by itself, successfully.
    let mut a = a;
    let pid = a.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(a.child.wait().unwrap().success());
}
