//! The `stratum` binary: parse the command line, run it, and turn the
//! outcome into an exit code (chosen in `exit.rs` only).
//!
//! `main` is the C entry point, not std's: std's start-up reads
//! `/proc/self/maps` and sets up a guard-page handler for the main thread
//! (seventeen system calls): 4-6% of a `get` process on the benchmark's
//! machine, where every command here is short-lived and shallow. What of
//! it this binary relies on is done in `start` instead.

// The test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

mod cli;
mod exit;

use std::io::Write;

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    std::ffi::c_int::from(entry())
}

/// The whole program. Under test the harness is the entry point instead.
#[cfg_attr(test, allow(dead_code))]
fn entry() -> u8 {
    start();
    // A panic is a bug: it exits 9 (internal error) like any other broken
    // invariant, after the hook has printed where it happened.
    let code = std::panic::catch_unwind(run).unwrap_or_else(|_| exit::panicked());
    // std's runtime would flush stdout on the way out; nothing else will.
    let _ = std::io::stdout().flush();
    code
}

fn run() -> u8 {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        // Help and version print as they are; usage errors as one line.
        Err(err) => return exit::usage(&err),
    };
    match cli::run(cli) {
        Ok(()) => 0,
        Err(err) => exit::report(&err),
    }
}

/// std's start-up, as much of it as this binary needs.
fn start() {
    // SAFETY: plain system calls on the process's own descriptors and
    // signal table, made before any other thread exists.
    unsafe {
        // A closed stdin, stdout or stderr is given /dev/null, or the first
        // file opened (a segment) would take its number and a `println!`
        // would write into the store.
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        if libc::poll(fds.as_mut_ptr(), 3, 0) != -1 {
            for p in fds {
                if p.revents & libc::POLLNVAL != 0
                    && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd
                {
                    // Too early for anything but giving up, as std does.
                    libc::abort();
                }
            }
        }
        // A closed pipe on stdout comes back as EPIPE, which a read command
        // treats as success (`stratum dump | head -1`), not as a signal.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
