//! Selective compaction (issue 8 outcome 4): only the segments worth merging
//! are merged, tombstones survive while what they hide does, node ids are
//! never handed out twice, and the plan is what the compaction then does.

use stratum::engine::{CompactMode, Estimate};
use stratum::{DocId, DocPatch, Error, Json, NewDoc, NodeId, Options, ReadOnlyStore, Store};

const SEG: u64 = 4096;

fn open(dir: &std::path::Path) -> Store {
    let mut o = Options::new(dir);
    o.segment_size = SEG;
    Store::open(o).unwrap()
}

fn body(n: usize) -> NewDoc {
    NewDoc {
        body: format!("document body {n:04} {}", "x".repeat(200)).into_bytes(),
        ..NewDoc::default()
    }
}

fn j(s: &str) -> Json {
    Json::parse(s).unwrap()
}

/// Rewrites document `id` until the active segment has been sealed `seals`
/// times: each version makes the one before it garbage.
fn churn(s: &mut Store, id: DocId, seals: usize) {
    let start = s.stats().unwrap().segments.len();
    let mut i = 0;
    while s.stats().unwrap().segments.len() < start + seals {
        let patch = DocPatch {
            body: Some(format!("version {i} {}", "y".repeat(300)).into_bytes()),
            ..DocPatch::default()
        };
        s.update_doc(id, &patch).unwrap();
        i += 1;
    }
}

fn selective(s: &mut Store) -> stratum::engine::CompactReport {
    let plan = s
        .compact_plan(CompactMode::Selective, Estimate::Exact)
        .unwrap();
    let done = s.compact_with(CompactMode::Selective, &mut |_| {}).unwrap();
    assert_eq!(plan.merge.len(), done.merged, "the plan's segments");
    assert_eq!(plan.write_bytes, done.written, "the plan's bytes");
    done
}

/// Bitcask #82: a deletion whose segment is merged, while the segment with
/// the document's record is not, is kept; the document stays deleted after
/// reopening. A full compaction then drops both.
#[test]
fn a_tombstone_outlives_a_partial_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = open(dir);
    let ids: Vec<DocId> = (0..30).map(|n| s.create_doc(&body(n)).unwrap()).collect();
    let victim = ids[0];
    s.delete_doc(victim).unwrap();
    churn(&mut s, ids[29], 2);
    let plan = s
        .compact_plan(CompactMode::Selective, Estimate::Exact)
        .unwrap();
    let victim_seg = "seg_000001.seg".to_owned();
    assert!(
        !plan.merge.contains(&victim_seg),
        "the segment holding the document is mostly live: {:?}",
        plan.merge
    );
    assert!(!plan.merge.is_empty(), "the churned segments are merged");
    let tombstones = s.stats().unwrap().tombstones;
    let done = selective(&mut s);
    assert!(done.merged > 0);
    assert!(matches!(s.get(victim), Err(Error::DocNotFound(_))));
    assert_eq!(
        s.stats().unwrap().tombstones,
        tombstones,
        "the deletion is kept"
    );
    drop(s);
    let mut s = open(dir);
    assert!(matches!(s.get(victim), Err(Error::DocNotFound(_))));
    assert_eq!(s.stats().unwrap().documents, 29);
    s.compact_with(CompactMode::Full, &mut |_| {}).unwrap();
    assert_eq!(s.stats().unwrap().tombstones, 0, "a full rewrite drops it");
    assert!(matches!(s.get(victim), Err(Error::DocNotFound(_))));
    drop(s);
    let s = open(dir);
    assert!(matches!(s.get(victim), Err(Error::DocNotFound(_))));
    assert_eq!(s.doc_high_water(), ids[29]);
}

