//! Library-level tests of the engine: round trips across reopen, rotation and
//! compaction; ids never reused; torn tails; damaged indexes.

use stratum::{DocId, DocPatch, Json, Mode, NewDoc, NodeId, Options, Store};

fn opts(dir: &std::path::Path, seg: u64) -> Options {
    let mut o = Options::new(dir);
    o.segment_size = seg;
    o.sync = false;
    o
}

fn doc(body: &str, cat: Option<&str>) -> NewDoc {
    NewDoc {
        category: cat.map(Into::into),
        version: None,
        body: body.as_bytes().to_vec(),
    }
}

fn j(s: &str) -> Json {
    Json::parse(s).unwrap()
}

/// Every live document of `s`, one JSON line each, in id order.
fn dump_lines(s: &Store) -> Vec<String> {
    let mut out = Vec::new();
    s.dump(&mut |_| {}, &mut |d| {
        out.push(d.to_json());
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn round_trip_across_rotation_reopen_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut expected = Vec::new();
    {
        let mut s = Store::open(opts(&dir, 4096), Mode::Write).unwrap();
        for i in 0..200u64 {
            let id = s
                .create_doc(&doc(
                    &format!("body {i}"),
                    Some(if i % 2 == 0 { "even" } else { "odd" }),
                ))
                .unwrap();
            assert_eq!(id, DocId(i + 1));
            for k in 0..3u64 {
                let one = j("1.0");
                let n = s
                    .add_input(id, &j(&format!("[{i}, {k}]")), (k == 0).then_some(&one))
                    .unwrap();
                assert_eq!(n, NodeId(k + 1));
            }
            s.set_output(id, NodeId(2), &j(&format!("{{\"v\": {i}}}")))
                .unwrap();
            if i % 10 == 0 {
                s.delete_input(id, NodeId(3)).unwrap();
            }
            if i % 7 == 0 {
                s.update_doc(
                    id,
                    &DocPatch {
                        version: Some("v2".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
        }
        for i in (0..200u64).step_by(5) {
            s.delete_doc(DocId(i + 1)).unwrap();
        }
        for i in 0..200u64 {
            match s.get(DocId(i + 1)) {
                Ok(d) => expected.push(d.to_json()),
                Err(stratum::Error::DocNotFound(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(s.get(DocId(1)).is_err());
        assert!(!s.get(DocId(2)).unwrap().inputs.is_empty());
    }
    let dump =
        |dir: &std::path::Path| dump_lines(&Store::open(opts(dir, 4096), Mode::Read).unwrap());
    assert_eq!(dump(&dir), expected);
    let segs = std::fs::read_dir(&dir).unwrap().count();
    assert!(segs > 5, "rotation made {segs} files");
    {
        let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
        let r = s.compact(&mut |_| {}).unwrap();
        assert!(r.bytes_after < r.bytes_before, "{r:?}");
        assert_eq!(s.get(DocId(2)).unwrap().to_json(), expected[0]);
    }
    assert_eq!(dump(&dir), expected);
    {
        let mut s = Store::open(opts(&dir, 4096), Mode::Write).unwrap();
        // The highest id was deleted (200 = 1 + 199, deleted since 199 % 5 != 0? no)
        s.delete_doc(DocId(200)).unwrap();
        s.compact(&mut |_| {}).unwrap();
    }
    let mut s = Store::open(opts(&dir, 4096), Mode::Write).unwrap();
    assert_eq!(s.create_doc(&doc("new", None)).unwrap(), DocId(201));
    let id = DocId(2);
    let before = s.get(id).unwrap();
    let n = s.add_input(id, &j("0"), None).unwrap();
    assert_eq!(
        n,
        NodeId(4),
        "node ids never reused after delete+compact ({before:?})"
    );
}

#[test]
fn torn_tail_is_discarded_on_write_and_ignored_on_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    {
        let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
        s.create_doc(&doc("a", None)).unwrap();
        s.create_doc(&doc("b", None)).unwrap();
    }
    let active = dir.join("active.seg");
    let full = std::fs::read(&active).unwrap();
    std::fs::write(&active, &full[..full.len() - 3]).unwrap();
    {
        let s = Store::open(opts(&dir, 1 << 20), Mode::Read).unwrap();
        assert!(s.get(DocId(1)).is_ok());
        assert!(s.get(DocId(2)).is_err());
    }
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    assert_eq!(s.take_notices().len(), 1);
    assert_eq!(s.create_doc(&doc("c", None)).unwrap(), DocId(2));
    drop(s);
    let s = Store::open(opts(&dir, 1 << 20), Mode::Read).unwrap();
    assert_eq!(s.get(DocId(2)).unwrap().body, b"c");
}

fn build(dir: &std::path::Path) -> Vec<String> {
    let mut s = Store::open(opts(dir, 2048), Mode::Write).unwrap();
    for i in 0..40u64 {
        let id = s.create_doc(&doc(&format!("doc {i}"), None)).unwrap();
        s.add_input(id, &j(&format!("{i}")), Some(&j("[true]")))
            .unwrap();
    }
    s.delete_doc(DocId(40)).unwrap();
    dump_lines(&s)
}

#[test]
fn repair_quarantines_damage_keeps_the_rest_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let all = build(&dir);
    // Damage one byte in the middle of the first sealed segment.
    let seg = dir.join("seg_000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(
        !stratum::engine::verify(&opts(&dir, 2048), &mut |_| {})
            .unwrap()
            .is_ok()
    );

    let mut salvaged = Vec::new();
    let rep = stratum::engine::salvage(&opts(&dir, 2048), &mut |d| {
        salvaged.push(d.to_json());
        Ok(())
    })
    .unwrap();
    assert!(rep.damaged_bytes > 0);
    assert_ne!(salvaged, all, "the damaged record cannot be salvaged");
    // Each salvaged document is one that was written, possibly missing the
    // damaged record, never altered.
    let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    let originals: Vec<serde_json::Value> = all.iter().map(|l| parse(l)).collect();
    for line in &salvaged {
        let got = parse(line);
        let orig = originals
            .iter()
            .find(|o| o["id"] == got["id"])
            .expect("invented document");
        if &got != orig {
            assert_eq!(got["body"], orig["body"]);
            assert!(
                got["inputs"].as_array().unwrap().is_empty(),
                "{got} vs {orig}"
            );
        }
    }
    assert!(salvaged.len() + 1 >= all.len());

    let r = stratum::engine::repair(&opts(&dir, 2048), &mut |_| {}).unwrap();
    assert_eq!(r.quarantined, vec!["seg_000001.seg".to_string()]);
    assert!(std::fs::read_dir(dir.join("quarantine")).unwrap().count() == 1);
    assert!(
        stratum::engine::verify(&opts(&dir, 2048), &mut |_| {})
            .unwrap()
            .is_ok()
    );
    let s = Store::open(opts(&dir, 2048), Mode::Read).unwrap();
    assert_eq!(dump_lines(&s), salvaged);
    drop(s);
    // Deleted id 40 stays retired.
    let mut s = Store::open(opts(&dir, 2048), Mode::Write).unwrap();
    assert_eq!(s.create_doc(&doc("x", None)).unwrap(), DocId(41));
}

#[test]
fn backup_is_a_verified_store_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let all = build(&dir);
    // A torn tail in the source must not reach the backup.
    let active = dir.join("active.seg");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3]).unwrap();
    drop(f);
    let dest = tmp.path().join("b");
    let s = Store::open(opts(&dir, 2048), Mode::Read).unwrap();
    let r = stratum::engine::backup(&s, &dest, true, &mut |_| {}).unwrap();
    assert!(r.linked > 0);
    drop(s);
    let b = Store::open(opts(&dest, 2048), Mode::Read).unwrap();
    assert_eq!(dump_lines(&b), all);
    let ab = std::fs::read(dest.join("active.seg")).unwrap();
    let asrc = std::fs::read(&active).unwrap();
    assert_eq!(&asrc[..asrc.len() - 3], &ab[..]);
    assert!(
        stratum::engine::backup(&b, &dest, false, &mut |_| {}).is_err(),
        "non-empty destination refused"
    );
}

#[test]
fn active_checkpoint_bounds_replay_and_survives_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut o = opts(&dir, 1 << 30);
    o.sync = true;
    let body = "x".repeat(100_000);
    {
        let mut s = Store::open(o.clone(), Mode::Write).unwrap();
        for _ in 0..60 {
            let id = s.create_doc(&doc(&body, None)).unwrap();
            s.add_input(id, &j("1"), None).unwrap();
        }
    }
    assert!(
        dir.join("active.idx").exists(),
        "a checkpoint after 4 MiB of appends"
    );
    let dump = |o: &Options| {
        let s = Store::open(o.clone(), Mode::Read).unwrap();
        assert_eq!(s.get(DocId(3)).unwrap().inputs.len(), 1);
        dump_lines(&s)
    };
    let before = dump(&o);
    assert_eq!(before.len(), 60);
    assert!(stratum::engine::verify(&o, &mut |_| {}).unwrap().is_ok());
    // A damaged checkpoint block is detected by verify and never changes an answer.
    let idx = dir.join("active.idx");
    let mut b = std::fs::read(&idx).unwrap();
    b[100] ^= 1;
    std::fs::write(&idx, &b).unwrap();
    assert!(!stratum::engine::verify(&o, &mut |_| {}).unwrap().is_ok());
    assert_eq!(dump(&o), before);
    // Sealing folds the checkpoint into the segment's own index.
    let mut s = Store::open(o.clone(), Mode::Write).unwrap();
    s.compact(&mut |_| {}).unwrap();
    drop(s);
    assert!(!idx.exists());
    assert_eq!(dump(&o), before);
}

/// A crash in the middle of a multi-record batch (`load`, `apply`) leaves a
/// torn tail that the next open discards, not damage.
#[test]
fn torn_multi_record_batch_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    s.create_doc(&doc("kept", None)).unwrap();
    s.atomic(|s| {
        for i in 0..3 {
            s.create_doc(&doc(&format!("batch {i}"), None))?;
        }
        Ok(())
    })
    .unwrap();
    drop(s);
    let active = dir.join("active.seg");
    let bytes = std::fs::read(&active).unwrap();
    // Cut off the commit record (36-byte header + 8-byte count).
    std::fs::write(&active, &bytes[..bytes.len() - 44]).unwrap();
    let report = stratum::engine::verify(&opts(&dir, 1 << 20), &mut |_| {}).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let r = Store::open(opts(&dir, 1 << 20), Mode::Read).unwrap();
    assert!(r.get(DocId(2)).is_err());
    drop(r);
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    assert_eq!(s.take_notices().len(), 1);
    assert_eq!(s.create_doc(&doc("next", None)).unwrap(), DocId(2));
}

/// An input and an output that together pass the record limit are kept as
/// two records by compaction, so the store stays readable.
#[test]
fn compaction_never_writes_an_oversized_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir, 1 << 30), Mode::Write).unwrap();
    let id = s.create_doc(&doc("big", None)).unwrap();
    let big_in = j(&format!("\"{}\"", "i".repeat(40 << 20)));
    let big_out = j(&format!("\"{}\"", "o".repeat(30 << 20)));
    let n = s.add_input(id, &big_in, None).unwrap();
    s.set_output(id, n, &big_out).unwrap();
    s.compact(&mut |_| {}).unwrap();
    drop(s);
    let s = Store::open(opts(&dir, 1 << 30), Mode::Read).unwrap();
    let d = s.get(id).unwrap();
    assert_eq!(d.inputs[0].input, big_in);
    assert_eq!(d.inputs[0].output.as_ref(), Some(&big_out));
    drop(s);
    assert!(
        stratum::engine::verify(&opts(&dir, 1 << 30), &mut |_| {})
            .unwrap()
            .is_ok()
    );
}

