//! Operator commands: `stats`, `verify`, `compact` with its thresholds and
//! dry run, `dump --records`; and what a terminal sees (tables, progress)
//! against what a pipe sees.

use crate::util::{TestStore, in_terminal, json};

fn with_garbage() -> TestStore {
    let s = TestStore::new();
    s.ok(&["create-doc", "a", "--category", "x"]);
    s.ok(&["create-doc", "b"]);
    s.ok(&["add-input", "1", "1", "--output", "1"]);
    s.ok(&["add-input", "1", "2"]);
    for v in 0..10 {
        s.ok(&["update-doc", "2", &format!("{v}{}", "b".repeat(4000))]);
    }
    s.ok(&["delete-input", "1", "2"]);
    s
}

#[test]
fn stats_as_json_and_table() {
    let s = with_garbage();
    let st = json(s.ok(&["stats", "--json"]).trim());
    assert_eq!(st["documents"], 2);
    assert_eq!(st["inputs"], 1);
    assert_eq!(st["outputs"], 1);
    assert_eq!(st["tombstones"], 1);
    assert_eq!(st["doc_id_high_water"], 2);
    assert_eq!(st["format_version"], 2);
    assert_eq!(st["last_compaction"], serde_json::Value::Null);
    let total = st["total_bytes"].as_u64().unwrap();
    let live = st["live_bytes"].as_u64().unwrap();
    assert!(live < total, "{st}");
    let ratio = st["garbage_ratio"].as_f64().unwrap();
    assert!(ratio > 0.5 && ratio < 1.0, "{st}");
    assert!(st["last_seq"].as_u64().unwrap() >= 10, "{st}");
    let segs = st["segments"].as_array().unwrap();
    assert_eq!(segs.last().unwrap()["name"], "active.seg");
    let seg_total: u64 = segs.iter().map(|g| g["bytes"].as_u64().unwrap()).sum();
    assert_eq!(seg_total, total);
    for g in segs {
        assert_eq!(
            g["live_bytes"].as_u64().unwrap() + g["dead_bytes"].as_u64().unwrap(),
            g["bytes"].as_u64().unwrap(),
            "{g}"
        );
    }
    let table = s.ok(&["stats"]);
    assert!(table.is_ascii(), "{table}");
    for needle in [
        "| documents ",
        "| garbage ",
        " of ",
        ", ratio 0.",
        "| active.seg ",
        "live size",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
}

#[test]
fn compact_thresholds_and_dry_run_change_nothing_when_not_met() {
    let s = with_garbage();
    let before = s.snapshot();
    let (_, run) = s.run(&["compact", "--min-garbage", "0.99"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .starts_with("stratum: not compacting: garbage ratio 0.")
            && run.stderr.contains("below --min-garbage 0.99"),
        "{}",
        run.stderr
    );
    let (_, run) = s.run(
        &["compact", "--min-dead-bytes", "1G", "--min-garbage", "0.1"],
        None,
    );
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .contains("reclaimable is below --min-dead-bytes 1.0G"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("--min-garbage"), "{}", run.stderr);
    let (_, run) = s.run(&["compact", "--dry-run"], None);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .starts_with("stratum: would merge 1 segment of 1 ("),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("), writing "), "{}", run.stderr);
    let (_, run) = s.run(&["compact", "--dry-run", "--min-garbage", "0.99"], None);
    assert!(
        run.stderr.starts_with("stratum: not compacting"),
        "{}",
        run.stderr
    );
    assert_eq!(s.snapshot(), before);

    let (_, run) = s.run(
        &["compact", "--min-garbage", "0.5", "--min-dead-bytes", "4K"],
        None,
    );
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .starts_with("stratum: compacted 1 segment of 1, wrote "),
        "{}",
        run.stderr
    );
    assert!(s.disk_bytes() < before.values().map(|b| b.len() as u64).sum::<u64>() / 2);
    let st = json(s.ok(&["stats", "--json"]).trim());
    // Copied as it is, document 1's record says it had no node yet: the
    // deletion of its last node is kept, so that node id 2 stays used.
    assert_eq!(st["tombstones"], 1);
    assert_eq!(st["documents"], 2);
    let dry = json(s.ok(&["compact", "--dry-run", "--json"]).trim());
    assert_eq!(dry["merge"], serde_json::json!([]), "nothing left: {dry}");
    s.ok(&["--quiet", "compact", "--full"]);
    let st = json(s.ok(&["stats", "--json"]).trim());
    assert_eq!(st["tombstones"], 0, "a full rewrite drops it: {st}");
    assert_eq!(st["documents"], 2);
    let compaction = &st["last_compaction"];
    assert_eq!(compaction["segments"], 1, "{st}");
    let first = compaction["first_segment"].as_str().unwrap();
    assert_eq!(st["segments"][0]["name"], first, "{st}");
    let table = s.ok(&["stats"]);
    assert!(
        table.contains(&format!("| last compaction | wrote {first}")),
        "{table}"
    );
}

