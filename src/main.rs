//! The `stratum` binary: parse the command line, run it, and turn the
//! outcome into an exit code (chosen in `exit.rs` only).

mod cli;
mod exit;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        // Help and version print as they are; usage errors as one line.
        Err(err) => return exit::usage(&err),
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
