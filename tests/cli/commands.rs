//! Each write and read command with each of its options, and the global
//! options: what they print and what they change.

use crate::util::{BIN, TestStore, json};

#[test]
fn create_doc_takes_the_body_from_argument_stdin_or_file() {
    let s = TestStore::new();
    assert_eq!(
        s.ok(&[
            "create-doc",
            "from arg",
            "--category",
            "c1",
            "--version",
            "v1"
        ]),
        "1\n"
    );
    assert_eq!(
        s.with_stdin(b"from stdin\n").ok(&["create-doc", "-"]),
        "2\n"
    );
    let file = s.tmp().join("body.html");
    std::fs::write(&file, "<p>from file</p>").unwrap();
    assert_eq!(
        s.ok(&[
            "create-doc",
            "--file",
            file.to_str().unwrap(),
            "--category",
            "c2"
        ]),
        "3\n"
    );
    assert_eq!(s.ok(&["create-doc"]), "4\n");
    assert_eq!(
        s.ok(&["get", "1"]),
        "{\"id\":1,\"category\":\"c1\",\"version\":\"v1\",\"body\":\"from arg\",\"inputs\":[]}\n"
    );
    assert_eq!(s.ok_bytes(&["get", "2", "--body"]), b"from stdin\n");
    assert_eq!(
        s.ok(&["get", "3"]),
        "{\"id\":3,\"category\":\"c2\",\"version\":null,\"body\":\"<p>from file</p>\",\"inputs\":[]}\n"
    );
    assert_eq!(s.ok_bytes(&["get", "4", "--body"]), b"");
}

