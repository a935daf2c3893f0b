//! `--on-conflict` for `load` and `apply`: the command line's names for
//! the library's [`stratum::OnConflict`], which holds the rule (see
//! `stratum::conflict`).

use clap::ValueEnum;

/// The values of `--on-conflict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OnConflictArg {
    /// Refuse the whole batch (exit 4), as without the flag.
    #[default]
    Fail,
    /// Replace the document holding the key, keeping its id.
    Replace,
    /// Leave the document holding the key as it is.
    Skip,
}

impl From<OnConflictArg> for stratum::OnConflict {
    fn from(a: OnConflictArg) -> stratum::OnConflict {
        match a {
            OnConflictArg::Fail => stratum::OnConflict::Fail,
            OnConflictArg::Replace => stratum::OnConflict::Replace,
            OnConflictArg::Skip => stratum::OnConflict::Skip,
        }
    }
}
