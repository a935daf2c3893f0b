//! Dataset workflows: `diff` between a store and its earlier dump or another
//! store, exact to the byte of every value.

use crate::util::TestStore;

/// A store with two documents whose values need exact text: `1.0`, a big
/// integer, an escape, key order.
fn sample() -> TestStore {
    let s = TestStore::new();
    s.ok(&["create-doc", "<p>two sum</p>", "--category", "easy"]);
    s.ok(&[
        "add-input",
        "1",
        r#"{"b":1,"a":[2,7,11,15]}"#,
        "--output",
        "[0,1]",
    ]);
    s.ok(&["add-input", "1", "1.0", "--output", "-9999999999999999"]);
    s.ok(&["create-doc", "second"]);
    s.ok(&["add-input", "2", r#""\u00e9""#]);
    s
}

/// Runs `diff` and returns (exit code, stdout lines); stderr must be empty.
fn diff(s: &TestStore, args: &[&str]) -> (i32, Vec<String>) {
    let (shown, run) = s.run(args, None);
    assert!(run.stderr.is_empty(), "{shown}: {}", run.stderr);
    let out = String::from_utf8(run.stdout).unwrap();
    (run.code, out.lines().map(str::to_owned).collect())
}

#[test]
fn a_store_is_the_same_as_its_own_dump_and_a_copy() {
    let s = sample();
    let dump = s.tmp().join("dump.jsonl");
    std::fs::write(&dump, s.ok(&["dump"])).unwrap();
    let before = s.snapshot();
    let (code, lines) = diff(&s, &["diff", dump.to_str().unwrap()]);
    assert_eq!((code, lines), (0, vec![]));
    // A copy made by load --keep-ids is the same too, compared store to store.
    let copy = TestStore::new();
    copy.with_stdin(s.ok(&["dump"]).as_bytes())
        .ok(&["load", "--keep-ids"]);
    let (code, lines) = diff(&s, &["diff", copy.data().to_str().unwrap()]);
    assert_eq!((code, lines), (0, vec![]));
    assert_eq!(s.snapshot(), before, "diff must not change the store");
}

#[test]
fn diff_opens_each_store_once() {
    let s = sample();
    let copy = TestStore::new();
    copy.with_stdin(s.ok(&["dump"]).as_bytes())
        .ok(&["load", "--keep-ids"]);
    let diff_with = copy.data().to_str().unwrap();
    let trace = s.strace("openat", &["diff", diff_with]);
    for store in [s.data(), copy.data()] {
        let lock = format!("\"{}\"", store.join("LOCK").display());
        let active = format!("\"{}\"", store.join("active.seg").display());
        let opens = |name: &str| trace.lines().filter(|l| l.contains(name)).count();
        assert_eq!(
            (opens(&lock), opens(&active)),
            (1, 1),
            "{} opened more than once:\n{trace}",
            store.display()
        );
    }
}

#[test]
fn every_kind_of_change_is_reported_exactly_and_exits_1() {
    let s = sample();
    let dump = s.tmp().join("before.jsonl");
    std::fs::write(&dump, s.ok(&["dump"])).unwrap();
    s.ok(&["set-output", "1", "1", "[1,0]"]);
    s.ok(&["set-output", "2", "1", "1.0"]);
    s.ok(&["add-input", "1", "[3,3]", "--output", "[0, 1]"]);
    s.ok(&["delete-input", "1", "2"]);
    s.ok(&["update-doc", "1", "<p>Two Sum</p>", "--category", "medium"]);
    s.ok(&["delete-doc", "2"]);
    s.ok(&["create-doc", "third"]);
    let (code, lines) = diff(&s, &["diff", dump.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            r#"{"doc":1,"change":"changed","field":"category","old":"easy","new":"medium"}"#,
            r#"{"doc":1,"change":"changed","field":"body","old_bytes":14,"new_bytes":14}"#,
            r#"{"doc":1,"node":1,"change":"changed","field":"output","old":[0,1],"new":[1,0]}"#,
            r#"{"doc":1,"node":2,"change":"removed"}"#,
            r#"{"doc":1,"node":3,"change":"added","input":[3,3],"output":[0,1]}"#,
            r#"{"doc":2,"change":"removed"}"#,
            r#"{"doc":3,"change":"added"}"#,
        ]
    );
}

#[test]
fn number_text_is_compared_exactly() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    s.ok(&["add-input", "1", "[1]", "--output", "1.0"]);
    let dump = s.tmp().join("before.jsonl");
    std::fs::write(&dump, s.ok(&["dump"])).unwrap();
    s.ok(&["set-output", "1", "1", "1"]);
    let (code, lines) = diff(&s, &["diff", dump.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [r#"{"doc":1,"node":1,"change":"changed","field":"output","old":1.0,"new":1}"#]
    );
}

#[test]
fn diff_reads_the_old_side_from_stdin() {
    let s = sample();
    let dump = s.ok(&["dump"]);
    s.ok(&["set-output", "2", "1", "0"]);
    let (shown, run) = s.run(&["diff", "-"], Some(dump.as_bytes()));
    assert_eq!(run.code, 1, "{shown}: {}", run.stderr);
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "{\"doc\":2,\"node\":1,\"change\":\"changed\",\"field\":\"output\",\"new\":0}\n"
    );
}

#[test]
fn bad_old_sides_are_refused_with_their_exit_codes() {
    let s = sample();
    let before = s.snapshot();
    let file = s.tmp().join("bad.jsonl");
    for (text, code, needle) in [
        ("{\"body\":\"no id\"}\n", 4, "line 1: no \"id\""),
        (
            "{\"id\":2,\"body\":\"\"}\n{\"id\":1,\"body\":\"\"}\n",
            4,
            "line 2: document 1 is out of order",
        ),
        ("{\"id\":1,\"body\":\"\"}\nnot json\n", 4, "line 2"),
        (
            "{\"id\":1,\"body\":\"\",\"inputs\":[{\"input\":1}]}\n",
            4,
            "line 1: a node has no \"node\" id",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        // diff streams: what it found before the bad line is already out.
        let (_, run) = s.run(&["diff", file.to_str().unwrap()], None);
        let err = &run.stderr;
        assert_eq!(run.code, code, "{text}: {err}");
        assert!(
            err.starts_with("stratum: ") && err.lines().count() == 1 && err.contains(needle),
            "{text}: {err}"
        );
    }
    let (code, err) = s.fails(&["diff", s.tmp().join("absent.jsonl").to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    let empty = TestStore::new();
    let (code, err) = empty.fails(&["diff", file.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(s.snapshot(), before);
}

/// Ids of the `list --json` rows a selection keeps.
fn listed(s: &TestStore, args: &[&str]) -> Vec<u64> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    s.ok(&all)
        .lines()
        .map(|l| crate::util::json(l)["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn list_and_dump_select_by_category_id_range_and_missing_output() {
    let s = sample();
    s.ok(&["create-doc", "third", "--category", "easy"]);
    s.ok(&["add-input", "3", "[]", "--output", "0"]);
    assert_eq!(listed(&s, &["--category", "easy"]), [1, 3]);
    assert_eq!(listed(&s, &["--id", "2.."]), [2, 3]);
    assert_eq!(listed(&s, &["--id", "..2"]), [1, 2]);
    assert_eq!(listed(&s, &["--id", "3"]), [3]);
    // Document 2's only input has no output; 1 and 3 have all of theirs.
    assert_eq!(listed(&s, &["--missing-output"]), [2]);
    assert_eq!(
        listed(&s, &["--missing-output", "--category", "easy"]),
        Vec::<u64>::new()
    );
    let dumped: Vec<u64> = s
        .ok(&["dump", "--category", "easy", "--id", "2..3"])
        .lines()
        .map(|l| crate::util::json(l)["id"].as_u64().unwrap())
        .collect();
    assert_eq!(dumped, [3]);
    assert_eq!(
        s.ok(&["dump", "--missing-output"]),
        "{\"id\":2,\"category\":null,\"version\":null,\"body\":\"second\",\"inputs\":[{\"node\":1,\"input\":\"\\u00e9\",\"output\":null}]}\n"
    );
}

#[test]
fn dump_fields_projects_in_the_exact_stored_text() {
    let s = sample();
    assert_eq!(
        s.ok(&["dump", "--fields", "inputs.output,id,inputs.node"]),
        "{\"id\":1,\"inputs\":[{\"node\":1,\"output\":[0,1]},{\"node\":2,\"output\":-9999999999999999}]}\n\
         {\"id\":2,\"inputs\":[{\"node\":1,\"output\":null}]}\n"
    );
    assert_eq!(
        s.ok(&["dump", "--fields", "category", "--id", "1"]),
        "{\"category\":\"easy\"}\n"
    );
    assert_eq!(
        s.ok(&["dump", "--fields", "id,inputs", "--id", "1"]),
        "{\"id\":1,\"inputs\":[{\"node\":1,\"input\":{\"b\":1,\"a\":[2,7,11,15]},\"output\":[0,1]},{\"node\":2,\"input\":1.0,\"output\":-9999999999999999}]}\n"
    );
}

#[test]
fn stats_by_category_counts_documents_inputs_and_outputs() {
    let s = sample();
    s.ok(&["create-doc", "third", "--category", "easy"]);
    assert_eq!(
        s.ok(&["stats", "--by", "category", "--json"]),
        "{\"category\":null,\"documents\":1,\"inputs\":1,\"outputs\":0}\n\
         {\"category\":\"easy\",\"documents\":2,\"inputs\":2,\"outputs\":2}\n"
    );
    let table = s.ok(&["stats", "--by", "category"]);
    assert!(
        table.contains("easy") && table.contains("documents"),
        "{table}"
    );
}

#[test]
fn bad_selections_are_usage_errors_and_change_nothing() {
    let s = sample();
    let before = s.snapshot();
    for args in [
        &["list", "--id", "0"][..],
        &["list", "--id", "5..2"],
        &["list", "--id", "x"],
        &["dump", "--fields", "colour"],
        &["dump", "--records", "--category", "easy"],
        &["dump", "--salvage", "--fields", "id"],
        &["stats", "--by", "version"],
    ] {
        let (code, err) = s.fails(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    assert_eq!(s.snapshot(), before);
}

/// A store of 14,000 documents over many segments, wider than the id
/// range `list` and `dump` look up id by id, so that a range is read by a
/// pass that starts at its first id; some documents deleted, some rewritten
/// into later segments, one without an output.
fn wide() -> TestStore {
    let s = TestStore::new();
    let mut lines = String::new();
    for i in 1..=14_000u32 {
        lines.push_str(&format!(
            "{{\"category\":\"c{}\",\"body\":\"b{i}\",\"inputs\":[{{\"input\":{i},\"output\":[{i}]}},{{\"input\":\"x\"{}}}]}}\n",
            i % 3,
            if i % 97 == 0 { "" } else { ",\"output\":1.0" }
        ));
    }
    s.with_stdin(lines.as_bytes())
        .ok(&["--segment-size", "64K", "load"]);
    for id in ["5", "4000", "4001", "11999"] {
        s.ok(&["delete-doc", id]);
    }
    s.ok(&["update-doc", "7000", "--category", "moved"]);
    s.ok(&["set-output", "3000", "2", "null"]);
    s
}

/// The lines of `out` whose "id" is in `ids`.
fn with_ids(out: &str, ids: std::ops::RangeInclusive<u64>) -> Vec<String> {
    out.lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ids.contains(&v["id"].as_u64().unwrap())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_wide_id_range_reads_from_its_first_id_and_selects_as_a_filter_would() {
    let s = wide();
    let all = s.ok(&["list", "--json"]);
    let dump = s.ok(&["dump"]);
    assert_eq!(all.lines().count(), 13_996);
    for (range, ids) in [
        ("3000..", 3000..=u64::MAX),
        ("4000..", 4000..=u64::MAX),
        ("..11000", 1..=11_000),
        ("1..14000", 1..=14_000),
        ("3999..", 3999..=u64::MAX),
    ] {
        let listed = s.ok(&["list", "--json", "--id", range]);
        let want = with_ids(&all, ids.clone());
        // Wider than POINT_LOOKUPS ids: read by a pass, not id by id.
        assert!(want.len() > 9_990, "{range} is not wide");
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            want,
            "list --id {range}"
        );
        let dumped = s.ok(&["dump", "--id", range]);
        assert_eq!(
            dumped.lines().collect::<Vec<_>>(),
            with_ids(&dump, ids),
            "dump --id {range}"
        );
    }
    // With the other filters: the documents past 2000 lacking an output.
    let missing = s.ok(&["list", "--json", "--missing-output", "--id", "2000.."]);
    let ids: Vec<u64> = missing
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let want: Vec<u64> = (2000..=14_000).filter(|i| i % 97 == 0).collect();
    assert_eq!(ids, want);
    let moved = s.ok(&[
        "dump",
        "--category",
        "moved",
        "--id",
        "10..",
        "--fields",
        "id",
    ]);
    assert_eq!(moved, "{\"id\":7000}\n");
}

/// A store of 3,000 documents of 3 KiB bodies over several segments, large
/// enough (over 8 MiB) that `list` and `dump` read a scan in two halves,
/// with a few documents deleted and rewritten.
fn split_store() -> TestStore {
    let s = TestStore::new();
    let mut lines = String::new();
    for i in 1..=3_000u32 {
        lines.push_str(&format!(
            "{{\"category\":\"c{}\",\"body\":\"{}\",\"inputs\":[{{\"input\":{i},\"output\":[{i}]}},{{\"input\":\"x\"{}}}]}}\n",
            i % 3,
            format!("{i:05} ").repeat(512),
            if i % 7 == 0 { "" } else { ",\"output\":1.0" }
        ));
    }
    s.with_stdin(lines.as_bytes())
        .ok(&["--segment-size", "1M", "load"]);
    for id in ["1", "1499", "1500", "1501", "3000"] {
        s.ok(&["delete-doc", id]);
    }
    s.ok(&["update-doc", "2000", "--category", "moved"]);
    s
}

/// How many handles the command opens on the store (each reads the
/// MANIFEST once); the lock is taken once whatever their number.
fn handles(s: &TestStore, args: &[&str]) -> usize {
    let trace = s.strace("openat", args);
    let opens = |name: &str| {
        let path = format!("\"{}\"", s.data().join(name).display());
        trace.lines().filter(|l| l.contains(&path)).count()
    };
    assert_eq!(opens("LOCK"), 1, "{args:?} took the lock more than once");
    opens("MANIFEST")
}

#[test]
fn a_large_scan_is_read_in_two_halves_and_shown_as_one_pass() {
    let s = split_store();
    // The serial full pass of `dump --high-water` is the reference.
    let reference: Vec<serde_json::Value> = s
        .ok(&["dump", "--high-water"])
        .lines()
        .filter_map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("node_high_water")?;
            Some(v)
        })
        .collect();
    assert_eq!(reference.len(), 2_995);
    let dumped: Vec<serde_json::Value> = s
        .ok(&["dump"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dumped, reference);
    let ids = |out: &str| -> Vec<u64> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let want: Vec<u64> = reference
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids(&s.ok(&["list", "--json"])), want);
    let missing: Vec<u64> = (1..=3000).filter(|i| i % 7 == 0).collect();
    assert_eq!(ids(&s.ok(&["list", "--json", "--missing-output"])), missing);
    let moved = s.ok(&["dump", "--category", "moved", "--fields", "id,category"]);
    assert_eq!(moved, "{\"id\":2000,\"category\":\"moved\"}\n");
    // The table holds both halves' rows in id order.
    let table = s.ok(&["list", "--category", "c2"]);
    let rows: Vec<u64> = table
        .lines()
        .filter_map(|l| l.strip_prefix('|')?.split('|').next()?.trim().parse().ok())
        .collect();
    let c2: Vec<u64> = want
        .iter()
        .copied()
        .filter(|i| i % 3 == 2 && *i != 2000)
        .collect();
    assert_eq!(rows, c2);
    // Two handles for a scan, one for a lookup.
    assert_eq!(handles(&s, &["list", "--json", "--category", "c1"]), 2);
    assert_eq!(handles(&s, &["dump", "--category", "c1"]), 2);
    assert_eq!(handles(&s, &["list", "--json", "--id", "10..20"]), 1);
}

/// Flips a byte in the body of document `id` of [`split_store`].
fn damage_body(s: &TestStore, id: u32) {
    use std::os::unix::fs::FileExt;
    let marker = format!("{id:05} {id:05} ").into_bytes();
    for file in s.files().into_iter().filter(|f| f.ends_with(".seg")) {
        let path = s.data().join(&file);
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&[bytes[at] ^ 0x01], at as u64).unwrap();
            return;
        }
    }
    panic!("no body of document {id}");
}

#[test]
fn a_damaged_record_in_either_half_ends_a_split_scan_where_one_pass_would() {
    for id in [700u32, 2500] {
        let s = split_store();
        let args = ["list", "--json", "--category", "c1"];
        let whole = s.ok(&args);
        damage_body(&s, id);
        let (shown, run) = s.run(&args, None);
        assert_eq!(run.code, 6, "{shown}: {}", run.stderr);
        assert!(run.stderr.starts_with("stratum: "), "{}", run.stderr);
        // Every row before the damaged document, and nothing after it.
        let before: String = whole
            .lines()
            .take_while(|l| !l.starts_with(&format!("{{\"id\":{id},")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(before.lines().count() > 200, "{id}");
        assert_eq!(
            String::from_utf8(run.stdout).unwrap(),
            before,
            "damage at {id}"
        );
    }
}
