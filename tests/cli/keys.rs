//! Document keys, metadata and `--on-conflict` from the command line: every
//! command that takes a document takes `key:NAME`, and every refusal has
//! its exit code and leaves the store's bytes as they were.

use crate::util::{TestStore, json};

/// A store with `two-sum` (id 1, two nodes) and an unkeyed document 2.
fn keyed() -> TestStore {
    let s = TestStore::new();
    assert_eq!(
        s.ok(&[
            "create-doc",
            "Two sum",
            "--key",
            "two-sum",
            "--category",
            "easy"
        ]),
        "1\n"
    );
    s.ok(&["add-input", "key:two-sum", "[2,7]", "--output", "[0,1]"]);
    s.ok(&["add-input", "key:two-sum", "[3,3]"]);
    s.ok(&["create-doc", "no key"]);
    s
}

/// Runs `args` expecting exit `code` with `needle` on stderr, and checks
/// that the store's files are byte for byte what they were.
fn refused(s: &TestStore, code: i32, cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        let before = s.snapshot();
        let (got, err) = s.fails(args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(s.snapshot(), before, "{args:?} changed the store");
    }
}

#[test]
fn every_command_that_takes_a_document_takes_its_key() {
    let s = keyed();
    let by_id = s.ok(&["get", "1"]);
    assert!(
        by_id.starts_with(r#"{"id":1,"key":"two-sum","category":"easy""#),
        "{by_id}"
    );
    assert_eq!(s.ok(&["get", "key:two-sum"]), by_id);
    assert_eq!(
        s.ok(&["get", "key:two-sum", "--node", "1", "--output"]),
        "[0,1]\n"
    );
    s.ok(&["set-output", "key:two-sum", "2", "[0,1]"]);
    s.ok(&["update-doc", "key:two-sum", "--doc-version", "v2"]);
    s.ok(&[
        "update-input",
        "key:two-sum",
        "2",
        "--meta",
        r#"{"label":"twice"}"#,
    ]);
    assert_eq!(s.ok(&["add-input", "key:two-sum", "9"]), "3\n");
    s.ok(&["delete-input", "key:two-sum", "3"]);
    assert_eq!(
        s.ok(&["get", "1"]),
        concat!(
            r#"{"id":1,"key":"two-sum","category":"easy","version":"v2","body":"Two sum","inputs":["#,
            r#"{"node":1,"input":[2,7],"output":[0,1]},"#,
            r#"{"node":2,"input":[3,3],"meta":{"label":"twice"},"output":[0,1]}]}"#,
            "\n"
        )
    );
    let listed = s.ok(&["list", "--json"]);
    assert_eq!(json(listed.lines().next().unwrap())["key"], "two-sum");
    assert_eq!(
        json(listed.lines().nth(1).unwrap())["key"],
        serde_json::Value::Null
    );
    assert!(s.ok(&["list"]).contains("two-sum"));
    // apply names documents by key too.
    let op = br#"{"op":"set-output","doc":"key:two-sum","node":1,"output":[1,0]}"#;
    assert_eq!(
        s.with_stdin(op).ok(&["apply", "-"]),
        "{\"line\":1,\"op\":\"set-output\",\"doc\":1,\"node\":1}\n"
    );
    s.ok(&["delete-doc", "key:two-sum"]);
    let (code, _) = s.fails(&["get", "1"]);
    assert_eq!(code, 3);
}

#[test]
fn an_unknown_key_exits_3_and_changes_nothing() {
    let s = keyed();
    let missing = "no document has the key \"nope\"";
    refused(
        &s,
        3,
        &[
            (&["get", "key:nope"], missing),
            (&["add-input", "key:nope", "1"], missing),
            (&["set-output", "key:nope", "1", "1"], missing),
            (&["set-output", "key:nope", "1", "--clear"], missing),
            (&["update-doc", "key:nope", "--category", "c"], missing),
            (&["update-input", "key:nope", "1", "--clear-meta"], missing),
            (&["delete-input", "key:nope", "1"], missing),
            (&["delete-doc", "key:nope"], missing),
            // A key is a key even when it looks like an id.
            (&["get", "key:1"], "no document has the key \"1\""),
        ],
    );
    let before = s.snapshot();
    let op = br#"{"op":"delete-doc","doc":"key:nope"}"#;
    let (code, err) = s.with_stdin(op).fails(&["apply", "-"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 1") && err.contains(missing), "{err}");
    // --if-exists covers an unknown key as it covers an unknown id.
    s.ok(&["delete-doc", "key:nope", "--if-exists"]);
    s.ok(&["delete-input", "key:nope", "1", "--if-exists"]);
    assert_eq!(s.snapshot(), before);
}

#[test]
fn a_taken_or_malformed_key_exits_4_and_changes_nothing() {
    let s = keyed();
    let long = "k".repeat(1025);
    let taken = "key \"two-sum\" is already used by document 1";
    refused(
        &s,
        4,
        &[
            (&["create-doc", "x", "--key", "two-sum"], taken),
            (&["update-doc", "2", "--key", "two-sum"], taken),
            (
                &["create-doc", "x", "--key", &long],
                "1 to 1024 bytes long (got 1025)",
            ),
            (
                &["create-doc", "x", "--key", ""],
                "1 to 1024 bytes long (got 0)",
            ),
            (&["update-doc", "2", "--key", &long], "1 to 1024 bytes long"),
        ],
    );
    for line in [
        r#"{"body":"x","key":"two-sum"}"#.to_owned(),
        format!(r#"{{"body":"x","key":"{long}"}}"#),
        // Two lines of one batch with the same key.
        "{\"body\":\"a\",\"key\":\"k\"}\n{\"body\":\"b\",\"key\":\"k\"}".to_owned(),
    ] {
        let before = s.snapshot();
        let (code, err) = s.with_stdin(line.as_bytes()).fails(&["load", "-"]);
        assert_eq!(code, 4, "{line}: {err}");
        assert!(err.contains("key"), "{err}");
        let op = line.replace("{\"body\"", "{\"op\":\"create-doc\",\"body\"");
        let (code, err) = s.with_stdin(op.as_bytes()).fails(&["apply", "-"]);
        assert_eq!(code, 4, "{op}: {err}");
        assert_eq!(s.snapshot(), before, "{line}");
    }
    // A 1024-byte key is the longest there is.
    let longest = "k".repeat(1024);
    assert_eq!(s.ok(&["create-doc", "x", "--key", &longest]), "3\n");
    assert_eq!(s.ok(&["get", &format!("key:{longest}"), "--body"]), "x");
}

#[test]
fn a_document_argument_is_an_id_or_key_name_and_nothing_else() {
    let s = keyed();
    refused(
        &s,
        2,
        &[
            (&["get", "two-sum"], "is not a document: give its id"),
            (&["get", "key:"], "1 to 1024 bytes"),
            (
                &["get", &format!("key:{}", "k".repeat(1025))],
                "1 to 1024 bytes",
            ),
            (&["delete-doc", "0"], "ids start at 1"),
            (
                &["update-doc", "1", "--key", "a", "--clear-key"],
                "cannot be used with",
            ),
        ],
    );
    let (code, err) = s
        .with_stdin(br#"{"op":"delete-doc","doc":"two-sum"}"#)
        .fails(&["apply", "-"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("\"key:NAME\""), "{err}");
}

#[test]
fn a_key_is_freed_by_delete_and_clear_but_ids_are_never_reused() {
    let s = keyed();
    s.ok(&["delete-doc", "key:two-sum"]);
    assert_eq!(s.ok(&["create-doc", "again", "--key", "two-sum"]), "3\n");
    assert_eq!(s.ok(&["get", "key:two-sum", "--body"]), "again");
    s.ok(&["update-doc", "key:two-sum", "--clear-key"]);
    let (code, _) = s.fails(&["get", "key:two-sum"]);
    assert_eq!(code, 3);
    assert!(!s.ok(&["get", "3"]).contains("\"key\""));
    s.ok(&["update-doc", "2", "--key", "two-sum"]);
    assert_eq!(s.ok(&["get", "key:two-sum", "--body"]), "no key");
    // Renaming a document to its own key is no conflict.
    s.ok(&["update-doc", "2", "--key", "two-sum"]);
    // The key survives compaction and reopening.
    s.ok(&["-q", "compact"]);
    assert_eq!(s.ok(&["get", "key:two-sum", "--body"]), "no key");
    assert_eq!(s.ok(&["create-doc", "four"]), "4\n");
}

#[test]
fn meta_is_set_patched_and_cleared_in_exact_text() {
    let s = TestStore::new();
    s.ok(&[
        "create-doc",
        "p",
        "--meta",
        r#"{"z": 1.0, "tags": ["dp"], "big": -9999999999999999}"#,
        "--category",
        "c",
        "--doc-version",
        "v",
    ]);
    s.ok(&["add-input", "1", "1", "--meta", r#"{"label": "\u00e9"}"#]);
    let meta = |s: &TestStore| json(&s.ok(&["get", "1"]))["meta"].to_string();
    s.ok(&[
        "update-doc",
        "1",
        "--meta-patch",
        r#"{"tags": ["dp", "greedy"], "big": null, "new": 123e65}"#,
    ]);
    let got = s.ok(&["get", "1"]);
    assert!(
        got.contains(r#""meta":{"z":1.0,"tags":["dp","greedy"],"new":123e65}"#),
        "{got}"
    );
    s.ok(&["update-input", "1", "1", "--meta-patch", r#"{"n": 2}"#]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "1"]),
        "{\"node\":1,\"input\":1,\"meta\":{\"label\":\"\\u00e9\",\"n\":2},\"output\":null}\n"
    );
    let table = s.ok(&["get", "1", "--table"]);
    assert!(table.contains(r#"{"z":1.0,"tags""#), "{table}");
    assert!(table.contains(r#"{"label":"\u00e9","n":2}"#), "{table}");
    assert!(
        s.ok(&["dump"])
            .contains(r#""meta":{"label":"\u00e9","n":2}"#)
    );
    s.ok(&["update-doc", "1", "--meta", r#"{"only": true}"#]);
    assert_eq!(meta(&s), r#"{"only":true}"#);
    s.ok(&[
        "update-doc",
        "1",
        "--clear-meta",
        "--clear-category",
        "--clear-version",
    ]);
    s.ok(&["update-input", "1", "1", "--clear-meta"]);
    assert_eq!(
        s.ok(&["get", "1"]),
        "{\"id\":1,\"category\":null,\"version\":null,\"body\":\"p\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":null}]}\n"
    );
    // Meta that is not an object, or a patch that is not, is exit 4;
    // update-input with nothing to do is a usage error.
    refused(
        &s,
        4,
        &[
            (
                &["create-doc", "x", "--meta", "[1]"],
                "meta must be a JSON object",
            ),
            (
                &["update-doc", "1", "--meta-patch", "3"],
                "meta must be a JSON object",
            ),
            (
                &["update-input", "1", "1", "--meta", "null"],
                "meta must be a JSON object",
            ),
            (&["update-input", "1", "1", "--meta", "{"], "invalid JSON"),
        ],
    );
    refused(
        &s,
        3,
        &[(
            &["update-input", "1", "9", "--clear-meta"],
            "input node 9 not found",
        )],
    );
    refused(
        &s,
        2,
        &[
            (&["update-input", "1", "1"], "needs one of"),
            (
                &["update-doc", "1", "--meta", "{}", "--clear-meta"],
                "cannot be used with",
            ),
        ],
    );
}

#[test]
fn apply_sets_keys_meta_nulls_and_clears() {
    let s = TestStore::new();
    let ops = concat!(
        r#"{"op":"create-doc","body":"b","key":"k","category":"c","meta":{"t":[1.0]}}"#,
        "\n",
        r#"{"op":"add-input","doc":"$1","input":null,"output":null,"meta":{"l":1}}"#,
        "\n",
        r#"{"op":"add-input","doc":"key:k","input":2,"output":3}"#,
        "\n",
        r#"{"op":"clear-output","doc":"key:k","node":2}"#,
        "\n",
        r#"{"op":"update-input","doc":"key:k","node":1,"meta_patch":{"m":2}}"#,
        "\n",
        r#"{"op":"update-doc","doc":"key:k","category":null,"meta_patch":{"u":true}}"#,
        "\n",
    );
    s.with_stdin(ops.as_bytes()).ok(&["apply", "-"]);
    assert_eq!(
        s.ok(&["get", "key:k"]),
        concat!(
            r#"{"id":1,"key":"k","category":null,"version":null,"meta":{"t":[1.0],"u":true},"body":"b","inputs":["#,
            r#"{"node":1,"input":null,"meta":{"l":1,"m":2},"output":null,"has_output":true},"#,
            r#"{"node":2,"input":2,"output":null}]}"#,
            "\n"
        )
    );
    let clear = br#"{"op":"update-doc","doc":1,"key":null,"meta":null}"#;
    s.with_stdin(clear).ok(&["apply", "-"]);
    assert!(
        s.ok(&["get", "1"])
            .starts_with(r#"{"id":1,"category":null,"version":null,"body""#)
    );
}

/// A fixture file: `two-sum` with two cases and `fizz` with one.
const FIXTURES: &str = concat!(
    r#"{"key":"two-sum","category":"easy","meta":{"tags":["array"]},"body":"Two sum","inputs":[{"input":[2,7],"output":[0,1]},{"input":[3,3],"output":null,"has_output":true}]}"#,
    "\n",
    r#"{"key":"fizz","body":"Fizz","inputs":[{"input":3,"output":"Fizz"}]}"#,
    "\n",
);

#[test]
fn load_on_conflict_replace_regenerates_in_place() {
    let s = TestStore::new();
    s.ok(&["create-doc", "unrelated"]);
    assert_eq!(
        s.with_stdin(FIXTURES.as_bytes()).ok(&["load", "-"]),
        "2\n3\n"
    );
    let dump = s.ok(&["dump"]);
    // The default is fail, exit 4, nothing written.
    let before = s.snapshot();
    let (code, err) = s.with_stdin(FIXTURES.as_bytes()).fails(&["load", "-"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("line 1") && err.contains("already used by document 2"),
        "{err}"
    );
    let (code, _) =
        s.with_stdin(FIXTURES.as_bytes())
            .fails(&["load", "--on-conflict", "fail", "-"]);
    assert_eq!(code, 4);
    assert_eq!(s.snapshot(), before);
    // Loading the same fixtures again with replace writes nothing at all.
    assert_eq!(
        s.with_stdin(FIXTURES.as_bytes())
            .ok(&["load", "--on-conflict", "replace", "-"]),
        "2\n3\n"
    );
    assert_eq!(s.snapshot(), before);
    // Changed fixtures: one output changes, a case is dropped, a field is
    // cleared; ids stay, unchanged nodes keep theirs.
    let changed = FIXTURES
        .replace(r#""output":[0,1]"#, r#""output":[1,0]"#)
        .replace(r#",{"input":[3,3],"output":null,"has_output":true}"#, "")
        .replace(r#""category":"easy","#, "");
    assert_eq!(
        s.with_stdin(changed.as_bytes())
            .ok(&["load", "--on-conflict", "replace", "-"]),
        "2\n3\n"
    );
    assert_eq!(
        s.ok(&["get", "key:two-sum"]),
        "{\"id\":2,\"key\":\"two-sum\",\"category\":null,\"version\":null,\"meta\":{\"tags\":[\"array\"]},\"body\":\"Two sum\",\"inputs\":[{\"node\":1,\"input\":[2,7],\"output\":[1,0]}]}\n"
    );
    // And back: the original dump, but for the node id that was never reused.
    s.with_stdin(FIXTURES.as_bytes())
        .ok(&["load", "--on-conflict", "replace", "-"]);
    let again = s.ok(&["dump"]);
    assert_eq!(
        again,
        dump.replace(r#"{"node":2,"input":[3,3]"#, r#"{"node":3,"input":[3,3]"#)
    );
    // skip leaves existing documents alone and loads the rest.
    let more = format!("{changed}{{\"key\":\"new\",\"body\":\"n\"}}\n");
    let before = s.snapshot();
    assert_eq!(
        s.with_stdin(more.as_bytes())
            .ok(&["load", "--on-conflict", "skip", "-"]),
        "2\n3\n4\n"
    );
    assert_ne!(s.snapshot(), before);
    assert!(s.ok(&["dump"]).starts_with(&again));
    // Ids are kept only without a conflict policy.
    let (code, err) = s.with_stdin(FIXTURES.as_bytes()).fails(&[
        "load",
        "--keep-ids",
        "--on-conflict",
        "skip",
        "-",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _) = s.fails(&["load", "--on-conflict", "merge", "-"]);
    assert_eq!(code, 2);
}

#[test]
fn apply_on_conflict_replaces_or_skips_documents_by_key() {
    let s = TestStore::new();
    let ops = concat!(
        r#"{"op":"create-doc","body":"Two sum","key":"two-sum"}"#,
        "\n",
        r#"{"op":"add-input","doc":"$1","input":[2,7],"output":[0,1]}"#,
        "\n",
        r#"{"op":"add-input","doc":"$1","input":[3,3],"output":null}"#,
        "\n",
    );
    s.with_stdin(ops.as_bytes()).ok(&["apply", "-"]);
    let dump = s.ok(&["dump"]);
    let before = s.snapshot();
    let (code, err) = s.with_stdin(ops.as_bytes()).fails(&["apply", "-"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(s.snapshot(), before);
    let out = s
        .with_stdin(ops.as_bytes())
        .ok(&["apply", "--on-conflict", "replace", "-"]);
    assert_eq!(
        out,
        concat!(
            "{\"line\":1,\"op\":\"create-doc\",\"doc\":1,\"conflict\":\"replaced\"}\n",
            "{\"line\":2,\"op\":\"add-input\",\"doc\":1,\"node\":1}\n",
            "{\"line\":3,\"op\":\"add-input\",\"doc\":1,\"node\":2}\n",
        )
    );
    assert_eq!(s.ok(&["dump"]), dump);
    let out = s
        .with_stdin(ops.as_bytes())
        .ok(&["apply", "--on-conflict", "skip", "-"]);
    assert_eq!(
        out,
        concat!(
            "{\"line\":1,\"op\":\"create-doc\",\"doc\":1,\"conflict\":\"skipped\"}\n",
            "{\"line\":2,\"op\":\"add-input\",\"doc\":1,\"conflict\":\"skipped\"}\n",
            "{\"line\":3,\"op\":\"add-input\",\"doc\":1,\"conflict\":\"skipped\"}\n",
        )
    );
    assert_eq!(s.ok(&["dump"]), dump);
    // A shorter chain with replace: the old nodes past it go.
    let first = ops.lines().take(2).collect::<Vec<_>>().join("\n");
    s.with_stdin(first.as_bytes())
        .ok(&["apply", "--on-conflict", "replace", "-"]);
    assert_eq!(
        s.ok(&["get", "key:two-sum"]),
        "{\"id\":1,\"key\":\"two-sum\",\"category\":null,\"version\":null,\"body\":\"Two sum\",\"inputs\":[{\"node\":1,\"input\":[2,7],\"output\":[0,1]}]}\n"
    );
}

#[test]
fn list_and_dump_select_by_key_prefix_and_meta_field() {
    let s = TestStore::new();
    let lines = concat!(
        r#"{"key":"HumanEval/0","meta":{"entry_point":"has_close","level":1.0},"body":"a"}"#,
        "\n",
        r#"{"key":"HumanEval/1","meta":{"entry_point":"sep","level":1},"body":"b"}"#,
        "\n",
        r#"{"key":"two-sum","meta":{"level":1.0},"body":"c"}"#,
        "\n",
        r#"{"body":"no key"}"#,
        "\n",
    );
    s.with_stdin(lines.as_bytes()).ok(&["load", "-"]);
    let ids = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        let listed: Vec<u64> = s
            .ok(&all)
            .lines()
            .map(|l| json(l)["id"].as_u64().unwrap())
            .collect();
        let mut all = vec!["dump", "--fields", "id"];
        all.extend_from_slice(args);
        let dumped: Vec<u64> = s
            .ok(&all)
            .lines()
            .map(|l| json(l)["id"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, dumped, "{args:?}");
        listed
    };
    assert_eq!(ids(&["--key", "two-sum"]), [3]);
    assert_eq!(ids(&["--key", "HumanEval/"]), Vec::<u64>::new());
    assert_eq!(ids(&["--key-prefix", "HumanEval/"]), [1, 2]);
    assert_eq!(ids(&["--key-prefix", ""]), [1, 2, 3]);
    // Exact text: 1.0 is not 1.
    assert_eq!(ids(&["--meta", "level=1.0"]), [1, 3]);
    assert_eq!(ids(&["--meta", "level=1"]), [2]);
    assert_eq!(ids(&["--meta", r#"entry_point="sep""#]), [2]);
    assert_eq!(ids(&["--meta", "level=1.0", "--key-prefix", "Human"]), [1]);
    assert_eq!(
        ids(&["--meta", "level=1.0", "--meta", r#"entry_point="sep""#]),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(&["--key", "two-sum", "--category", "none"]),
        Vec::<u64>::new()
    );
    // A field no document has selects nothing and is no error.
    assert_eq!(ids(&["--meta", "colour=\"red\""]), Vec::<u64>::new());
    assert_eq!(
        s.ok(&["dump", "--key", "two-sum", "--fields", "key,meta"]),
        "{\"key\":\"two-sum\",\"meta\":{\"level\":1.0}}\n"
    );
    assert!(s.ok(&["list", "--key", "two-sum"]).contains("two-sum"));
    // A malformed filter is a usage error and changes nothing.
    refused(
        &s,
        2,
        &[
            (&["list", "--meta", "level"], "is not FIELD=JSON"),
            (&["dump", "--meta", "=1"], "is not FIELD=JSON"),
            (&["dump", "--meta", "level=hard"], "the value of level"),
            (&["dump", "--records", "--key", "x"], "selection flags"),
        ],
    );
}

#[test]
fn diff_matches_documents_by_key_where_both_sides_have_it() {
    // The old side: fixtures loaded after an unrelated document.
    let old = TestStore::new();
    old.ok(&["create-doc", "unrelated"]);
    old.with_stdin(FIXTURES.as_bytes()).ok(&["load", "-"]);
    // The new side: the same fixtures regenerated into a fresh store, so
    // every id moved down by one; one expected answer changed.
    let new = TestStore::new();
    let changed = FIXTURES.replace(r#""output":"Fizz""#, r#""output":"fizz""#);
    new.with_stdin(changed.as_bytes()).ok(&["load", "-"]);
    new.ok(&["create-doc", "brand new", "--key", "extra"]);
    let (shown, run) = new.run(&["diff", old.data().to_str().unwrap()], None);
    assert_eq!(run.code, 1, "{shown}: {}", run.stderr);
    assert_eq!(
        String::from_utf8(run.stdout.clone()).unwrap(),
        concat!(
            // Old document 1 has no key; new document 1 holds two-sum,
            // which the old side has too, so 1 pairs with nothing.
            "{\"doc\":1,\"change\":\"removed\"}\n",
            "{\"doc\":2,\"key\":\"fizz\",\"node\":1,\"change\":\"changed\",\"field\":\"output\",\"old\":\"Fizz\",\"new\":\"fizz\"}\n",
            "{\"doc\":3,\"key\":\"extra\",\"change\":\"added\"}\n",
        )
    );
    // The same from a dump file, and from stdin.
    let dump = old.ok(&["dump"]);
    let file = new.tmp().join("old.jsonl");
    std::fs::write(&file, &dump).unwrap();
    let (_, by_file) = new.run(&["diff", file.to_str().unwrap()], None);
    let (_, by_stdin) = new.run(&["diff", "-"], Some(dump.as_bytes()));
    assert_eq!(by_file.stdout, run.stdout);
    assert_eq!(by_stdin.stdout, run.stdout);
    // A key on one side only falls back to the id, and shows as a change.
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    let before = s.tmp().join("before.jsonl");
    std::fs::write(&before, s.ok(&["dump"])).unwrap();
    s.ok(&["update-doc", "1", "--key", "named"]);
    let (_, run) = s.run(&["diff", before.to_str().unwrap()], None);
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "{\"doc\":1,\"key\":\"named\",\"change\":\"changed\",\"field\":\"key\",\"old\":null,\"new\":\"named\"}\n"
    );
}

/// Bytes `args` reads from files (read and pread64, as strace reports
/// them), run against `s`.
fn bytes_read(s: &TestStore, args: &[&str]) -> u64 {
    s.strace("read,pread64", args)
        .lines()
        .filter_map(|l| l.rsplit_once("= ")?.1.trim().parse::<u64>().ok())
        .sum()
}

#[test]
fn a_key_lookup_reads_what_an_id_lookup_reads_not_the_store() {
    let s = TestStore::new();
    // Six batches of about 350 KB, each under the segment size: every
    // second one would take the active segment past the size, so it is
    // written as a sealed segment of its own, and the active segment
    // (holding the one before) is sealed too.
    for batch in 0..6 {
        let mut lines = String::new();
        for i in batch * 500 + 1..=batch * 500 + 500 {
            lines.push_str(&format!(
                "{{\"key\":\"p-{i:05}\",\"body\":\"{}\",\"inputs\":[{{\"input\":{i},\"output\":{i}}}]}}\n",
                "x".repeat(600)
            ));
        }
        s.with_stdin(lines.as_bytes())
            .ok(&["-q", "--segment-size", "512K", "load", "-"]);
    }
    assert!(s.files().iter().filter(|f| f.ends_with(".idx")).count() >= 4);
    let lookups = [
        &["get", "key:p-02345"][..],
        &["dump", "--key", "p-02345"],
        &["list", "--key", "p-02345"],
    ];
    // Six segments: an id lookup skips the segments whose id range cannot
    // hold it, a key lookup probes every segment's index (key slots are
    // hashes), so it reads more, but never the store.
    let store = s.disk_bytes();
    for args in lookups {
        let by_key = bytes_read(&s, args);
        assert!(
            by_key * 20 < store,
            "{args:?} read {by_key} bytes of a {store}-byte store"
        );
    }
    // A filter that is not a key reads the store.
    assert!(bytes_read(&s, &["dump", "--key-prefix", "p-02345"]) * 2 > store);
    // Compacted into one segment, a key costs what an id costs.
    s.ok(&["-q", "compact"]);
    let by_id = bytes_read(&s, &["get", "2345"]);
    for args in lookups {
        let by_key = bytes_read(&s, args);
        assert!(
            by_key <= 2 * by_id + 4096,
            "{args:?} read {by_key} bytes; get by id reads {by_id}"
        );
    }
}

#[test]
fn apply_refuses_bad_key_meta_and_null_lines_and_changes_nothing() {
    let s = keyed();
    for (line, code, needle) in [
        (
            r#"{"op":"update-doc","doc":1,"meta":{},"meta_patch":{}}"#,
            4,
            "either meta or meta_patch",
        ),
        (
            r#"{"op":"update-input","doc":1,"node":1}"#,
            4,
            "needs \"meta\" or \"meta_patch\"",
        ),
        (
            r#"{"op":"update-input","doc":1,"node":1,"meta":3}"#,
            4,
            "meta must be a JSON object",
        ),
        (
            r#"{"op":"update-doc","doc":1,"meta_patch":[1]}"#,
            4,
            "meta must be a JSON object",
        ),
        (
            r#"{"op":"clear-output","doc":1}"#,
            4,
            "clear-output needs \"node\"",
        ),
        (
            r#"{"op":"clear-output","doc":1,"node":9}"#,
            3,
            "input node 9 not found",
        ),
        (
            r#"{"op":"add-input","doc":1,"input":1,"key":"k"}"#,
            4,
            "field \"key\" does not apply",
        ),
        (r#"{"op":"create-doc","key":7}"#, 4, "field \"key\""),
        (
            r#"{"op":"update-doc","doc":"key:nope","category":null}"#,
            3,
            "no document has the key",
        ),
        (
            r#"{"op":"update-doc","doc":2,"key":"two-sum"}"#,
            4,
            "already used by document 1",
        ),
    ] {
        let before = s.snapshot();
        // A good line first: the bad one must undo it too.
        let batch =
            format!("{{\"op\":\"set-output\",\"doc\":1,\"node\":2,\"output\":null}}\n{line}\n");
        let (got, err) = s.with_stdin(batch.as_bytes()).fails(&["apply", "-"]);
        assert_eq!(got, code, "{line}: {err}");
        assert!(
            err.contains("line 2") && err.contains(needle),
            "{line}: {err}"
        );
        assert_eq!(s.snapshot(), before, "{line}");
    }
    let (code, err) = s
        .with_stdin(b"{\"op\":\"delete-doc\",\"doc\":1}\n")
        .fails(&["apply", "--on-conflict", "overwrite", "-"]);
    assert_eq!(code, 2, "{err}");
}

/// A meta patch reads the document's own record, not its chain: on a
/// document with 1 MB of inputs it reads a small fraction of what `get`
/// reads (it read the whole document before).
#[test]
fn a_meta_patch_reads_the_document_record_not_its_inputs() {
    let s = TestStore::new();
    s.ok(&["create-doc", "p", "--meta", r#"{"level": 1}"#]);
    let big = format!("\"{}\"", "v".repeat(50_000));
    for _ in 0..20 {
        s.ok(&["add-input", "1", &big]);
    }
    // Into a sealed member: an open replays what `active.seg` holds past
    // its checkpoint, whatever the command.
    s.ok(&["--quiet", "compact", "--full"]);
    let whole = bytes_read(&s, &["get", "1"]);
    let patch = bytes_read(&s, &["update-doc", "1", "--meta-patch", r#"{"level": 2}"#]);
    assert!(whole > 1_000_000, "get read {whole} bytes");
    assert!(
        patch < 100_000,
        "a meta patch read {patch} bytes; get reads {whole}"
    );
    let got = s.ok(&["get", "1"]);
    assert!(got.contains(r#""meta":{"level":2}"#), "{got}");
}
