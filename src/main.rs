//! The `dmlviz` binary: a thin layer over the library (see `dmlviz --help`).
//! Exit codes: 0 success, 1 user error (bad input, with a message), 2 internal error.

mod cli;

fn main() {
    let code = match std::panic::catch_unwind(cli::run) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            1
        }
        // The panic message has already been printed by the default hook.
        Err(_) => {
            eprintln!("internal error: this is a bug in dmlviz, please report it");
            2
        }
    };
    std::process::exit(code);
}
