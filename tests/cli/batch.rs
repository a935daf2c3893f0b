//! `load` and `apply`: JSON Lines in, one atomic write, all or nothing.

use crate::util::TestStore;

#[test]
fn load_assigns_new_ids_and_prints_them() {
    let s = TestStore::new();
    s.ok(&["create-doc", "existing"]);
    let input = concat!(
        "{\"id\":7,\"category\":\"c\",\"version\":null,\"body\":\"a\",\"inputs\":[{\"node\":4,\"input\":1,\"output\":2}]}\n",
        "\n",
        "{\"body\":\"b\",\"inputs\":[{\"input\":[1.0]},{\"input\":\"x\",\"output\":null}]}\n",
        "{}\n",
    );
    assert_eq!(s.with_stdin(input.as_bytes()).ok(&["load"]), "2\n3\n4\n");
    assert_eq!(
        s.ok(&["get", "2"]),
        "{\"id\":2,\"category\":\"c\",\"version\":null,\"body\":\"a\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":2}]}\n"
    );
    assert_eq!(
        s.ok(&["get", "3"]),
        "{\"id\":3,\"category\":null,\"version\":null,\"body\":\"b\",\"inputs\":[{\"node\":1,\"input\":[1.0],\"output\":null},{\"node\":2,\"input\":\"x\",\"output\":null}]}\n"
    );
    assert_eq!(
        s.ok(&["get", "4"]),
        "{\"id\":4,\"category\":null,\"version\":null,\"body\":\"\",\"inputs\":[]}\n"
    );
    // From a file, and with `-`.
    let file = s.tmp().join("in.jsonl");
    std::fs::write(&file, "{\"body\":\"f\"}\n").unwrap();
    assert_eq!(s.ok(&["load", file.to_str().unwrap()]), "5\n");
    assert_eq!(s.with_stdin(b"{\"body\":\"g\"}").ok(&["load", "-"]), "6\n");
    assert_eq!(s.with_stdin(b"").ok(&["load"]), "");
}

#[test]
fn a_bad_line_fails_the_whole_load_naming_the_line() {
    let s = TestStore::new();
    s.ok(&["create-doc", "existing"]);
    let good = "{\"body\":\"ok\",\"inputs\":[{\"input\":1}]}\n";
    for (bad, needle) in [
        ("{\"body\":\"x\",\"inputs\":[{\"input\":{bad}]}", "line 3: "),
        (
            "not json",
            "line 3: not valid JSON at column 2: expected a JSON value",
        ),
        (
            "[1]",
            "line 3: expected a document (a JSON object with \"id\"",
        ),
        (
            "{",
            "line 3: the line ends inside the JSON value: a document must be on one line",
        ),
        (
            "{\"id\":\"x\"}",
            "line 3: field \"id\": expected a whole number from 0 (or null), found the string \"x\"",
        ),
        (
            "{\"body\":\"x\",\"surprise\":1}",
            "unknown field \"surprise\" in a document",
        ),
        (
            "{\"body\":\"x\",\"body_base64\":\"eA==\"}",
            "either body or body_base64",
        ),
        ("{\"body_base64\":\"!!\"}", "line 3: "),
        (
            "{\"inputs\":[{\"output\":1}]}",
            "needs the field \"inputs[0].input\"",
        ),
    ] {
        let input = format!("{good}{good}{bad}\n{good}");
        let before = s.snapshot();
        let (code, err) = s.with_stdin(input.as_bytes()).fails(&["load"]);
        assert_eq!(code, 4, "{bad}: {err}");
        assert!(
            err.contains(needle) && err.contains("line 3"),
            "{bad}: {err}"
        );
        // One location, the line: no serde "at line 1 column N" after it.
        assert!(!err.contains(" at line "), "{bad}: {err}");
        assert_eq!(s.snapshot(), before, "{bad}");
    }
    let (code, err) = s
        .with_stdin(b"{\"body\":\"x\"}\n\xff\xfe\n")
        .fails(&["load"]);
    assert_eq!(code, 4);
    assert!(err.contains("line 2: not UTF-8"), "{err}");
    // Nothing was consumed: the next id follows the existing document.
    assert_eq!(s.ok(&["create-doc"]), "2\n");
}

