//! Reading `stratum --help`, shared by the CLI tests and `tests/generated.rs`
//! (both include this file with `#[path]`), so that the list of commands the
//! conventions and the man page are checked against is read one way.

/// The subcommand names listed under `Commands:` in `stratum --help`
/// output, without clap's own `help`.
pub fn subcommands(help: &str) -> Vec<String> {
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section");
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|n| n != "help")
        .collect()
}