/// A deleted last node whose input and deletion are both merged away still
/// holds the document's node high-water mark: the next node gets a new id.
#[test]
fn a_merged_away_node_id_is_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    let d = s.create_doc(&body(0)).unwrap();
    let other = s.create_doc(&body(1)).unwrap();
    assert_eq!(s.add_input(d, &j("1"), None).unwrap(), NodeId(1));
    assert_eq!(s.add_input(d, &j("2"), Some(&j("2"))).unwrap(), NodeId(2));
    s.delete_input(d, NodeId(2)).unwrap();
    churn(&mut s, other, 2);
    let done = selective(&mut s);
    assert!(done.merged > 0, "the churned segments are merged");
    drop(s);
    let mut s = open(tmp.path());
    assert_eq!(s.add_input(d, &j("3"), None).unwrap(), NodeId(3));
    assert!(matches!(
        s.get_node(d, NodeId(2)),
        Err(Error::NodeNotFound { .. })
    ));
}

/// A cleared output stays cleared when its input record, which holds the
/// old output folded in, is copied as it is.
#[test]
fn a_cleared_folded_output_stays_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    let d = s.create_doc(&body(0)).unwrap();
    let other = s.create_doc(&body(1)).unwrap();
    let n = s.add_input(d, &j("[1]"), Some(&j("\"old\""))).unwrap();
    s.clear_output(d, n).unwrap();
    churn(&mut s, other, 2);
    let done = selective(&mut s);
    assert!(done.merged > 0);
    drop(s);
    let s = open(tmp.path());
    assert_eq!(s.get_node(d, n).unwrap().output, None);
}

/// With nothing worth merging, compaction writes nothing; a second
/// compaction after a selective one has nothing left to do.
#[test]
fn nothing_to_reclaim_writes_nothing_and_compaction_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    let ids: Vec<DocId> = (0..60).map(|n| s.create_doc(&body(n)).unwrap()).collect();
    let before = s.stats().unwrap();
    let done = selective(&mut s);
    assert_eq!((done.merged, done.written), (0, 0));
    assert_eq!(s.stats().unwrap(), before);
    churn(&mut s, ids[3], 2);
    let done = selective(&mut s);
    assert!(done.merged > 0);
    let after = s.stats().unwrap();
    let again = selective(&mut s);
    assert_eq!((again.merged, again.written), (0, 0), "{after:?}");
    assert_eq!(s.stats().unwrap(), after);
    assert_eq!(
        s.stats_counted().unwrap(),
        Some(s.stats_by_merge().unwrap())
    );
}

/// Bytes the binary writes to the store's files (not stdout or stderr)
/// while it runs `args`, from strace's record of every write call.
fn bytes_written(dir: &std::path::Path, args: &[&str]) -> u64 {
    let args: Vec<&str> = ["--segment-size", "64K"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let text = crate::run::strace_log(
        &["-f", "-qq", "-e", "trace=write,pwrite64,writev,pwritev"],
        dir,
        &args,
    );
    text.lines()
        .filter(|l| !l.contains("write(1,") && !l.contains("write(2,"))
        .filter_map(|l| l.rsplit("= ").next()?.trim().parse::<u64>().ok())
        .sum()
}

/// Issue 8 outcome 4, counted: compaction at 0% garbage writes nothing to
/// the store; after changing 1% of the documents it writes a small fraction
/// of the store; after deleting half of them it writes about the half left.
#[test]
fn compaction_writes_what_it_reclaims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut o = Options::new(&dir);
    o.segment_size = 64 << 10;
    o.sync = false;
    let mut s = Store::open(o.clone()).unwrap();
    let n = 2000;
    let ids: Vec<DocId> = (0..n).map(|i| s.create_doc(&body(i)).unwrap()).collect();
    for id in &ids {
        s.add_input(*id, &j("[1,2,3]"), Some(&j("\"out\"")))
            .unwrap();
    }
    let store_bytes = s.stats().unwrap().total_bytes;
    drop(s);
    let at_0 = bytes_written(&dir, &["compact"]);
    eprintln!("0% garbage: compact wrote {at_0} bytes of a {store_bytes}-byte store");
    assert_eq!(at_0, 0);

    let mut s = Store::open(o.clone()).unwrap();
    for id in ids.iter().step_by(100) {
        let patch = DocPatch {
            body: Some(b"changed".to_vec()),
            ..DocPatch::default()
        };
        s.update_doc(*id, &patch).unwrap();
    }
    drop(s);
    let at_1 = bytes_written(&dir, &["compact"]);
    eprintln!("1% changed: compact wrote {at_1} bytes of a {store_bytes}-byte store");
    assert!(at_1 * 20 < store_bytes, "{at_1} of {store_bytes}");

    let mut s = Store::open(o.clone()).unwrap();
    for id in ids.iter().step_by(2) {
        s.delete_doc(*id).unwrap();
    }
    let before = s.stats().unwrap();
    drop(s);
    let at_50 = bytes_written(&dir, &["compact"]);
    let s = ReadOnlyStore::open(o).unwrap();
    let after = s.stats().unwrap();
    eprintln!(
        "50% deleted: compact wrote {at_50} bytes; segments {} -> {} bytes, live {}",
        before.total_bytes, after.total_bytes, before.live_bytes
    );
    assert!(at_50 > 0 && at_50 < before.total_bytes * 7 / 10);
    assert!(after.total_bytes < before.total_bytes * 7 / 10);
    assert_eq!(after.documents, n as u64 / 2);
    assert_eq!(
        s.stats_counted().unwrap(),
        Some(s.stats_by_merge().unwrap())
    );
}