/// A line that is not UTF-8, in a file: refused with its line number and
/// the same words as on stdin, wherever it falls (early, where the writer
/// parses the first batch, or late, past many batches the reader read
/// ahead and the line checked by whichever thread parses it), and nothing
/// is loaded.
#[test]
fn load_from_a_file_refuses_a_line_that_is_not_utf8_wherever_it_is() {
    let s = TestStore::new();
    s.ok(&["create-doc", "a"]);
    let good = format!(
        "{{\"body\":\"{}\",\"inputs\":[{{\"input\":1}}]}}\n",
        "x".repeat(3000)
    );
    for before_bad in [1usize, 3000] {
        let mut input = good.repeat(before_bad).into_bytes();
        input.extend_from_slice(b"{\"body\":\"\xff\"}\n");
        input.extend_from_slice(good.repeat(10).as_bytes());
        let file = s.tmp().join("bad.jsonl");
        std::fs::write(&file, &input).unwrap();
        let snapshot = s.snapshot();
        let (code, err) = s.fails(&["load", file.to_str().unwrap()]);
        assert_eq!(code, 4, "{err}");
        assert_eq!(
            err,
            format!(
                "stratum: line {}: not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 9\n",
                before_bad + 1
            )
        );
        assert_eq!(s.snapshot(), snapshot, "{before_bad}");
    }
    assert_eq!(s.ok(&["create-doc"]), "2\n");
}

#[test]
fn load_keep_ids_refuses_ids_in_use() {
    let s = TestStore::new();
    s.ok(&["create-doc", "a"]);
    s.ok(&["create-doc", "b"]);
    s.ok(&["delete-doc", "2"]);
    let before = s.snapshot();
    for (line, needle) in [
        ("{\"id\":1,\"body\":\"x\"}", "document id 1 is already used"),
        ("{\"id\":2,\"body\":\"x\"}", "document id 2 is already used"),
        ("{\"body\":\"x\"}", "needs an \"id\""),
        (
            "{\"id\":9,\"inputs\":[{\"node\":2,\"input\":1},{\"node\":1,\"input\":1}]}",
            "must ascend",
        ),
    ] {
        let input = format!("{{\"id\":5,\"body\":\"fine\"}}\n{line}\n");
        let (code, err) = s
            .with_stdin(input.as_bytes())
            .fails(&["load", "--keep-ids"]);
        assert_eq!(code, 4, "{line}: {err}");
        assert!(
            err.contains("line 2") && err.contains(needle),
            "{line}: {err}"
        );
        assert_eq!(s.snapshot(), before);
    }
    let dup = "{\"id\":5,\"body\":\"x\"}\n{\"id\":5,\"body\":\"y\"}\n";
    assert_eq!(
        s.with_stdin(dup.as_bytes())
            .fails(&["load", "--keep-ids"])
            .0,
        4
    );
    assert_eq!(
        s.with_stdin(b"{\"id\":5,\"body\":\"x\"}")
            .ok(&["load", "--keep-ids"]),
        "5\n"
    );
    // Kept ids move the counter: new documents come after them.
    assert_eq!(s.ok(&["create-doc"]), "6\n");
}

#[test]
fn dump_then_load_keep_ids_reproduces_a_store_exactly() {
    let s = TestStore::new();
    for i in 0..6 {
        s.ok(&[
            "create-doc",
            &format!("doc {i}"),
            "--category",
            if i % 2 == 0 { "even" } else { "odd" },
        ]);
        for j in 0..3 {
            s.ok(&[
                "add-input",
                &(i + 1).to_string(),
                &format!("{{\"j\":{j},\"x\":1.50}}"),
                "--output",
                "[1,\"a\"]",
            ]);
        }
    }
    s.with_stdin(&[0xff, 0x00, 0x80])
        .ok(&["update-doc", "4", "-", "--version", "v9"]);
    s.ok(&["delete-doc", "2"]);
    s.ok(&["delete-doc", "6"]);
    s.ok(&["delete-input", "3", "1"]);
    s.ok(&["add-input", "5", "\"no output\"", "--output", "null"]);
    let dump = s.ok(&["dump"]);
    assert_eq!(dump.lines().count(), 4);

    let copy = TestStore::new();
    assert_eq!(
        copy.with_stdin(dump.as_bytes()).ok(&["load", "--keep-ids"]),
        "1\n3\n4\n5\n"
    );
    assert_eq!(copy.ok(&["dump"]), dump);
    assert_eq!(copy.ok(&["list", "--json"]), s.ok(&["list", "--json"]));
    // Without --keep-ids the same documents get fresh, dense ids.
    let renumbered = TestStore::new();
    assert_eq!(
        renumbered.with_stdin(dump.as_bytes()).ok(&["load"]),
        "1\n2\n3\n4\n"
    );
    assert!(
        renumbered
            .ok(&["get", "2"])
            .starts_with("{\"id\":2,\"category\":\"even\"")
    );
}

