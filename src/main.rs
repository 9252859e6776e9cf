//! The `dmlviz` binary: a thin layer over the library (see `dmlviz --help`).
//!
//! Exit codes (docs/DESIGN.md, "Exit codes"): 0 for success and for `--help` and
//! `--version`; 1 for any user error, a mistyped flag included, with a message on
//! stderr; 2 for internal errors only (a panic: a bug in dmlviz).

mod cli;

/// Set to `1`, the binary panics before doing anything: the one way the tests reach
/// the internal-error path (exit code 2), which no user input may reach.
const TEST_PANIC: &str = "DMLVIZ_TEST_PANIC";

fn main() {
    dmlviz::allocator::keep_freed_memory();
    let code = match std::panic::catch_unwind(run) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => match e.downcast_ref::<clap::Error>() {
            // clap formats its own messages; help and version go to stdout.
            Some(usage) => {
                let _ = usage.print();
                if usage.use_stderr() {
                    1
                } else {
                    0
                }
            }
            None => {
                eprintln!("error: {e:#}");
                1
            }
        },
        // The panic message has already been printed by the default hook.
        Err(_) => {
            eprintln!("internal error: this is a bug in dmlviz, please report it");
            2
        }
    };
    std::process::exit(code);
}

fn run() -> anyhow::Result<()> {
    if std::env::var_os(TEST_PANIC).is_some_and(|v| v == "1") {
        panic!("{TEST_PANIC}=1: a deliberate panic, to test the exit code of internal errors");
    }
    cli::run()
}
