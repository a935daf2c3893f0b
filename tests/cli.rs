//! The command-line tests: every command driven through the real binary
//! (`CARGO_BIN_EXE_stratum`), as scripts use it. One test binary; one
//! module per area under `tests/cli/`. `util` (a fresh store per test, and
//! what every run is expected to print) sits on the runner every test binary
//! shares (`run`, tests/support/run.rs). One tier: `cargo test --release
//! --test cli`, a few seconds; one area alone with a filter (`errors::`).

#[path = "cli/help.rs"]
mod help;
#[allow(dead_code)]
#[path = "support/run.rs"]
mod run;
#[path = "cli/util.rs"]
mod util;

#[path = "cli/batch.rs"]
mod batch;
#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/conventions.rs"]
mod conventions;
#[path = "cli/diff_and_select.rs"]
mod diff_and_select;
#[path = "cli/durability.rs"]
mod durability;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/holes.rs"]
mod holes;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/memory_bounds.rs"]
mod memory_bounds;
#[path = "cli/operator.rs"]
mod operator;
#[path = "cli/rescue.rs"]
mod rescue;
#[path = "cli/round_trip.rs"]
mod round_trip;
#[path = "cli/spill.rs"]
mod spill;
#[path = "cli/values.rs"]
mod values;
#[path = "cli/verify_bounds.rs"]
mod verify_bounds;