#[test]
fn verify_reports_a_healthy_store() {
    let s = with_garbage();
    let table = s.ok(&["verify"]);
    assert!(
        table.contains("| active.seg ") && table.contains(" ok "),
        "{table}"
    );
    assert!(table.trim_end().ends_with("0 problems found"), "{table}");
    let report = json(s.ok(&["verify", "--json"]).trim());
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    assert_eq!(report["files"][0]["name"], "active.seg");
    assert!(report["records"].as_u64().unwrap() >= 10);
}

#[test]
fn verify_lists_notices_without_failing() {
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    s.ok(&["create-doc", "y"]);
    let active = s.data().join("active.seg");
    let len = std::fs::metadata(&active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let report = json(s.ok(&["verify", "--json"]).trim());
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["problems"][0]["kind"], "notice", "{report}");
}

#[test]
fn dump_records_lists_the_raw_log() {
    let s = TestStore::new();
    s.ok(&["create-doc", "a"]);
    s.ok(&["add-input", "1", "1"]);
    s.ok(&["set-output", "1", "1", "2"]);
    s.ok(&["update-doc", "1", "b"]);
    s.ok(&["delete-input", "1", "1"]);
    s.ok(&["delete-doc", "1"]);
    let out = s.ok(&["dump", "--records"]);
    let recs: Vec<serde_json::Value> = out.lines().map(json).collect();
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "doc-put",
            "input-put",
            "output-put",
            "doc-put",
            "input-delete",
            "doc-delete"
        ]
    );
    let mut offset = recs[0]["offset"].as_u64().unwrap();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["segment"], "active.seg");
        assert_eq!(r["seq"], i + 1);
        assert_eq!(r["doc"], 1);
        assert_eq!(r["crc_ok"], true);
        assert_eq!(
            r["offset"].as_u64().unwrap(),
            offset,
            "records are contiguous"
        );
        offset += r["size"].as_u64().unwrap();
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8, "{r}");
    }
    assert_eq!(recs[1]["node"], 1);
    assert_eq!(s.ok(&["dump"]), "");
}

#[test]
fn tables_use_box_drawing_on_a_terminal_and_honour_no_color() {
    crate::util::require("script", "bsdutils");
    let s = with_garbage();
    let bin = crate::util::BIN;
    let dir = s.data().display().to_string();
    let styled = in_terminal(&s, &format!("{bin} --dir {dir} list"));
    assert!(
        styled.contains('│') || styled.contains('┆') || styled.contains('─'),
        "{styled}"
    );
    assert!(
        styled.contains("\x1b[1m") && styled.contains("body size"),
        "expected whole, bold headers on a terminal: {styled:?}"
    );
    let plain = in_terminal(&s, &format!("NO_COLOR=1 {bin} --dir {dir} list"));
    assert!(plain.contains('─') || plain.contains('│'), "{plain}");
    assert!(
        !plain.contains("\x1b[1m"),
        "NO_COLOR must turn styling off: {plain:?}"
    );
    assert!(plain.contains("body size"), "{plain:?}");
    // The same command into a pipe: ASCII, no escapes.
    let piped = s.ok(&["list"]);
    assert!(piped.is_ascii() && !piped.contains('\x1b'), "{piped}");
}

#[test]
fn progress_goes_to_a_terminal_stderr_only() {
    crate::util::require("script", "bsdutils");
    let s = TestStore::new();
    s.load_docs(3000, |i| format!("doc {i} {}", "p".repeat(300)));
    let bin = crate::util::BIN;
    let dir = s.data().display().to_string();
    let out = s.tmp().join("dump.jsonl");
    let out = out.display();
    // stdout to a file, stderr to the terminal: the bar is drawn there.
    let term = in_terminal(&s, &format!("{bin} --dir {dir} dump > {out}"));
    assert!(
        term.contains("dump") && term.contains("B/s"),
        "no progress bar drawn: {term:?}"
    );
    let dumped = std::fs::read_to_string(s.tmp().join("dump.jsonl")).unwrap();
    assert_eq!(dumped.lines().count(), 3000);
    assert!(!dumped.contains('\x1b'));
    // --quiet silences it.
    let term = in_terminal(&s, &format!("{bin} --dir {dir} dump --quiet > {out}"));
    assert!(!term.contains("B/s"), "{term:?}");
    // Off a terminal there is nothing on stderr at all.
    let (_, run) = s.run(&["dump"], None);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let (_, run) = s.run(&["verify"], None);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
}