/// Repairing one segment of a multi-segment compaction output keeps the
/// other members of its generation.
#[test]
fn repair_keeps_the_rest_of_a_compaction_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir, 4096), Mode::Write).unwrap();
    for i in 0..100 {
        s.create_doc(&doc(
            &format!("document number {i} {}", "x".repeat(100)),
            None,
        ))
        .unwrap();
    }
    s.compact(&mut |_| {}).unwrap();
    drop(s);
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "seg") && p.file_name().unwrap() != "active.seg"
        })
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    let mut b = std::fs::read(&segs[1]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&segs[1], &b).unwrap();
    stratum::engine::repair(&opts(&dir, 4096), &mut |_| {}).unwrap();
    let s = Store::open(opts(&dir, 4096), Mode::Read).unwrap();
    let mut n = 0;
    s.dump(&mut |_| {}, &mut |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert!((98..100).contains(&n), "{n} documents left after repair");
}

/// Regression (fault harness B1): a write after a batch reused the batch's
/// commit sequence number, and the next open cut it off as a torn tail.
#[test]
fn a_write_after_a_batch_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    s.atomic(|s| s.create_doc(&doc("x", None))).unwrap();
    drop(s);
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    assert_eq!(s.create_doc(&doc("y", None)).unwrap(), DocId(2));
    drop(s);
    assert!(
        stratum::engine::verify(&opts(&dir, 1 << 20), &mut |_| {})
            .unwrap()
            .is_ok()
    );
    let mut s = Store::open(opts(&dir, 1 << 20), Mode::Write).unwrap();
    assert!(s.take_notices().is_empty());
    assert_eq!(s.get(DocId(2)).unwrap().body, b"y");
    assert_eq!(s.create_doc(&doc("z", None)).unwrap(), DocId(3));
}

/// A program that uses only the library (`default-features = false`) must
/// not build the command line's crates.
#[test]
fn the_library_alone_depends_on_no_cli_crate() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains("crc32fast"), "{tree}");
    for cli_only in [
        "clap",
        "clap_complete",
        "anyhow",
        "indicatif",
        "comfy-table",
    ] {
        assert!(
            !crates.contains(cli_only),
            "{cli_only} in the library's tree:\n{tree}"
        );
    }
}
