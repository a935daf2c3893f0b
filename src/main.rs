//! The `stratum` binary: parse the command line, run it, and turn the
//! outcome into an exit code (chosen in `exit.rs` only).

mod cli;
mod exit;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, run};

fn main() -> ExitCode {
    // Usage errors exit 2 from here, with clap's own message.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}