#[test]
fn create_doc_refuses_two_body_sources() {
    let s = TestStore::new();
    let file = s.tmp().join("b");
    std::fs::write(&file, "x").unwrap();
    let (code, err) = s.fails(&["create-doc", "arg", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(!s.data().exists());
}

#[test]
fn add_input_and_set_output_from_argument_and_stdin() {
    let s = TestStore::new();
    s.ok(&["create-doc", "d"]);
    assert_eq!(s.ok(&["add-input", "1", "[1, 2]", "--output", "3"]), "1\n");
    assert_eq!(
        s.with_stdin(b"{\"a\": 1}\n").ok(&["add-input", "1", "-"]),
        "2\n"
    );
    // No VALUE at all reads stdin too.
    assert_eq!(s.with_stdin(b"\"third\"").ok(&["add-input", "1"]), "3\n");
    assert_eq!(s.ok(&["add-input", "1", "-3.25", "--output", "-1"]), "4\n");
    assert_eq!(s.ok(&["set-output", "1", "2", "\"two\""]), "");
    assert_eq!(
        s.with_stdin(b"[\"x\"]").ok(&["set-output", "1", "3", "-"]),
        ""
    );
    assert_eq!(s.with_stdin(b"true").ok(&["set-output", "1", "1"]), "");
    assert_eq!(
        s.ok(&["get", "1"]),
        concat!(
            r#"{"id":1,"category":null,"version":null,"body":"d","inputs":["#,
            r#"{"node":1,"input":[1,2],"output":true},"#,
            r#"{"node":2,"input":{"a":1},"output":"two"},"#,
            r#"{"node":3,"input":"third","output":["x"]},"#,
            r#"{"node":4,"input":-3.25,"output":-1}]}"#,
            "\n"
        )
    );
}

#[test]
fn a_null_output_is_a_real_one_and_clear_removes_it() {
    let s = TestStore::new();
    s.ok(&["create-doc", "d"]);
    assert_eq!(s.ok(&["add-input", "1", "1", "--output", "null"]), "1\n");
    assert_eq!(s.ok(&["add-input", "1", "2"]), "2\n");
    assert_eq!(
        s.ok(&["get", "1", "--node", "1"]),
        "{\"node\":1,\"input\":1,\"output\":null,\"has_output\":true}\n"
    );
    assert_eq!(
        s.ok(&["get", "1", "--node", "2"]),
        "{\"node\":2,\"input\":2,\"output\":null}\n"
    );
    assert_eq!(
        s.ok(&["list", "--json"]),
        "{\"id\":1,\"key\":null,\"category\":null,\"version\":null,\"inputs\":2,\"outputs\":1,\"body_bytes\":1}\n"
    );
    s.ok(&["set-output", "1", "2", "null"]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "2"]),
        "{\"node\":2,\"input\":2,\"output\":null,\"has_output\":true}\n"
    );
    s.ok(&["set-output", "1", "1", "--clear"]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "1"]),
        "{\"node\":1,\"input\":1,\"output\":null}\n"
    );
    assert!(s.ok(&["dump", "--missing-output"]).contains("\"id\":1"));
    // --clear takes no value; an unknown node is exit 3 and writes nothing.
    let before = s.snapshot();
    let (code, err) = s.fails(&["set-output", "1", "1", "--clear", "3"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = s.fails(&["set-output", "1", "9", "--clear"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("input node 9 not found"), "{err}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn get_prints_parts_of_a_document() {
    let s = TestStore::new();
    s.ok(&["create-doc", "body text", "--category", "easy"]);
    s.ok(&["add-input", "1", "[1,2]", "--output", "{\"sum\":3}"]);
    s.ok(&["add-input", "1", "\"no output\""]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "1"]),
        "{\"node\":1,\"input\":[1,2],\"output\":{\"sum\":3}}\n"
    );
    assert_eq!(s.ok(&["get", "1", "--node", "1", "--input"]), "[1,2]\n");
    assert_eq!(
        s.ok(&["get", "1", "--node", "1", "--output"]),
        "{\"sum\":3}\n"
    );
    assert_eq!(s.ok(&["get", "1", "--node", "2", "--output"]), "null\n");
    assert_eq!(
        s.ok(&["get", "1", "--node", "1", "--output", "--pretty"]),
        "{\n  \"sum\": 3\n}\n"
    );
    assert_eq!(s.ok_bytes(&["get", "1", "--body"]), b"body text");
    let pretty = s.ok(&["get", "1", "--pretty"]);
    assert_eq!(json(&pretty), json(s.ok(&["get", "1"]).trim()));
    assert!(
        pretty.starts_with("{\n  \"id\": 1,\n  \"category\": \"easy\",\n"),
        "{pretty}"
    );
    for bad in [
        &["get", "1", "--body", "--node", "1"][..],
        &["get", "1", "--input"],
        &["get", "1", "--node", "1", "--input", "--output"],
        &["get", "1", "--table", "--pretty"],
        &["get", "0"],
        &["get", "x"],
    ] {
        let (code, err) = s.fails(bad);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
}

#[test]
fn get_table_is_plain_ascii_with_shortened_values_off_a_terminal() {
    let s = TestStore::new();
    s.ok(&["create-doc", "line one\nline two", "--category", "graphs"]);
    let long = format!("\"{}\"", "x".repeat(200));
    s.ok(&["add-input", "1", &long, "--output", "42"]);
    s.ok(&["add-input", "1", "[1,2]"]);
    let table = s.ok(&["get", "1", "--table"]);
    assert!(table.is_ascii(), "{table}");
    assert!(table.contains("| category  | graphs"), "{table}");
    assert!(table.contains("| body size | 17 "), "{table}");
    assert!(table.contains("line one\\nline two"), "{table}");
    assert!(table.contains("2 (1 with an expected output)"), "{table}");
    assert!(
        table.contains("...") && !table.contains(&"x".repeat(100)),
        "{table}"
    );
    assert!(table.contains("| 42 "), "{table}");
    assert!(table.contains("[1,2]"), "{table}");
}

#[test]
fn update_doc_replaces_only_the_fields_given() {
    let s = TestStore::new();
    s.ok(&[
        "create-doc",
        "old body",
        "--category",
        "c",
        "--version",
        "v1",
    ]);
    s.ok(&["add-input", "1", "1", "--output", "2"]);
    assert_eq!(s.ok(&["update-doc", "1", "--version", "v2"]), "");
    assert_eq!(
        s.ok(&["get", "1"]),
        "{\"id\":1,\"category\":\"c\",\"version\":\"v2\",\"body\":\"old body\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":2}]}\n"
    );
    s.with_stdin(b"new body")
        .ok(&["update-doc", "1", "-", "--category", "d"]);
    let file = s.tmp().join("b");
    std::fs::write(&file, "file body").unwrap();
    s.ok(&["update-doc", "1", "--file", file.to_str().unwrap()]);
    s.ok(&["update-doc", "1", "arg body"]);
    assert_eq!(
        s.ok(&["get", "1"]),
        "{\"id\":1,\"category\":\"d\",\"version\":\"v2\",\"body\":\"arg body\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":2}]}\n"
    );
    // Nothing to change is a usage error, and changes nothing.
    let before = s.snapshot();
    let (code, err) = s.fails(&["update-doc", "1"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn delete_doc_and_delete_input() {
    let s = TestStore::new();
    s.ok(&["create-doc", "a"]);
    s.ok(&["create-doc", "b"]);
    for v in ["1", "2", "3"] {
        s.ok(&["add-input", "2", v, "--output", v]);
    }
    assert_eq!(s.ok(&["delete-input", "2", "2"]), "");
    assert_eq!(
        s.ok(&["get", "2"]),
        "{\"id\":2,\"category\":null,\"version\":null,\"body\":\"b\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":1},{\"node\":3,\"input\":3,\"output\":3}]}\n"
    );
    let (code, _) = s.fails(&["get", "2", "--node", "2"]);
    assert_eq!(code, 3);
    // Node ids are never reused within a document.
    assert_eq!(s.ok(&["add-input", "2", "4"]), "4\n");
    assert_eq!(s.ok(&["delete-doc", "1"]), "");
    let (code, err) = s.fails(&["get", "1"]);
    assert_eq!((code, err.as_str()), (3, "stratum: document 1 not found\n"));
    assert_eq!(s.ok(&["list", "--json"]).lines().count(), 1);
}

#[test]
fn list_as_table_and_json_lines_with_category_filter() {
    let s = TestStore::new();
    s.ok(&[
        "create-doc",
        "12345",
        "--category",
        "easy",
        "--version",
        "v1",
    ]);
    s.ok(&["create-doc", "", "--category", "hard"]);
    s.ok(&["create-doc", "xyz"]);
    s.ok(&["add-input", "1", "1", "--output", "1"]);
    s.ok(&["add-input", "1", "2"]);
    assert_eq!(
        s.ok(&["list", "--json"]),
        concat!(
            "{\"id\":1,\"key\":null,\"category\":\"easy\",\"version\":\"v1\",\"inputs\":2,\"outputs\":1,\"body_bytes\":5}\n",
            "{\"id\":2,\"key\":null,\"category\":\"hard\",\"version\":null,\"inputs\":0,\"outputs\":0,\"body_bytes\":0}\n",
            "{\"id\":3,\"key\":null,\"category\":null,\"version\":null,\"inputs\":0,\"outputs\":0,\"body_bytes\":3}\n",
        )
    );
    assert_eq!(
        s.ok(&["list", "--json", "--category", "hard"]),
        "{\"id\":2,\"key\":null,\"category\":\"hard\",\"version\":null,\"inputs\":0,\"outputs\":0,\"body_bytes\":0}\n"
    );
    let table = s.ok(&["list", "--category", "easy"]);
    assert!(table.is_ascii(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[1].contains("id") && lines[1].contains("body size"),
        "{table}"
    );
    assert!(
        lines[3].contains("easy") && lines[3].contains("v1"),
        "{table}"
    );
}

#[test]
fn a_long_list_is_one_seamless_table() {
    let s = TestStore::new();
    // More rows than one rendering page, with a wider id near the end.
    s.load_docs(1100, |i| "b".repeat(i % 7));
    let table = s.ok(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1100 + 4, "{}", &table[..400]);
    let width = lines[0].len();
    assert!(lines.iter().all(|l| l.len() == width), "ragged table");
    assert!(lines[0].starts_with("+--") && lines[1103].starts_with("+--"));
    assert!(lines[2].starts_with("+=="));
    for (i, row) in lines[3..1103].iter().enumerate() {
        assert!(row.starts_with('|'), "row {i}: {row}");
        let id: usize = row
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(id, i + 1);
    }
}

#[test]
fn dir_comes_from_the_option_the_environment_or_the_default() {
    let s = TestStore::new();
    let env_dir = s.tmp().join("from-env");
    let out = std::process::Command::new(BIN)
        .current_dir(s.tmp())
        .env("STRATUM_DIR", &env_dir)
        .env_remove("NO_COLOR")
        .args(["create-doc", "x"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(env_dir.join("LOCK").exists());
    let out = std::process::Command::new(BIN)
        .current_dir(s.tmp())
        .env_remove("STRATUM_DIR")
        .args(["create-doc", "y"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(s.tmp().join("stratum-data").join("LOCK").exists());
    // --dir wins over the environment.
    let out = std::process::Command::new(BIN)
        .current_dir(s.tmp())
        .env("STRATUM_DIR", &env_dir)
        .args(["--dir", s.data().to_str().unwrap(), "create-doc", "z"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let s = TestStore::new();
    assert_eq!(
        s.ok(&[
            "--no-sync",
            "create-doc",
            "a",
            "--segment-size",
            "8K",
            "--quiet"
        ]),
        "1\n"
    );
    assert_eq!(
        s.ok(&["--lock-timeout", "0.5", "-q", "get", "1", "--body"]),
        "a"
    );
    assert_eq!(s.ok(&["dump", "--quiet"]), s.ok(&["dump"]));
}

#[test]
fn segment_size_and_lock_timeout_are_checked() {
    let s = TestStore::new();
    for (args, needle) in [
        (&["--segment-size", "0", "create-doc"][..], "at least 4096"),
        (&["--segment-size", "4095", "create-doc"], "at least 4096"),
        (
            &["--segment-size", "12Q", "create-doc"],
            "unknown size suffix",
        ),
        (
            &["--lock-timeout=-1", "create-doc"],
            "not 0 or more seconds",
        ),
        (&["--lock-timeout", "1e30", "create-doc"], "too long a wait"),
        (&["--lock-timeout", "soon", "create-doc"], "not a number"),
    ] {
        let (code, err) = s.fails(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!s.data().exists());
    assert_eq!(s.ok(&["--segment-size", "4096", "create-doc"]), "1\n");
    assert_eq!(
        s.ok(&["--segment-size", "1G", "--lock-timeout", "0", "create-doc"]),
        "2\n"
    );
}

#[test]
fn every_command_has_help_with_examples() {
    let s = TestStore::new();
    let top = s.ok(&["--help"]);
    assert!(
        top.contains("Examples:") && top.contains("Exit codes:"),
        "{top}"
    );
    let names = crate::help::subcommands(&top);
    assert!(names.len() >= 14, "{names:?}");
    for name in names {
        let help = s.ok(&[&name, "--help"]);
        assert!(
            help.contains("Examples:\n  stratum "),
            "{name} --help has no example:\n{help}"
        );
        let summary = help.lines().next().unwrap_or("");
        assert!(
            !summary.trim().is_empty() && !summary.starts_with("Usage:"),
            "{name} --help has no one-line summary:\n{help}"
        );
    }
    assert!(!s.data().exists(), "--help must not touch the store");
    let version = s.ok(&["--version"]);
    assert!(version.starts_with("stratum "), "{version}");
}

#[test]
fn no_arguments_or_unknown_commands_are_usage_errors() {
    let s = TestStore::new();
    let (_, run) = s.run(&[], None);
    assert_eq!(run.code, 2);
    let (code, err) = s.fails(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("frobnicate"), "{err}");
}
