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
    NewDoc { category: cat.map(Into::into), version: None, body: body.as_bytes().to_vec() }
}

fn j(s: &str) -> Json {
    Json::parse(s).unwrap()
}

#[test]
fn round_trip_across_rotation_reopen_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut expected = Vec::new();
    {
        let mut s = Store::open(opts(&dir, 4096), Mode::Write).unwrap();
        for i in 0..200u64 {
            let id = s.create_doc(&doc(&format!("body {i}"), Some(if i % 2 == 0 { "even" } else { "odd" }))).unwrap();
            assert_eq!(id, DocId(i + 1));
            for k in 0..3u64 {
                let one = j("1.0");
                let n = s.add_input(id, &j(&format!("[{i}, {k}]")), (k == 0).then_some(&one)).unwrap();
                assert_eq!(n, NodeId(k + 1));
            }
            s.set_output(id, NodeId(2), &j(&format!("{{\"v\": {i}}}"))).unwrap();
            if i % 10 == 0 {
                s.delete_input(id, NodeId(3)).unwrap();
            }
            if i % 7 == 0 {
                s.update_doc(id, &DocPatch { version: Some("v2".into()), ..Default::default() }).unwrap();
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
    let dump = |dir: &std::path::Path| {
        let s = Store::open(opts(dir, 4096), Mode::Read).unwrap();
        let mut out = Vec::new();
        s.dump(&mut |_| {}, &mut |d| {
            out.push(d.to_json());
            Ok(())
        })
        .unwrap();
        out
    };
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
    assert_eq!(n, NodeId(4), "node ids never reused after delete+compact ({before:?})");
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
