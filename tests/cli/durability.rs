//! What survives between invocations: reopen, rotation, compaction, id
//! allocation, damage detection, torn tails, concurrent writers and the
//! lock.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use crate::util::{TestStore, json};

#[test]
fn updates_and_deletes_survive_reopen_and_compaction() {
    let s = TestStore::new();
    s.ok(&["create-doc", "v1 body", "--category", "c"]);
    s.ok(&["create-doc", "doomed"]);
    s.ok(&["add-input", "1", "1", "--output", "10"]);
    s.ok(&["add-input", "1", "2", "--output", "20"]);
    s.ok(&["add-input", "1", "3"]);
    s.ok(&["update-doc", "1", "v2 body", "--version", "v2"]);
    s.ok(&["set-output", "1", "1", "11"]);
    s.ok(&["set-output", "1", "1", "12"]);
    s.ok(&["delete-input", "1", "2"]);
    s.ok(&["delete-doc", "2"]);
    let expected = "{\"id\":1,\"category\":\"c\",\"version\":\"v2\",\"body\":\"v2 body\",\"inputs\":[{\"node\":1,\"input\":1,\"output\":12},{\"node\":3,\"input\":3,\"output\":null}]}\n";
    assert_eq!(s.ok(&["dump"]), expected);
    let (_, run) = s.run(&["compact"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.ok(&["dump"]), expected);
    assert_eq!(s.fails(&["get", "2"]).0, 3);
    assert_eq!(s.fails(&["get", "1", "--node", "2"]).0, 3);
    // Neither the deleted document's id nor the deleted node's comes back.
    assert_eq!(s.ok(&["create-doc"]), "3\n");
    assert_eq!(s.ok(&["add-input", "1", "4"]), "4\n");
}

#[test]
fn ids_are_never_reused_after_deleting_the_highest_and_compacting() {
    let s = TestStore::new();
    for _ in 0..3 {
        s.ok(&["create-doc", "x"]);
    }
    s.ok(&["add-input", "2", "1"]);
    s.ok(&["add-input", "2", "2"]);
    s.ok(&["delete-doc", "3"]);
    s.ok(&["delete-input", "2", "2"]);
    let (_, run) = s.run(&["compact"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.ok(&["create-doc", "y"]), "4\n");
    assert_eq!(s.ok(&["add-input", "2", "3"]), "3\n");
    // And again with the whole store deleted.
    s.ok(&["delete-doc", "1"]);
    s.ok(&["delete-doc", "2"]);
    s.ok(&["delete-doc", "4"]);
    s.run(&["compact"], None);
    assert_eq!(s.ok(&["dump"]), "");
    assert_eq!(s.ok(&["create-doc", "z"]), "5\n");
}

#[test]
fn a_tiny_segment_size_rotates_into_many_files_without_losing_data() {
    let mut s = TestStore::new();
    s.globals = vec!["--segment-size".into(), "4096".into()];
    let body = |i: usize| format!("document {i} {}", "#".repeat(300));
    for i in 0..40 {
        assert_eq!(s.ok(&["create-doc", &body(i)]), format!("{}\n", i + 1));
        s.ok(&[
            "add-input",
            &(i + 1).to_string(),
            &i.to_string(),
            "--output",
            "[true]",
        ]);
    }
    let sealed = s
        .files()
        .iter()
        .filter(|f| f.ends_with(".seg") && f.starts_with("seg_"))
        .count();
    assert!(
        sealed >= 3,
        "only {sealed} sealed segments: {:?}",
        s.files()
    );
    let dump = s.ok(&["dump"]);
    assert_eq!(dump.lines().count(), 40);
    for (i, line) in dump.lines().enumerate() {
        let doc = json(line);
        assert_eq!(doc["id"], i + 1);
        assert_eq!(doc["body"].as_str(), Some(body(i).as_str()));
        assert_eq!(doc["inputs"][0]["input"], i);
    }
    // A reader with the default segment size reads the same store.
    s.globals.clear();
    assert_eq!(s.ok(&["dump"]), dump);
    s.globals = vec!["--segment-size".into(), "4096".into()];
    let (_, run) = s.run(&["compact"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.ok(&["dump"]), dump);
}

#[test]
fn compaction_reclaims_space_keeps_newest_and_does_not_revive_deleted() {
    let s = TestStore::new();
    s.ok(&["create-doc", "keep"]);
    s.ok(&["create-doc", "gone"]);
    let big = |v: usize| format!("version {v} {}", "=".repeat(20_000));
    for v in 0..20 {
        s.ok(&["update-doc", "1", &big(v)]);
        s.ok(&["update-doc", "2", &big(v)]);
    }
    s.ok(&["add-input", "1", "\"in\"", "--output", "\"old\""]);
    s.ok(&["set-output", "1", "1", "\"new\""]);
    s.ok(&["add-input", "1", "\"deleted\""]);
    s.ok(&["delete-input", "1", "2"]);
    s.ok(&["delete-doc", "2"]);
    let before = s.disk_bytes();
    let (_, run) = s.run(&["compact"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.starts_with("stratum: compacted "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(" → ") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    let after = s.disk_bytes();
    assert!(after < before / 10, "{before} -> {after} bytes");
    assert!(after > 20_000, "{after} bytes cannot hold the newest body");
    assert_eq!(
        s.ok(&["dump"]),
        format!(
            "{{\"id\":1,\"category\":null,\"version\":null,\"body\":\"{}\",\"inputs\":[{{\"node\":1,\"input\":\"in\",\"output\":\"new\"}}]}}\n",
            big(19)
        )
    );
    assert_eq!(s.fails(&["get", "2"]).0, 3);
    // A second compaction finds nothing more to drop.
    s.run(&["compact"], None);
    let again = s.disk_bytes();
    assert!(again <= after + 128, "{after} -> {again}");
}

/// Puts enough in a store to seal a segment whose first document has a
/// recognisable body; returns the sealed segment's name.
fn store_with_sealed_segment(s: &TestStore) -> String {
    for i in 0..12 {
        let body = format!("MARKER-{i:02}-{}", "m".repeat(400));
        s.ok(&["--segment-size", "4096", "create-doc", &body]);
    }
    s.files()
        .into_iter()
        .find(|f| f.starts_with("seg_") && f.ends_with(".seg"))
        .expect("a sealed segment")
}

fn flip_byte_at_marker(s: &TestStore, file: &str, marker: &[u8]) {
    let path = s.data().join(file);
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in the segment");
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(
        &[bytes[at + marker.len()] ^ 0x20],
        (at + marker.len()) as u64,
    )
    .unwrap();
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_caught_by_verify_and_get() {
    let s = TestStore::new();
    let seg = store_with_sealed_segment(&s);
    assert_eq!(s.ok(&["verify", "--json"]).lines().count(), 1);
    flip_byte_at_marker(&s, &seg, b"MARKER-01-");

    let (_, run) = s.run(&["verify"], None);
    assert_eq!(run.code, 6, "{}", run.stderr);
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(table.contains(&seg) && table.contains("DAMAGED"), "{table}");
    assert!(
        run.stderr.starts_with("stratum: verify found "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("first: {seg}:")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    let (_, run) = s.run(&["verify", "--json"], None);
    assert_eq!(run.code, 6);
    let report = json(std::str::from_utf8(&run.stdout).unwrap().trim());
    assert_eq!(report["ok"], false);
    let problem = &report["problems"][0];
    assert_eq!(problem["file"], seg.as_str());
    assert_eq!(problem["kind"], "damage");
    assert!(
        problem["offset"].as_u64().is_some_and(|o| o > 0),
        "{report}"
    );

    let (code, err) = s.fails(&["get", "2"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&seg), "{err}");
    // Undamaged documents are still served.
    assert!(s.ok(&["get", "1", "--body"]).starts_with("MARKER-00-"));
    // dump streams: the documents before the damage, then the error.
    let (_, run) = s.run(&["dump"], None);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("stratum: corruption in ") && run.stderr.contains(&seg),
        "{}",
        run.stderr
    );
    assert_eq!(String::from_utf8(run.stdout).unwrap().lines().count(), 1);
}

#[test]
fn a_torn_tail_is_discarded_with_a_note_on_the_next_write() {
    let s = TestStore::new();
    s.ok(&["create-doc", "first"]);
    s.ok(&["create-doc", "second, torn"]);
    let active = s.data().join("active.seg");
    let len = std::fs::metadata(&active).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    // Readers change nothing and still serve what is intact.
    let before = s.snapshot();
    assert_eq!(s.ok_bytes(&["get", "1", "--body"]), b"first");
    assert_eq!(s.snapshot(), before);
    let (_, run) = s.run(&["create-doc", "third"], None);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.starts_with("stratum: note: discarded ") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    let (code, stdout) = (run.code, String::from_utf8(run.stdout).unwrap());
    assert_eq!(code, 0);
    let third = stdout.trim().to_owned();
    assert_eq!(s.ok_bytes(&["get", &third, "--body"]), b"third");
    assert_eq!(s.ok_bytes(&["get", "1", "--body"]), b"first");
    // The note is shown once: the tail is gone.
    assert_eq!(
        s.ok(&["create-doc", "fourth"])
            .trim()
            .parse::<u64>()
            .unwrap(),
        third.parse::<u64>().unwrap() + 1
    );
    s.ok(&["verify"]);
}

#[test]
fn concurrent_writer_processes_all_land_with_unique_ids() {
    let s = TestStore::new();
    s.ok(&["create-doc", "seed"]);
    let ids: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let body = format!("w{w} i{i}");
                            let out = s.ok(&[
                                "--lock-timeout",
                                "60",
                                "create-doc",
                                &body,
                                "--category",
                                &format!("w{w}"),
                            ]);
                            out.trim().parse::<u64>().expect("an id")
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (2..=201).collect::<Vec<u64>>());
    let list = s.ok(&["list", "--json"]);
    assert_eq!(list.lines().count(), 201);
    for w in 0..8 {
        let n = s
            .ok(&["list", "--json", "--category", &format!("w{w}")])
            .lines()
            .count();
        assert_eq!(n, 25, "worker {w}");
    }
    s.ok(&["verify"]);
}

#[test]
fn a_held_lock_times_out_with_exit_5() {
    use fs2::FileExt;
    let s = TestStore::new();
    s.ok(&["create-doc", "x"]);
    let before = s.snapshot();
    let lock = std::fs::File::open(s.data().join("LOCK")).unwrap();

    lock.lock_exclusive().unwrap();
    let (code, err) = s.fails(&["--lock-timeout", "0.2", "create-doc", "y"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("locked by another process") && err.contains("--lock-timeout"),
        "{err}"
    );
    let (code, _) = s.fails(&["--lock-timeout", "0.2", "get", "1"]);
    assert_eq!(code, 5);
    let (code, _) = s.fails(&["--lock-timeout", "0", "verify"]);
    assert_eq!(code, 5);
    FileExt::unlock(&lock).unwrap();

    // Readers share the lock; writers wait for it.
    lock.lock_shared().unwrap();
    assert_eq!(s.ok(&["--lock-timeout", "0.2", "get", "1", "--body"]), "x");
    assert_eq!(s.fails(&["--lock-timeout", "0.2", "delete-doc", "1"]).0, 5);
    assert_eq!(
        s.fails(&["--lock-timeout", "0.2", "compact", "--full"]).0,
        5
    );
    // A compaction that finds nothing worth merging decides under the
    // shared lock and never waits for writers' lock.
    s.ok(&["--lock-timeout", "0.2", "--quiet", "compact"]);
    FileExt::unlock(&lock).unwrap();

    assert_eq!(s.snapshot(), before);
    assert_eq!(s.ok(&["--lock-timeout", "0.2", "create-doc", "y"]), "2\n");
}

#[test]
fn compaction_starts_each_megabyte_writing_before_its_final_fsync() {
    // A full rewrite flushes its output in 1 MiB writes and asks the disk to
    // start on each (sync_file_range), so the fsync before the commit waits
    // for the tail of the file, not for all of it.
    let s = TestStore::new();
    s.load_docs(600, |i| format!("doc {i} {}", "w".repeat(8 * 1024)));
    let trace = s.strace("pwrite64,sync_file_range", &["compact", "--full"]);
    let started: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("sync_file_range("))
        .collect();
    let big_writes = trace
        .lines()
        .filter(|l| l.contains("pwrite64("))
        .filter_map(|l| l.rsplit("= ").next()?.trim().parse::<u64>().ok())
        .filter(|&n| n >= 1 << 20)
        .count();
    assert!(big_writes >= 4, "expected several 1 MiB writes:\n{trace}");
    assert!(
        started.len() >= big_writes,
        "{} of {big_writes} writes started:\n{trace}",
        started.len()
    );
    assert!(
        started.iter().all(|l| l.contains("SYNC_FILE_RANGE_WRITE")),
        "{trace}"
    );
}
