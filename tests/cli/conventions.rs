//! The conventions of the tools people already like (issue 13): `-q` that
//! means nothing on success, one-line usage errors, `--json` everywhere,
//! `--color`, global options listed once, values that start with `-`,
//! human sizes, `--if-exists`, one stdin rule, and the README's own lines
//! (quick start, fixture check, cron) run as written.

use std::path::Path;
use std::process::Command;

use crate::help::subcommands;
use crate::util::{BIN, TestStore, in_terminal, in_terminal_run, json, report, require, run_at};

/// Runs with `-q` and expects exit 0 with nothing at all on stderr.
fn quiet(s: &TestStore, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    let (shown, run) = s.run(&all, stdin);
    assert!(
        run.code == 0 && run.stderr.is_empty(),
        "{}",
        report(&shown, &run, "exit 0 and an empty stderr under -q")
    );
    String::from_utf8(run.stdout).expect("UTF-8 stdout")
}

#[test]
fn quiet_prints_nothing_on_success_but_the_data() {
    let s = TestStore::new();
    // The README's `id=$(stratum -q create-doc x)`.
    let backup = s.tmp().join("backup");
    let backup = backup.to_str().unwrap();
    let mut seen: Vec<&str> = Vec::new();
    let mut check = |name: &'static str, args: &[&str], stdin: Option<&[u8]>, data: bool| {
        let out = quiet(&s, args, stdin);
        if data {
            assert!(!out.is_empty(), "{args:?} lost its data under -q");
        } else {
            assert_eq!(out, "", "{args:?} printed a report under -q");
        }
        seen.push(name);
        out
    };
    // Data commands keep their stdout: `id=$(stratum -q create-doc x)`.
    assert_eq!(check("create-doc", &["create-doc", "x"], None, true), "1\n");
    assert_eq!(
        check("add-input", &["add-input", "1", "[1]"], None, true),
        "1\n"
    );
    check("set-output", &["set-output", "1", "1", "2"], None, false);
    check(
        "update-doc",
        &["update-doc", "1", "--category", "c"],
        None,
        false,
    );
    check(
        "update-input",
        &["update-input", "1", "1", "--meta", "{}"],
        None,
        false,
    );
    let doc = check("get", &["get", "1"], None, true);
    assert_eq!(doc, s.ok(&["get", "1"]));
    assert_eq!(check("list", &["list"], None, true), s.ok(&["list"]));
    assert_eq!(
        check("stats", &["stats", "--json"], None, true)
            .lines()
            .count(),
        1
    );
    assert_eq!(check("dump", &["dump"], None, true), doc);
    let line = doc.as_bytes();
    assert_eq!(check("load", &["load"], Some(line), true), "2\n");
    let op = br#"{"op":"create-doc","body":"y"}"#;
    let applied = check("apply", &["apply"], Some(op), true);
    assert_eq!(json(applied.trim())["doc"], 3);
    // Reports print nothing at all, though without -q they say something.
    for args in [
        &["verify"][..],
        &["compact", "--dry-run"],
        &["compact", "--min-garbage", "1"],
        &["compact"],
        &["repair"],
    ] {
        let (_, run) = s.run(args, None);
        assert!(
            !run.stdout.is_empty() || !run.stderr.is_empty(),
            "{args:?} says nothing even without -q"
        );
    }
    check("verify", &["verify"], None, false);
    check("compact", &["compact", "--dry-run"], None, false);
    check("compact", &["compact", "--min-garbage", "1"], None, false);
    check("compact", &["compact"], None, false);
    check("backup", &["backup", backup], None, false);
    // Nothing differs from the fresh backup: no output, exit 0.
    check("diff", &["diff", backup], None, false);
    check("repair", &["repair"], None, false);
    let salvaged = check("dump", &["dump", "--salvage"], None, true);
    assert_eq!(salvaged.lines().count(), 3);
    check("delete-input", &["delete-input", "1", "1"], None, false);
    check("delete-doc", &["delete-doc", "3"], None, false);
    assert!(check("man", &["man"], None, true).starts_with(".TH STRATUM 1"));
    check("completions", &["completions", "bash"], None, true);

    // A recovery note is chatter too: an incomplete write at the end of the
    // active segment is discarded without a word under -q.
    let torn = || {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.data().join("active.seg"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"\x01\x02\x03torn").unwrap();
    };
    torn();
    assert_eq!(quiet(&s, &["create-doc", "z"], None), "4\n");
    // The same for the commands that open only an existing store.
    torn();
    assert_eq!(quiet(&s, &["add-input", "4", "1"], None), "1\n");
    torn();
    quiet(&s, &["set-output", "4", "1", "2"], None);
    torn();
    quiet(&s, &["update-doc", "4", "--category", "d"], None);
    torn();
    quiet(&s, &["update-input", "4", "1", "--meta", "{}"], None);
    torn();
    quiet(&s, &["delete-input", "4", "1"], None);
    torn();
    quiet(&s, &["delete-doc", "4"], None);
    torn();
    let (_, run) = s.run(&["create-doc", "z"], None);
    assert!(run.stderr.starts_with("stratum: note: "), "{}", run.stderr);

    // Every command was run under -q.
    let mut names = subcommands(&s.ok(&["--help"]));
    names.sort();
    seen.sort();
    seen.dedup();
    assert_eq!(names, seen);
}