/// Piped input is parsed before the lock and kept parsed for the pass
/// under it; a file is parsed under the lock. Both make the same store,
/// whatever the lines hold, and a bad line is refused with the same words.
#[test]
fn piped_and_file_loads_make_the_same_store() {
    let s = TestStore::new();
    s.ok(&["create-doc", "a", "--key", "k-a", "--meta", "{\"t\": [1]}"]);
    s.ok(&["add-input", "1", "{\"x\": 1.50}", "--output", "null"]);
    s.ok(&["add-input", "1", "\"\\u00e9 数据\"", "--meta", "{\"m\":1}"]);
    s.with_stdin(&[0xff, 0x00, 0x80]).ok(&[
        "create-doc",
        "-",
        "--category",
        "bin",
        "--version",
        "v",
    ]);
    s.ok(&["create-doc", "gone"]);
    s.ok(&["delete-doc", "3"]);
    s.ok(&["delete-input", "1", "1"]);
    let dump = s.ok(&["dump", "--high-water"]);
    let file = s.tmp().join("dump.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let (piped, from_file) = (TestStore::new(), TestStore::new());
    for args in [
        &["load", "--keep-ids"][..],
        &["load", "--on-conflict", "replace"],
    ] {
        let out = piped.with_stdin(dump.as_bytes()).ok(args);
        let file_args: Vec<&str> = args
            .iter()
            .copied()
            .chain([file.to_str().unwrap()])
            .collect();
        assert_eq!(from_file.ok(&file_args), out);
    }
    for args in [
        &["dump", "--high-water"][..],
        &["list", "--json"],
        &["stats", "--json"],
    ] {
        assert_eq!(piped.ok(args), from_file.ok(args), "{args:?}");
    }
    assert!(piped.ok(&["dump"]).starts_with(&s.ok(&["dump"])));
    let bad = format!("{dump}{{\"body\":\"x\",\"inputs\":[{{\"input\":[1,]}}]}}\n");
    std::fs::write(&file, &bad).unwrap();
    let (piped, from_file) = (TestStore::new(), TestStore::new());
    let refused = piped.with_stdin(bad.as_bytes()).fails(&["load"]);
    assert_eq!(refused.0, 4);
    assert!(refused.1.starts_with("stratum: line 4: "), "{}", refused.1);
    assert_eq!(refused, from_file.fails(&["load", file.to_str().unwrap()]));
}

#[test]
fn apply_runs_every_op_and_resolves_line_references() {
    let s = TestStore::new();
    s.ok(&["create-doc", "pre-existing"]);
    s.ok(&["add-input", "1", "1"]);
    let ops = concat!(
        "{\"op\":\"create-doc\",\"body\":\"new\",\"category\":\"c\",\"version\":\"v1\"}\n",
        "{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":[1, 2],\"output\":3}\n",
        "{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":{\"k\":-3.25}}\n",
        "\n",
        "{\"op\":\"set-output\",\"doc\":\"$1\",\"node\":2,\"output\":1.0}\n",
        "{\"op\":\"update-doc\",\"doc\":\"$1\",\"version\":\"v2\"}\n",
        "{\"op\":\"create-doc\",\"body_base64\":\"AP8=\"}\n",
        "{\"op\":\"delete-input\",\"doc\":\"$1\",\"node\":1}\n",
        "{\"op\":\"add-input\",\"doc\":1,\"input\":2}\n",
        "{\"op\":\"delete-doc\",\"doc\":\"$7\"}\n",
        "{\"op\":\"create-doc\"}\n",
    );
    assert_eq!(
        s.with_stdin(ops.as_bytes()).ok(&["apply"]),
        concat!(
            "{\"line\":1,\"op\":\"create-doc\",\"doc\":2}\n",
            "{\"line\":2,\"op\":\"add-input\",\"doc\":2,\"node\":1}\n",
            "{\"line\":3,\"op\":\"add-input\",\"doc\":2,\"node\":2}\n",
            "{\"line\":5,\"op\":\"set-output\",\"doc\":2,\"node\":2}\n",
            "{\"line\":6,\"op\":\"update-doc\",\"doc\":2}\n",
            "{\"line\":7,\"op\":\"create-doc\",\"doc\":3}\n",
            "{\"line\":8,\"op\":\"delete-input\",\"doc\":2,\"node\":1}\n",
            "{\"line\":9,\"op\":\"add-input\",\"doc\":1,\"node\":2}\n",
            "{\"line\":10,\"op\":\"delete-doc\",\"doc\":3}\n",
            "{\"line\":11,\"op\":\"create-doc\",\"doc\":4}\n",
        )
    );
    assert_eq!(
        s.ok(&["dump"]),
        concat!(
            "{\"id\":1,\"category\":null,\"version\":null,\"body\":\"pre-existing\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":null},{\"node\":2,\"input\":2,\"output\":null}]}\n",
            "{\"id\":2,\"category\":\"c\",\"version\":\"v2\",\"body\":\"new\",\"inputs\":[{\"node\":2,\"input\":{\"k\":-3.25},\"output\":1.0}]}\n",
            "{\"id\":4,\"category\":null,\"version\":null,\"body\":\"\",\"inputs\":[]}\n",
        )
    );
    let file = s.tmp().join("ops.jsonl");
    std::fs::write(&file, "{\"op\":\"delete-doc\",\"doc\":4}\n").unwrap();
    assert_eq!(
        s.ok(&["apply", file.to_str().unwrap()]),
        "{\"line\":1,\"op\":\"delete-doc\",\"doc\":4}\n"
    );
}

#[test]
fn a_failing_apply_line_applies_nothing_and_sets_the_exit_code() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    s.ok(&["add-input", "1", "1"]);
    let head = "{\"op\":\"create-doc\",\"body\":\"new\"}\n{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":1}\n";
    for (line, code, needle) in [
        (
            "{\"op\":\"delete-doc\",\"doc\":9}",
            3,
            "line 3: document 9 not found",
        ),
        (
            "{\"op\":\"set-output\",\"doc\":1,\"node\":7,\"output\":1}",
            3,
            "line 3: input node 7 not found",
        ),
        (
            "{\"op\":\"add-input\",\"doc\":\"$2\",\"input\":1}",
            4,
            "line 2 is not a create-doc",
        ),
        (
            "{\"op\":\"add-input\",\"doc\":\"$3\",\"input\":1}",
            4,
            "earlier line",
        ),
        (
            "{\"op\":\"add-input\",\"doc\":1,\"input\":[1,}",
            4,
            "line 3: ",
        ),
        (
            "{\"op\":\"rename-doc\",\"doc\":1}",
            4,
            "unknown op \"rename-doc\"",
        ),
        (
            "{\"op\":\"create-doc\",\"node\":1}",
            4,
            "does not apply to create-doc",
        ),
        ("{\"op\":\"update-doc\",\"doc\":1}", 4, "needs at least one"),
        (
            "{\"op\":\"delete-input\",\"doc\":1}",
            4,
            "delete-input needs \"node\"",
        ),
        (
            "[1]",
            4,
            "line 3: expected an operation (a JSON object with \"op\"",
        ),
        (
            "{\"op\":\"create-doc\",}",
            4,
            "line 3: not valid JSON at column 20: trailing comma",
        ),
        (
            "{\"op\":\"set-output\",\"doc\":1,\"node\":\"2\",\"output\":1}",
            4,
            "line 3: field \"node\": expected a whole number",
        ),
    ] {
        let input = format!("{head}{line}\n{{\"op\":\"create-doc\"}}\n");
        let before = s.snapshot();
        let (got, err) = s.with_stdin(input.as_bytes()).fails(&["apply"]);
        assert_eq!(got, code, "{line}: {err}");
        assert!(
            err.contains(needle) && err.contains("line 3") && !err.contains(" at line "),
            "{line}: expected {needle:?} in {err}"
        );
        assert_eq!(s.snapshot(), before, "{line}");
    }
    // Deleting a document earlier in the batch makes later ops on it fail.
    let input = "{\"op\":\"delete-doc\",\"doc\":1}\n{\"op\":\"add-input\",\"doc\":1,\"input\":1}\n";
    let (code, err) = s.with_stdin(input.as_bytes()).fails(&["apply"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(s.ok(&["create-doc"]), "2\n");
}