/// Runs the binary on `dir` with 4 KiB segments; its stdout as JSON.
fn json_of(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = crate::run::stratum(dir, &["--segment-size", "4096"]);
    cmd.args(args);
    let o = crate::run::run(cmd, None);
    assert!(o.ok(), "{}", o.describe());
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `stats`, `--min-garbage`, `--dry-run` and `compact` report the same
/// numbers, and the dry run's segments and bytes are what the compaction
/// then merges and writes.
#[test]
fn stats_thresholds_dry_run_and_compact_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = open(&dir);
    let ids: Vec<DocId> = (0..40).map(|n| s.create_doc(&body(n)).unwrap()).collect();
    for id in ids.iter().take(12) {
        s.delete_doc(*id).unwrap();
    }
    churn(&mut s, ids[39], 1);
    drop(s);
    let stats = json_of(&dir, &["stats", "--json"]);
    let dry = json_of(&dir, &["compact", "--dry-run", "--json"]);
    let ratio = stats["garbage_ratio"].as_f64().unwrap();
    assert_eq!(dry["garbage_ratio"].as_f64().unwrap(), ratio);
    assert_eq!(dry["live_bytes"], stats["live_bytes"]);
    let dead = stats["total_bytes"].as_u64().unwrap() - stats["live_bytes"].as_u64().unwrap();
    assert_eq!(dry["reclaimable_bytes"].as_u64().unwrap(), dead);
    assert!(!dry["merge"].as_array().unwrap().is_empty(), "{dry}");
    assert!(dry["write_bytes"].as_u64().unwrap() < dry["merge_bytes"].as_u64().unwrap());
    // Just above the ratio: not compacted; at it: compacted, as planned.
    let above = format!("{}", (ratio + 0.001).min(1.0));
    let skipped = json_of(&dir, &["compact", "--min-garbage", &above, "--json"]);
    assert_eq!(skipped["compacted"], false, "{skipped}");
    assert_eq!(
        json_of(&dir, &["stats", "--json"]),
        stats,
        "nothing changed"
    );
    let at = format!("{}", ratio - 0.0005);
    let done = json_of(&dir, &["compact", "--min-garbage", &at, "--json"]);
    assert_eq!(done["compacted"], true, "{done}");
    assert_eq!(done["merge"], dry["merge"]);
    assert_eq!(done["write_bytes"], dry["write_bytes"]);
    assert_eq!(done["garbage_ratio"].as_f64().unwrap(), ratio);
    let after = json_of(&dir, &["stats", "--json"]);
    assert!(after["garbage_ratio"].as_f64().unwrap() < ratio, "{after}");
    assert_eq!(after["documents"], 28);
    let again = json_of(&dir, &["compact", "--dry-run", "--json"]);
    assert_eq!(again["merge"], serde_json::json!([]), "{again}");
}
