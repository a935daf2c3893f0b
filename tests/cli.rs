//! The command-line tests: every command driven through the real binary
//! (`CARGO_BIN_EXE_stratum`), as scripts use it. One test binary; one
//! module per area under `tests/cli/`.

#[path = "cli/help.rs"]
mod help;
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
#[path = "cli/operator.rs"]
mod operator;
#[path = "cli/rescue.rs"]
mod rescue;
#[path = "cli/round_trip.rs"]
mod round_trip;
#[path = "cli/values.rs"]
mod values;
#[path = "cli/verify_bounds.rs"]
mod verify_bounds;
