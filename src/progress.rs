//! Progress bars on stderr for every step that takes over a second (training epochs,
//! embedding, saliency batches, downloads, projection steps, study runs). Hidden under
//! `--quiet` and when stderr is not a terminal (a log file, a test), so nothing but
//! the notes reaches a file.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

/// Every drawn bar belongs to one set, so bars of work running side by side (the two
/// training phases) stack on their own lines instead of overwriting each other.
static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// Set once by the command line's `--quiet`: a display preference of the process,
/// like a log level, so that library functions need no `quiet` parameter.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Hides every bar made from now on (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// Whether bars are drawn: not quiet, and stderr is a terminal.
pub fn visible() -> bool {
    !QUIET.load(Ordering::SeqCst) && std::io::stderr().is_terminal()
}

/// One progress bar: `label [=====>    ] done/total message (elapsed, eta)`.
pub struct Progress {
    bar: ProgressBar,
    /// Where each [`Progress::stage`] began, for the benchmarks' per-stage times.
    stages: Mutex<Vec<(String, Instant)>>,
}

impl Progress {
    /// A bar of `total` units, drawn only when [`visible`].
    pub fn new(total: u64, label: &str) -> Progress {
        if !visible() {
            return Progress::hidden();
        }
        let bar = BARS.add(ProgressBar::new(total));
        // The template is a constant: it parses (a test builds a visible one too).
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("constant progress template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress {
            bar,
            stages: Mutex::default(),
        }
    }

    /// A bar that draws nothing (a caller logging lines instead).
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            stages: Mutex::default(),
        }
    }

    /// A bar over named steps (`project`'s kNN graph, layout, sprites...): `steps`
    /// long, each [`Progress::step`] shows its name.
    pub fn steps(steps: usize, label: &str) -> Progress {
        Progress::new(steps as u64, label)
    }

    /// Marks `n` more units done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Starts the step called `name` (the previous one, if any, is done).
    pub fn step(&self, name: &str) {
        if self.bar.message().is_empty() && self.bar.position() == 0 {
            self.bar.set_message(name.to_string());
        } else {
            self.bar.inc(1);
            self.bar.set_message(name.to_string());
        }
    }

    /// Sets the number of units (when it is known only later).
    pub fn set_length(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// Sets the units done so far.
    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Sets the text after the counts.
    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Shows `message` as a stage of the current step (UMAP's kNN graph, spectral start,
    /// SGD) and notes when it began, for [`Progress::stage_seconds`].
    pub fn stage(&self, message: String) {
        self.bar.set_message(message.clone());
        if let Ok(mut stages) = self.stages.lock() {
            stages.push((message, Instant::now()));
        }
    }

    /// Each stage's message and seconds, the last one up to now.
    pub fn stage_seconds(&self) -> Vec<(String, f64)> {
        let now = Instant::now();
        let stages = match self.stages.lock() {
            Ok(stages) => stages.clone(),
            Err(_) => return Vec::new(),
        };
        let ends = stages.iter().skip(1).map(|(_, t)| *t).chain([now]);
        stages
            .iter()
            .zip(ends)
            .map(|((name, start), end)| (name.clone(), (end - *start).as_secs_f64()))
            .collect()
    }

    /// Prints a line on stderr whatever it is (terminal, file, `--quiet`), above the bar.
    pub fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Runs `f` with the bar cleared (for other output on the terminal).
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.bar.suspend(f)
    }

    /// Completes the bar, leaving it on the terminal.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// Whether this bar draws anything.
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_hidden_without_a_terminal_and_under_quiet() {
        // The test harness's stderr is captured or a pipe under `cargo test`; a terminal
        // is possible when run by hand, so only the quiet half is unconditional.
        let bar = Progress::new(3, "test");
        assert_eq!(bar.is_drawn(), std::io::stderr().is_terminal());
        set_quiet(true);
        assert!(!Progress::new(3, "quiet").is_drawn());
        assert!(!visible());
        set_quiet(false);
    }

    #[test]
    fn steps_count_what_is_done() {
        let bar = Progress::hidden();
        bar.bar.set_length(3);
        bar.step("kNN graph");
        assert_eq!(bar.bar.position(), 0);
        bar.step("layout");
        bar.step("sprites");
        assert_eq!(bar.bar.position(), 2);
        assert_eq!(bar.bar.message(), "sprites");
        bar.finish();
    }

    #[test]
    fn stages_are_timed_in_order() {
        let bar = Progress::hidden();
        bar.stage("first".into());
        std::thread::sleep(std::time::Duration::from_millis(20));
        bar.stage("second".into());
        let times = bar.stage_seconds();
        assert_eq!(times.len(), 2);
        assert_eq!(
            (times[0].0.as_str(), times[1].0.as_str()),
            ("first", "second")
        );
        assert!(times[0].1 >= 0.02 && times[1].1 < times[0].1, "{times:?}");
        assert_eq!(bar.bar.message(), "second");
    }
}
