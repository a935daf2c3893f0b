//! `man/stratum.1` and `completions/*` are generated from the clap
//! definitions and committed; these tests fail when they drift from the code
//! (run `STRATUM_BLESS=1 cargo test --test generated` to rewrite them), and
//! check that they work: the man page renders without warnings and the bash
//! completion completes subcommand names.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `content` with the committed file, or rewrites it when blessing.
fn check_or_bless(rel: &str, content: &[u8]) {
    let path = root().join(rel);
    if std::env::var_os("STRATUM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == content,
        "{rel} is out of date with the clap definitions; run `STRATUM_BLESS=1 cargo test --test generated` and commit the result"
    );
}

/// Runs the binary and returns its standard output.
fn stratum(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(args)
        .output()
        .expect("stratum runs");
    assert!(
        out.status.success(),
        "stratum {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn man_page() -> String {
    String::from_utf8(stratum(&["man"])).expect("the man page is UTF-8")
}

/// The subcommand names, from the top-level help.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(stratum(&["--help"])).unwrap();
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section");
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "help")
        .collect()
}

#[test]
fn man_page_is_up_to_date() {
    check_or_bless("man/stratum.1", man_page().as_bytes());
}

#[test]
fn completions_are_up_to_date() {
    for (shell, file) in [
        ("bash", "completions/stratum.bash"),
        ("zsh", "completions/_stratum"),
        ("fish", "completions/stratum.fish"),
    ] {
        check_or_bless(file, &stratum(&["completions", shell]));
    }
}

#[test]
fn man_page_covers_every_command_and_renders_without_warnings() {
    let page = man_page();
    let names = subcommands();
    assert!(names.len() >= 16, "{names:?}");
    for name in names {
        assert!(
            page.contains(&format!(".SS {name}")),
            "{name} missing from the man page"
        );
    }
    for needle in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "STRATUM_DIR",
        "FILES",
        "GUARANTEES",
        "JSON OUTPUT",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    let Ok(out) = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(root().join("man/stratum.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
    else {
        panic!("man is not installed (apt-get install man-db groff-base)");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man page warnings:\n{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("create-doc") && text.contains("EXIT STATUS"),
        "{text}"
    );
}

#[test]
fn man_page_shows_json_shapes_as_code_and_no_flag_defaults() {
    let page = man_page();
    assert!(
        !page.contains("[default: false]"),
        "a flag's default is noise"
    );
    // Every indented shape in a command's help is a code block, not prose.
    let get = page
        .split(".SS get\n")
        .nth(1)
        .and_then(|rest| rest.split(".SS ").next())
        .expect("a get section");
    assert!(
        get.contains(".EX\n  {\"id\", \"category\", \"version\", \"body\",\n"),
        "{get}"
    );
    // The fields of every --json report are named, as code.
    let json = page
        .split(".SH JSON OUTPUT\n")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("a JSON OUTPUT section");
    for fields in [
        r#"{"compacted", "dry_run", "reason", "segments", "bytes", "live_bytes","#,
        r#"{"dest", "linked", "copied", "bytes", "verified"}"#,
        r#"{"quarantined": [S], "records_kept", "damaged_bytes", "compacted"}"#,
        r#"{"documents", "files", "good_records", "damaged_bytes"}"#,
        r#"{"id", "category", "version", "inputs", "outputs", "body_bytes"}"#,
    ] {
        let at = json
            .find(fields)
            .unwrap_or_else(|| panic!("{fields} missing"));
        let before = &json[..at];
        assert!(
            before.rfind(".EX\n") > before.rfind(".EE\n"),
            "{fields} is not inside .EX"
        );
    }
    // The man page and the README say the same about --no-sync.
    let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = flat(&std::fs::read_to_string(root().join("README.md")).unwrap());
    let page = flat(&page);
    for words in [
        "killed process loses nothing",
        "power loss can lose",
        "refuses to open until `stratum repair` keeps every intact record",
    ] {
        assert!(readme.contains(words), "README: {words}");
    }
    for words in [
        "killed process loses nothing",
        "power loss can lose",
        "refuses to open until \\fBstratum repair\\fR keeps every intact record",
    ] {
        assert!(page.contains(words), "man page: {words}");
    }
}

#[test]
fn bash_completion_completes_subcommand_names() {
    let script = root().join("completions/stratum.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(stratum cre); COMP_CWORD=1; COMP_LINE='stratum cre'; COMP_POINT=11; _stratum stratum cre stratum; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            shell_quote(&script)
        ))
        .output()
        .expect("bash runs");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got.trim(), "create-doc");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(stratum d); COMP_CWORD=1; COMP_LINE='stratum d'; COMP_POINT=9; _stratum stratum d stratum; printf '%s\\n' \"${{COMPREPLY[@]}}\" | sort",
            shell_quote(&script)
        ))
        .output()
        .expect("bash runs");
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(got.contains("delete-doc") && got.contains("dump"), "{got}");
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn every_command_help_has_an_example() {
    for name in subcommands() {
        let help = String::from_utf8(stratum(&[&name, "--help"])).unwrap();
        assert!(
            help.contains("Examples:"),
            "`stratum {name} --help` has no example"
        );
        let summary = help.lines().next().unwrap_or("");
        assert!(
            !summary.trim().is_empty() && !summary.starts_with("Usage:"),
            "{name} has no one-line summary"
        );
    }
}
