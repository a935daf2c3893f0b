//! Rescue and copy: `dump --salvage`, `repair` and `backup`, driven as an
//! operator would after a damaged disk or before a risky change.

use crate::util::{Run, TestStore, flip_middle, ids, json, ok_with_note};

/// Exit 0 with exactly one `stratum: ` summary line on stderr.
fn ok_with_summary(shown: &str, run: &Run) {
    ok_with_note(shown, run);
    assert_eq!(run.stderr.lines().count(), 1, "{shown}: {}", run.stderr);
}

/// A store with one sealed segment (and an active one), several documents
/// each with an input.
fn sealed_store() -> TestStore {
    let s = TestStore::new();
    for i in 0..30 {
        s.ok(&[
            "--segment-size",
            "4096",
            "create-doc",
            &format!("doc {i} {}", "x".repeat(60)),
        ]);
        s.ok(&[
            "--segment-size",
            "4096",
            "add-input",
            &(i + 1).to_string(),
            &format!("[{i}]"),
        ]);
    }
    assert!(
        s.files().iter().any(|f| f == "seg_000001.seg"),
        "{:?}",
        s.files()
    );
    s
}

#[test]
fn salvage_reads_a_store_that_refuses_to_open_and_repair_makes_it_verify() {
    let s = sealed_store();
    let before = s.ok(&["dump"]);
    flip_middle(&s.data().join("seg_000001.seg"));
    let (shown, run) = s.run(&["verify"], None);
    assert_eq!(run.code, 6, "{shown}");

    let snapshot = s.snapshot();
    let (shown, run) = s.run(&["dump", "--salvage"], None);
    ok_with_summary(&shown, &run);
    assert!(run.stderr.starts_with("stratum: salvaged "), "{shown}");
    assert_eq!(s.snapshot(), snapshot, "dump --salvage changed the store");
    let salvaged = String::from_utf8(run.stdout).unwrap();
    // Every salvaged line is a document that was written: nothing invented,
    // nothing altered beyond the record the damage hit.
    let originals: Vec<_> = before.lines().map(json).collect();
    for line in salvaged.lines() {
        let got = json(line);
        let orig = originals
            .iter()
            .find(|o| o["id"] == got["id"])
            .expect("invented document");
        assert!(
            &got == orig || got["inputs"].as_array().unwrap().is_empty(),
            "{got} vs {orig}"
        );
    }
    assert!(ids(&salvaged).len() + 1 >= ids(&before).len());

    let (shown, run) = s.run(&["repair"], None);
    ok_with_summary(&shown, &run);
    assert!(
        run.stderr.contains("moved seg_000001.seg to quarantine/"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_dir(s.data().join("quarantine"))
            .unwrap()
            .count(),
        1
    );
    s.ok(&["verify"]);
    assert_eq!(s.ok(&["dump"]), salvaged);
    // The id high-water mark survived: the next document is 31.
    assert_eq!(s.ok(&["create-doc", "after repair"]).trim(), "31");
}

#[test]
fn backup_is_a_verified_store_of_its_own_and_excludes_a_torn_tail() {
    let s = sealed_store();
    let before = s.ok(&["dump"]);
    // A torn tail in the source (an interrupted write) must not be copied.
    let active = s.data().join("active.seg");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, &[7, 7, 7]).unwrap();
    drop(f);
    let dest = s.tmp().join("backup");
    let dest_str = dest.to_str().unwrap();
    let (shown, run) = s.run(&["backup", dest_str], None);
    ok_with_summary(&shown, &run);
    assert!(run.stderr.contains("verified"), "{shown}");

    let (shown, out) = crate::util::run_at(&dest, &["dump"]);
    assert_eq!(out.code, 0, "{shown}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), before);
    let src_active = std::fs::read(&active).unwrap();
    let dst_active = std::fs::read(dest.join("active.seg")).unwrap();
    assert_eq!(&src_active[..src_active.len() - 3], &dst_active[..]);
    // Sealed segments are copied, not shared, even on the same file system
    // (a bit flip in one must not reach the other; `--link` shares them).
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(s.data().join("seg_000001.seg")).unwrap();
    let b = std::fs::metadata(dest.join("seg_000001.seg")).unwrap();
    assert_ne!((a.dev(), a.ino()), (b.dev(), b.ino()));

    // A destination that is not empty is refused, and left alone.
    let (code, err) = s.fails(&["backup", dest_str]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn repair_and_salvage_on_a_missing_store_fail_with_not_found() {
    let s = TestStore::new();
    assert_eq!(s.fails(&["repair"]).0, 3);
    assert_eq!(s.fails(&["dump", "--salvage"]).0, 3);
    assert_eq!(s.fails(&["backup", "elsewhere"]).0, 3);
    assert!(!s.data().exists());
}