/// A fenced block of README.md: the first whose opening line is
/// "```<lang>" and that contains `needle`.
fn readme_block(lang: &str, needle: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let fence = format!("```{lang}\n");
    readme
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no ```{lang} block in README.md contains {needle:?}"))
        .to_owned()
}

/// Runs the binary on the store in `dir` (not the test's own store),
/// expecting exit 0 and a quiet stderr; returns stdout.
fn ok_in(dir: &Path, args: &[&str]) -> String {
    let (shown, run) = run_at(dir, args);
    crate::util::expect_ok(&shown, &run);
    String::from_utf8(run.stdout).expect("UTF-8 stdout")
}

/// A directory with `stratum` (the binary under test) for `PATH`.
fn path_with_stratum(s: &TestStore) -> String {
    let bin = s.tmp().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("stratum");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `script` with `sh -c` in the test's directory, `stratum` on `PATH`.
fn sh(s: &TestStore, script: &str) -> (String, crate::util::Run) {
    let mut cmd = Command::new("sh");
    cmd.current_dir(s.tmp())
        .env("PATH", path_with_stratum(s))
        .env_remove("STRATUM_DIR")
        .env_remove("NO_COLOR")
        .args(["-c", script]);
    TestStore::run_command(cmd, None)
}

#[test]
fn readme_cron_lines_are_silent_on_success() {
    let s = TestStore::new();
    let cron = readme_block("cron", "compact");
    let store = s.tmp().join("problems");
    let backups = s.tmp().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Garbage: a body replaced ten times.
    ok_in(&store, &["create-doc", "a"]);
    for i in 0..10 {
        ok_in(
            &store,
            &["update-doc", "1", &format!("{i}{}", "x".repeat(2000))],
        );
    }
    let mut lines = 0;
    // Twice: the first night compacts, the second finds nothing worth it.
    for night in 0..2 {
        for line in cron.lines().filter(|l| !l.trim().is_empty()) {
            // Five time fields, then the command; cron turns `\%` into `%`.
            let command: String = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            let command = command
                .replace("/srv/problems", store.to_str().unwrap())
                .replace("/backups/", &format!("{}/n{night}-", backups.display()))
                .replace("\\%", "%");
            let (shown, run) = sh(&s, &command);
            assert!(
                run.code == 0 && run.stdout.is_empty() && run.stderr.is_empty(),
                "{}",
                report(&shown, &run, "a silent success (cron mails any output)")
            );
            lines += 1;
        }
    }
    assert_eq!(lines, 4, "{cron}");
    // They did their work: compacted, and two backups that are stores.
    let st = json(ok_in(&store, &["stats", "--json"]).trim());
    assert_eq!(st["last_compaction"]["segments"], 1, "{st}");
    let made: Vec<_> = std::fs::read_dir(&backups).unwrap().collect();
    assert_eq!(made.len(), 2);
}

#[test]
fn delete_doc_help_bulk_example_runs_as_written() {
    require("jq", "jq");
    let s = TestStore::new();
    s.ok(&["create-doc", "no inputs"]);
    s.ok(&["create-doc", "one input"]);
    s.ok(&["add-input", "2", "1"]);
    s.ok(&["create-doc", "no inputs either"]);
    let help = s.ok(&["delete-doc", "--help"]);
    let example: String = help
        .lines()
        .skip_while(|l| !l.contains("stratum list --json"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(example.ends_with("stratum apply -"), "{help}");
    let dir = s.data().display().to_string();
    let (shown, run) = sh(&s, &format!("export STRATUM_DIR='{dir}'\n{example}"));
    assert_eq!(run.code, 0, "{}", report(&shown, &run, "success"));
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "{\"line\":1,\"op\":\"delete-doc\",\"doc\":1}\n{\"line\":2,\"op\":\"delete-doc\",\"doc\":3}\n"
    );
    assert_eq!(crate::util::ids(&s.ok(&["dump"])), [2]);
}

#[test]
fn readme_quick_start_can_run_twice() {
    let s = TestStore::new();
    let block = readme_block("sh", "create-doc");
    let first = block.lines().next().unwrap();
    assert!(
        first.starts_with("cargo build --release && S=./target/release/stratum"),
        "{block}"
    );
    let script = block.replacen(
        "cargo build --release && S=./target/release/stratum",
        &format!("S={BIN}"),
        1,
    );
    let script = script.replace("\\\n", " ");
    let mut gets = Vec::new();
    for _ in 0..2 {
        let (shown, run) = sh(&s, &script);
        assert_eq!(
            run.code,
            0,
            "{}",
            report(&shown, &run, "the quick start to work")
        );
        gets.push(String::from_utf8(run.stdout).unwrap());
    }
    // Two equal documents: the second run did not add to the first one's.
    let dir = s.tmp().join("stratum-data");
    let a = json(ok_in(&dir, &["get", "1"]).trim());
    let b = json(ok_in(&dir, &["get", "2"]).trim());
    assert_eq!(a["inputs"], b["inputs"]);
    assert_eq!(a["inputs"].as_array().unwrap().len(), 2, "{a}");
    assert_eq!(a["inputs"][1]["output"], serde_json::json!(-2.25), "{a}");
    assert!(gets[1].contains("\"id\": 2"), "{}", gets[1]);
}

#[test]
fn readme_fixture_check_fails_a_set_e_script() {
    require("jq", "jq");
    let s = TestStore::new();
    let block = readme_block("sh", "problems.json");
    assert!(block.starts_with("set -e\n"), "{block}");
    for (problems, want_ok) in [
        (
            "{\"statement\":\"add\",\"cases\":[{\"in\":[1,2],\"out\":3}]}\n{\"statement\":\"neg\",\"cases\":[{\"in\":1,\"out\":-1}]}\n",
            true,
        ),
        (
            "{\"statement\":\"add\",\"cases\":[{\"in\":[1,2],\"out\":3}]}\n{\"statement\":\"none\",\"cases\":[]}\n",
            false,
        ),
    ] {
        std::fs::write(s.tmp().join("problems.json"), problems).unwrap();
        let script = block.clone();
        let mut cmd = Command::new("bash");
        cmd.current_dir(s.tmp())
            .env("PATH", path_with_stratum(&s))
            .env_remove("STRATUM_DIR")
            .args(["-c", &format!("{script}\necho checked")]);
        let (shown, run) = TestStore::run_command(cmd, None);
        let checked = String::from_utf8_lossy(&run.stdout).contains("checked");
        if want_ok {
            assert!(
                run.code == 0 && checked,
                "{}",
                report(&shown, &run, "the check to pass")
            );
        } else {
            assert!(
                run.code != 0 && !checked,
                "{}",
                report(&shown, &run, "the check to fail the script")
            );
        }
    }
}

#[test]
fn usage_errors_are_one_line_with_a_hint() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    for (args, needle, hint) in [
        (&["get", "0"][..], "0 is not an id: ids start at 1", "get"),
        (
            &["get"],
            "required arguments were not provided: <DOC>",
            "get",
        ),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'", ""),
        (
            &["add-input", "-1"],
            "unexpected argument '-1'",
            "add-input",
        ),
        (
            &["add-input", "x", "1"],
            "`x` is not a document",
            "add-input",
        ),
        (
            &["list", "--jsn"],
            "a similar argument exists: '--json'",
            "list",
        ),
        (
            &["get", "1", "--body", "--table"],
            "cannot be used with",
            "get",
        ),
        (
            &["--color", "sometimes", "list"],
            "invalid value 'sometimes'",
            "list",
        ),
        (
            &["--lock-timeout", "1e30", "list"],
            "too long a wait",
            "list",
        ),
        (&["update-doc", "1"], "needs at least one of", "update-doc"),
    ] {
        let before = s.snapshot();
        let (code, err) = s.fails(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        // Also for `update-doc 1`, refused after parsing.
        let want = if hint.is_empty() {
            "; try 'stratum --help'\n".to_owned()
        } else {
            format!("; try 'stratum {hint} --help'\n")
        };
        assert!(
            err.contains(needle) && err.ends_with(&want),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("error:") && !err.contains("Usage:"),
            "{args:?}: {err}"
        );
        assert_eq!(s.snapshot(), before, "{args:?}");
    }
    // An empty STRATUM_DIR is named as such, not as a missing --dir value.
    let mut cmd = Command::new(BIN);
    cmd.current_dir(s.tmp()).env("STRATUM_DIR", "").arg("list");
    let (shown, run) = TestStore::run_command(cmd, None);
    assert_eq!(run.code, 2, "{}", report(&shown, &run, "exit 2"));
    assert!(
        run.stderr
            .starts_with("stratum: STRATUM_DIR is set but empty")
            && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    assert!(!s.tmp().join("stratum-data").exists());
    // Help and version are not errors.
    assert!(s.ok(&["--help"]).contains("Usage: stratum"));
    assert_eq!(
        s.ok(&["-V"]),
        format!("stratum {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn global_options_are_listed_once_and_work_anywhere() {
    let s = TestStore::new();
    let top = s.ok(&["--help"]);
    assert_eq!(top.matches("Global options:").count(), 1, "{top}");
    for flag in [
        "--dir <DIR>",
        "--segment-size <BYTES>",
        "--no-sync",
        "--lock-timeout <SECS>",
        "--quiet",
        "--color <WHEN>",
    ] {
        assert_eq!(top.matches(flag).count(), 1, "{flag}: {top}");
    }
    for (cmd, has, lacks) in [
        (
            "get",
            "Global options: --dir, --lock-timeout, --quiet, --color (see 'stratum --help')",
            "--no-sync",
        ),
        (
            "verify",
            "Global options: --dir, --lock-timeout, --quiet, --color",
            "--segment-size",
        ),
        (
            "load",
            "Global options: --dir, --segment-size, --no-sync, --lock-timeout, --quiet, --color",
            "--dir <DIR>",
        ),
    ] {
        let help = s.ok(&[cmd, "--help"]);
        assert!(help.contains(has), "{cmd}: {help}");
        assert!(!help.contains(lacks), "{cmd}: {help}");
        let short = s.ok(&[cmd, "-h"]);
        assert!(!short.contains("--lock-timeout <"), "{cmd}: {short}");
    }
    assert!(!s.ok(&["man", "--help"]).contains("Global options"));
    // Still accepted after the command's name.
    let dir = s.tmp().join("elsewhere");
    let dir = dir.to_str().unwrap();
    assert_eq!(
        s.ok(&[
            "create-doc",
            "x",
            "--dir",
            dir,
            "--no-sync",
            "--quiet",
            "--color=never"
        ]),
        "1\n"
    );
    assert!(Path::new(dir).join("active.seg").exists());
}

#[test]
fn values_may_start_with_a_hyphen() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    assert_eq!(s.ok(&["add-input", "1", "-1.0e-3"]), "1\n");
    assert_eq!(
        s.ok(&["add-input", "1", "-12e+3", "--output", "-1.0e-3"]),
        "2\n"
    );
    assert_eq!(
        s.ok(&["add-input", "1", "[1]", "--output", "-12e+3"]),
        "3\n"
    );
    assert_eq!(
        s.ok(&["add-input", "1", "--output", "-0.5E-7", "-7"]),
        "4\n"
    );
    s.ok(&["set-output", "1", "1", "-1.0e-3"]);
    for (node, input, output) in [
        ("1", "-1.0e-3", "-1.0e-3"),
        ("2", "-12e+3", "-1.0e-3"),
        ("3", "[1]", "-12e+3"),
        ("4", "-7", "-0.5E-7"),
    ] {
        assert_eq!(
            s.ok(&["get", "1", "--node", node, "--input"]),
            format!("{input}\n")
        );
        assert_eq!(
            s.ok(&["get", "1", "--node", node, "--output"]),
            format!("{output}\n")
        );
    }
    // A body that starts with `-`, and one that is an option's name.
    assert_eq!(
        s.ok(&["create-doc", "-not an option", "--category", "c"]),
        "2\n"
    );
    assert_eq!(s.ok(&["get", "2", "--body"]), "-not an option");
    assert_eq!(json(s.ok(&["get", "2"]).trim())["category"], "c");
    assert_eq!(s.ok(&["create-doc", "--", "-q"]), "3\n");
    assert_eq!(s.ok(&["get", "3", "--body"]), "-q");
    s.ok(&["update-doc", "3", "-x-"]);
    assert_eq!(s.ok(&["get", "3", "--body"]), "-x-");
    // Not JSON is still refused as such (exit 4), not taken for an option.
    let (code, err) = s.fails(&["add-input", "1", "-x"]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn json_is_accepted_by_every_command_that_prints() {
    let s = TestStore::new();
    // Already JSON: the same output with and without --json.
    assert_eq!(s.ok(&["create-doc", "x", "--json"]), "1\n");
    assert_eq!(s.ok(&["add-input", "1", "[1]", "--json"]), "1\n");
    assert_eq!(s.ok(&["get", "1", "--json"]), s.ok(&["get", "1"]));
    assert_eq!(s.ok(&["dump", "--json"]), s.ok(&["dump"]));
    assert_eq!(
        s.ok(&["dump", "--records", "--json"]),
        s.ok(&["dump", "--records"])
    );
    let line = s.ok(&["get", "1"]);
    assert_eq!(s.with_stdin(line.as_bytes()).ok(&["load", "--json"]), "2\n");
    let applied = s
        .with_stdin(br#"{"op":"delete-doc","doc":2}"#)
        .ok(&["apply", "--json"]);
    assert_eq!(json(applied.trim())["op"], "delete-doc");
    let (code, _) = s.fails(&["get", "1", "--json", "--table"]);
    assert_eq!(code, 2);

    // Reports: one object on stdout, nothing on stderr.
    let report = |args: &[&str]| json(s.ok(args).trim());
    let dry = report(&["compact", "--dry-run", "--json"]);
    assert_eq!(dry["compacted"], false);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["bytes"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(dry["bytes_after"], serde_json::Value::Null);
    let skipped = report(&["compact", "--min-garbage", "1", "--json"]);
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("--min-garbage"),
        "{skipped}"
    );
    let done = report(&["compact", "--json"]);
    assert_eq!(done["compacted"], true);
    assert!(done["bytes_after"].as_u64().is_some(), "{done}");
    let fields = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(fields(&dry), fields(&done));
    let dest = s.tmp().join("copy");
    let backup = report(&["backup", dest.to_str().unwrap(), "--json"]);
    assert_eq!(backup["verified"], true);
    assert_eq!(backup["dest"], dest.to_str().unwrap());
    assert!(backup["bytes"].as_u64().unwrap() > 0, "{backup}");
    let repaired = report(&["repair", "--json"]);
    assert_eq!(repaired["quarantined"], serde_json::json!([]));
    assert_eq!(repaired["compacted"], true);
    let stats = report(&["stats", "--json"]);
    let by_category = report(&["stats", "--by", "category", "--json"]);
    let verified = report(&["verify", "--json"]);
    assert_eq!(verified["ok"], true);
    let listed = report(&["list", "--json"]);
    assert!(listed["id"] == 1);
    // `dump --salvage` keeps stdout for the documents: the summary is JSON
    // on stderr.
    let (shown, run) = s.run(&["dump", "--salvage", "--json"], None);
    assert_eq!(
        run.code,
        0,
        "{}",
        crate::util::report(&shown, &run, "success")
    );
    assert_eq!(String::from_utf8(run.stdout).unwrap(), s.ok(&["dump"]));
    let summary = json(run.stderr.trim());
    assert_eq!(summary["documents"], 1, "{summary}");
    assert_eq!(summary["damaged_bytes"], 0, "{summary}");

    // The man page's JSON OUTPUT section names every field these print.
    let page = s.ok(&["man"]);
    let section = page
        .split(".SH JSON OUTPUT\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .expect("a JSON OUTPUT section");
    for (what, value) in [
        ("compact", &done),
        ("backup", &backup),
        ("repair", &repaired),
        ("stats", &stats),
        ("stats --by category", &by_category),
        ("verify", &verified),
        ("list", &listed),
        ("dump --salvage", &summary),
    ] {
        for field in fields(value) {
            assert!(
                section.contains(&format!("\"{field}\"")),
                "man page JSON OUTPUT does not name {what}'s \"{field}\""
            );
        }
    }
}

#[test]
fn tables_show_sizes_like_du_h_and_json_keeps_bytes() {
    let s = TestStore::new();
    s.ok(&["create-doc", &"b".repeat(5000)]);
    s.ok(&["create-doc", "tiny"]);
    let list = s.ok(&["list"]);
    assert!(list.contains("| body size |"), "{list}");
    assert!(list.contains(" 4.9K |") && list.contains(" 4 |"), "{list}");
    let rows: Vec<serde_json::Value> = s.ok(&["list", "--json"]).lines().map(json).collect();
    assert_eq!(rows[0]["body_bytes"], 5000);
    assert!(
        s.ok(&["get", "1", "--table"])
            .contains("| body size | 4.9K")
    );
    let st = json(s.ok(&["stats", "--json"]).trim());
    let total = st["total_bytes"].as_u64().unwrap();
    assert!(total > 5000, "{st}");
    let table = s.ok(&["stats"]);
    let total_row = table.lines().find(|l| l.contains("total size")).unwrap();
    assert!(
        total_row.contains("K ") && !total_row.contains(&total.to_string()),
        "{table}"
    );
    let verify = s.ok(&["verify"]);
    assert!(
        verify.contains("| size ") && verify.contains("K checked"),
        "{verify}"
    );
}

#[test]
fn deletes_with_if_exists_succeed_when_nothing_is_there() {
    let s = TestStore::new();
    // No store at all: nothing to delete, and nothing is created.
    s.ok(&["delete-doc", "1", "--if-exists"]);
    s.ok(&["delete-input", "1", "1", "--if-exists"]);
    assert!(!s.data().exists());
    s.ok(&["create-doc", "x"]);
    s.ok(&["add-input", "1", "1"]);
    let before = s.snapshot();
    s.ok(&["delete-doc", "9", "--if-exists"]);
    s.ok(&["delete-input", "1", "9", "--if-exists"]);
    s.ok(&["delete-input", "9", "1", "--if-exists"]);
    assert_eq!(s.snapshot(), before);
    assert_eq!(s.fails(&["delete-doc", "9"]).0, 3);
    assert_eq!(s.fails(&["delete-input", "1", "9"]).0, 3);
    // When it is there, it is deleted, and a second run is still exit 0.
    for _ in 0..2 {
        s.ok(&["delete-input", "1", "1", "--if-exists"]);
        s.ok(&["delete-doc", "1", "--if-exists"]);
    }
    assert_eq!(s.fails(&["get", "1"]).0, 3);
    // Other failures are not swallowed.
    assert_eq!(
        s.fails(&["--lock-timeout", "soon", "delete-doc", "1", "--if-exists"])
            .0,
        2
    );
}

#[test]
fn a_left_out_value_reads_stdin_but_never_waits_on_a_terminal() {
    let s = TestStore::new();
    // From a pipe: a left-out body or value is stdin, as `-` is.
    assert_eq!(s.with_stdin(b"piped body").ok(&["create-doc"]), "1\n");
    assert_eq!(s.ok(&["get", "1", "--body"]), "piped body");
    assert_eq!(s.with_stdin(b"[1, 2]").ok(&["add-input", "1"]), "1\n");
    s.with_stdin(b"3").ok(&["set-output", "1", "1"]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "1"]),
        "{\"node\":1,\"input\":[1,2],\"output\":3}\n"
    );
    // An empty body must be asked for: `''`, or an empty stdin.
    assert_eq!(s.ok(&["create-doc", ""]), "2\n");
    assert_eq!(s.ok(&["get", "2", "--body"]), "");
    let help = s.ok(&["create-doc", "--help"]);
    assert!(help.contains("refused when stdin is a terminal"), "{help}");
    require("script", "bsdutils");
    // From a terminal: exit 2 at once, nothing written.
    let before = s.snapshot();
    let dir = s.data().display().to_string();
    for (args, what) in [
        ("create-doc --category c", "BODY"),
        ("add-input 1", "VALUE"),
        ("set-output 1 1", "VALUE"),
        ("load", "FILE"),
        ("apply", "FILE"),
    ] {
        let (shown, run) = in_terminal_run(&s, &format!("{BIN} --dir {dir} {args}"));
        let screen = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.code, 2, "{}", report(&shown, &run, "exit 2"));
        assert!(
            screen.contains(&format!(
                "stratum: no {what} given, and stdin is a terminal"
            )),
            "{args}: {screen}"
        );
    }
    assert_eq!(s.snapshot(), before);
}

#[test]
fn document_version_is_not_the_program_version() {
    let s = TestStore::new();
    assert_eq!(s.ok(&["create-doc", "x", "--doc-version", "v1"]), "1\n");
    // The old spelling still works in scripts.
    assert_eq!(s.ok(&["create-doc", "y", "--version", "v2"]), "2\n");
    s.ok(&["update-doc", "2", "--doc-version", "v3"]);
    assert_eq!(json(s.ok(&["get", "1"]).trim())["version"], "v1");
    assert_eq!(json(s.ok(&["get", "2"]).trim())["version"], "v3");
    let help = s.ok(&["create-doc", "--help"]);
    assert!(
        help.contains("--doc-version <V>") && !help.contains("--version <"),
        "{help}"
    );
    assert!(s.ok(&["--version"]).starts_with("stratum "));
}

#[test]
fn a_batch_larger_than_the_segment_size_is_cut_into_segments_as_its_help_says() {
    let mut s = TestStore::new();
    let help = s
        .ok(&["--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains(
            "is written as segments of its own, each sealed at this size or at 131,070 index \
             entries, whichever comes first, all committed at once"
        ),
        "{help}"
    );
    let load = s.ok(&["load", "--help"]);
    assert!(load.contains("--segment-size"), "{load}");
    s.globals = vec!["--segment-size".into(), "4096".into()];
    s.load_docs(100, |i| format!("doc {i} {}", "x".repeat(100)));
    // One batch of about 18 KB: sealed segments of at most the size (plus
    // a 60-byte footer), and nothing of it left in the active segment.
    let sealed: Vec<u64> = s
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".seg") && f != "active.seg")
        .map(|f| std::fs::metadata(s.data().join(&f)).unwrap().len())
        .collect();
    assert!(sealed.len() >= 4, "{:?}", s.files());
    assert!(sealed.iter().all(|&n| n <= 4096 + 60), "{sealed:?}");
    assert_eq!(
        std::fs::metadata(s.data().join("active.seg"))
            .unwrap()
            .len(),
        40
    );
}

#[test]
fn colour_follows_color_no_color_and_term() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x", "--category", "c"]);
    // Into a pipe: never, unless --color=always (NO_COLOR or not).
    assert!(!s.ok(&["list"]).contains('\x1b'));
    assert!(s.ok(&["--color=always", "list"]).contains("\x1b[1m"));
    let mut cmd = s.command(&["list", "--color", "always"]);
    cmd.env("NO_COLOR", "1");
    let (_, run) = TestStore::run_command(cmd, None);
    assert!(String::from_utf8_lossy(&run.stdout).contains("\x1b[1m"));
    require("script", "bsdutils");
    let dir = s.data().display().to_string();
    let at_terminal =
        |prefix: &str, args: &str| in_terminal(&s, &format!("{prefix} {BIN} --dir {dir} {args}"));
    assert!(at_terminal("", "list").contains("\x1b[1m"));
    for (prefix, args) in [
        ("", "list --color=never"),
        ("", "--color never list"),
        ("TERM=dumb", "list"),
        ("NO_COLOR=1", "list"),
        ("env -u TERM", "list"),
    ] {
        let screen = at_terminal(prefix, args);
        assert!(!screen.contains("\x1b["), "{prefix} {args}: {screen:?}");
        // Still a table for people.
        assert!(
            screen.contains('│') || screen.contains('─'),
            "{prefix} {args}: {screen:?}"
        );
    }
    assert!(at_terminal("TERM=dumb", "list --color=always").contains("\x1b[1m"));
    // Help follows the same rules.
    assert!(at_terminal("", "get --help").contains("\x1b["));
    assert!(!at_terminal("", "--color=never get --help").contains("\x1b["));
    assert!(!at_terminal("TERM=dumb", "get --help").contains("\x1b["));
    // Also in CI, where clap alone would colour a dumb terminal.
    assert!(!at_terminal("CI=true TERM=dumb", "get --help").contains("\x1b["));
    assert!(!at_terminal("CI=true NO_COLOR=1", "get --help").contains("\x1b["));
}

#[test]
fn readme_fuzz_commands_name_targets_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let targets = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    let mut named = 0;
    for run in readme.split("cargo fuzz run ").skip(1) {
        let target = run.split_whitespace().next().unwrap();
        assert!(
            targets.contains(&format!("name = \"{target}\"")),
            "README runs fuzz target {target:?}, which fuzz/Cargo.toml does not define"
        );
        named += 1;
    }
    assert!(named > 0, "no `cargo fuzz run` in README.md");
}

/// The toolchain step of `.ci/run`, run against a stand-in `rustup` that
/// records what it is asked to do: the pinned toolchain and each component
/// are installed exactly when missing (clippy used to be added only with a
/// missing rustfmt).
#[test]
fn ci_installs_the_pinned_toolchain_and_each_missing_component() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let step: String = ci
        .split("section \"toolchain")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .map(|(_, body)| body)
        .and_then(|body| body.split("\nrustc --version; cargo --version").next())
        .expect("a toolchain section in .ci/run")
        .to_owned();
    let pinned = std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap();
    let channel = pinned
        .lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a channel in rust-toolchain.toml")
        .to_owned();
    let s = TestStore::new();
    let bin = s.tmp().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = s.tmp().join("calls");
    let state = s.tmp().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let write_exe = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&p, perms).unwrap();
    };
    let st = state.display();
    write_exe(
        "rustup",
        &format!(
            "echo \"$*\" >> {calls}\n\
             case \"$1 $2\" in\n\
             'toolchain list') echo stable-x86_64-unknown-linux-gnu; [ -e {st}/toolchain ] && echo {channel}-x86_64-unknown-linux-gnu ;;\n\
             'component list') for c in rustfmt clippy; do [ -e {st}/$c ] && echo $c-x86_64-unknown-linux-gnu; done; echo cargo-x86_64-unknown-linux-gnu ;;\n\
             esac; exit 0",
            calls = calls.display()
        ),
    );
    write_exe("rustc", &format!("cat {st}/rustc-version"));
    let run = |present: &[&str], rustc: &str| {
        for f in ["toolchain", "rustfmt", "clippy"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        for f in present {
            std::fs::write(state.join(f), "").unwrap();
        }
        std::fs::write(state.join("rustc-version"), rustc).unwrap();
        let _ = std::fs::remove_file(&calls);
        let mut cmd = Command::new("bash");
        cmd.current_dir(root)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["-c", &format!("set -euo pipefail\n{step}")]);
        let (shown, out) = TestStore::run_command(cmd, None);
        let log = std::fs::read_to_string(&calls).unwrap_or_default();
        let acted: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("toolchain install") || l.starts_with("component add"))
            .map(str::to_owned)
            .collect();
        (shown, out, acted)
    };
    let good = format!("rustc {channel} (0000000 2026-01-01)\n");
    let (shown, out, acted) = run(&[], &good);
    assert_eq!(out.code, 0, "{}", report(&shown, &out, "success"));
    assert_eq!(
        acted,
        [
            format!("toolchain install {channel} --profile minimal"),
            format!("component add rustfmt --toolchain {channel}"),
            format!("component add clippy --toolchain {channel}"),
        ]
    );
    let (_, out, acted) = run(&["toolchain", "rustfmt"], &good);
    assert_eq!(out.code, 0);
    assert_eq!(
        acted,
        [format!("component add clippy --toolchain {channel}")]
    );
    let (_, out, acted) = run(&["toolchain", "rustfmt", "clippy"], &good);
    assert_eq!(out.code, 0);
    assert!(acted.is_empty(), "{acted:?}");
    let (_, out, _) = run(&["toolchain", "rustfmt", "clippy"], "rustc 1.0.0 (old)\n");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not the pinned"), "{}", out.stderr);
}
