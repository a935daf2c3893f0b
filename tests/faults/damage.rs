//! Item 6: damaged files through the CLI. Truncations at a sample of
//! offsets (every record boundary and its neighbours included) and single
//! bit flips of a small store: `verify` exits 6 on every damage (a cut or a
//! bad last record of `active.seg` reads as a torn tail, exit 0 with a
//! notice), and `get`/`dump` never print a value that differs from the model
//! (the full state, or for a torn tail of `active.seg` the state before the
//! records it cuts off). Then crafted records with valid CRCs and hostile
//! lengths or ids, under `prlimit --as=256M` and `/usr/bin/time -v`: no
//! crash, no abort, no hang, bounded memory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use stratum::engine::format::{
    self, IndexEntry, IndexHeader, Kind, MAX_PAYLOAD, SealPayload, SegmentHeader, encode_block,
    encode_record,
};

/// A format-1 `DocPut` payload prefix (these stores are crafted as format 1).
fn encode_doc_meta(node_hwm: u64, category: Option<&str>, version: Option<&str>) -> Vec<u8> {
    format::encode_doc_prefix(&format::DocFields {
        node_hwm,
        category,
        version,
        ..format::DocFields::default()
    })
    .0
}

use crate::history::{
    self, Command, Docs, Model, Target, add_input, create_doc, delete_doc, delete_input, new_doc,
    parse_doc, set_output, update_doc,
};
use crate::support::{Cmd, Ctx, long, names, reset_dir, rng};

/// A small store: one sealed (compacted) segment with its index, and an
/// active segment holding one record per command of `history`, with the
/// state after each (`history[0]` is the state before the first).
struct Fixture {
    dir: PathBuf,
    /// (active.seg length, state) after each tail command.
    history: Vec<(u64, Docs)>,
}

fn fixture(cx: &Ctx) -> Fixture {
    let dir = cx.path("fixture");
    let mut m = Model::default();
    let run = &cx.run;
    for i in 1..=3u64 {
        history::exec(
            run,
            &dir,
            "4096",
            &mut m,
            &create_doc(new_doc(&format!("doc {i}"), Some("c"), None)),
        );
        for n in 0..5 {
            let op = add_input(
                Target::Id(i),
                format!("{{\"i\":{i},\"n\":{n},\"pad\":\"{}\"}}", "q".repeat(90)),
                (n % 2 == 0).then(|| format!("{n}")),
            );
            history::exec(run, &dir, "4096", &mut m, &op);
        }
    }
    history::exec(run, &dir, "4096", &mut m, &delete_input(Target::Id(1), 2));
    history::exec(run, &dir, "4096", &mut m, &Command::Compact);
    let len = |d: &Path| fs::metadata(d.join("active.seg")).map_or(0, |x| x.len());
    let mut history = vec![(len(&dir), m.docs.clone())];
    let tail = [
        create_doc(new_doc("tail doc", None, Some("t1"))),
        add_input(Target::Id(4), "[4,1]".into(), Some("\"x\"".into())),
        set_output(Target::Id(2), 1, "{\"new\":1}".into()),
        update_doc(
            Target::Id(3),
            Some("doc 3, edited".into()),
            None,
            Some("v2".into()),
        ),
        delete_input(Target::Id(2), 3),
        delete_doc(Target::Id(1)),
        add_input(Target::Id(3), "{\"last\":true}".into(), None),
    ];
    for op in &tail {
        history::exec(run, &dir, "1M", &mut m, op);
        history.push((len(&dir), m.docs.clone()));
    }
    Fixture { dir, history }
}

/// The states a read may show after damage at `offset` of `file`: the full
/// state, and for `active.seg` past its header, the state before the record
/// the damage falls in (a torn tail).
fn acceptable<'a>(fx: &'a Fixture, file: &str, offset: u64, cut: bool) -> Vec<&'a Docs> {
    let full = &fx.history.last().expect("history").1;
    if file == "active.seg" && cut && offset == 0 {
        // An empty active.seg is read as holding nothing: the engine cannot
        // tell it from a `--no-sync` store's crash (guide T19).
        return vec![&fx.history[0].1];
    }
    if file != "active.seg" || offset < format::SEGMENT_HEADER_LEN as u64 {
        return vec![full];
    }
    // Records wholly before the damage survive.
    let mut v: Vec<&Docs> = Vec::new();
    for (end, docs) in &fx.history {
        if *end <= offset {
            v.clear();
            v.push(docs);
        }
    }
    if !cut {
        v.push(full);
    }
    v
}

/// Is `offset` inside the last record of `active.seg`?
fn in_last_record(fx: &Fixture, file: &str, offset: u64) -> bool {
    let n = fx.history.len();
    file == "active.seg" && n >= 2 && offset >= fx.history[n - 2].0
}

#[derive(Default)]
struct Tally {
    cases: u64,
    verify_damage: u64,
    verify_torn: u64,
    verify_clean: u64,
    reads: u64,
    refused_reads: u64,
    violations: Vec<String>,
}

/// One damaged store: which file, where, and whether it was cut (else a
/// bit flipped).
struct Damage<'a> {
    file: &'a str,
    offset: u64,
    cut: bool,
    what: String,
}

/// Runs verify, dump and a few gets on the damaged store in `work`.
fn check_damaged(cx: &Ctx, fx: &Fixture, work: &Path, dmg: &Damage<'_>, t: &mut Tally) {
    let (file, offset, cut, what) = (dmg.file, dmg.offset, dmg.cut, dmg.what.as_str());
    t.cases += 1;
    let ok_states = acceptable(fx, file, offset, cut);
    let boundary = cut && file == "active.seg" && fx.history.iter().any(|(end, _)| *end == offset);
    let last = in_last_record(fx, file, offset);
    // The harness runs every command with -q, under which verify prints no
    // report; its JSON form still carries the notices.
    let v = cx.run.stratum(work, &["verify", "--json"]);
    let torn_notice = v.out().contains("torn tail") || v.err().contains("torn tail");
    match v.code {
        Some(6) => t.verify_damage += 1,
        Some(0) if torn_notice => t.verify_torn += 1,
        Some(0) => t.verify_clean += 1,
        _ => t
            .violations
            .push(format!("{what}: verify: {}", v.describe())),
    }
    // Where verify may pass: a cut of active.seg past its header (a torn
    // tail, or nothing at all at a record boundary), and damage inside the
    // last record when it then looks like a cut-short write.
    let may_pass = (cut
        && file == "active.seg"
        && (offset == 0 || offset >= format::SEGMENT_HEADER_LEN as u64))
        || (!cut && last);
    if v.code == Some(0) && !may_pass {
        t.violations.push(format!(
            "{what}: verify exit 0 on damage: {}",
            v.out().lines().last().unwrap_or("")
        ));
    }
    if v.code == Some(0)
        && cut
        && !boundary
        && offset > format::SEGMENT_HEADER_LEN as u64
        && !torn_notice
    {
        t.violations.push(format!(
            "{what}: verify passed a cut mid-record without a torn-tail notice"
        ));
    }
    let d = cx.run.stratum(work, &["dump"]);
    t.reads += 1;
    match d.code {
        Some(0) => match history::parse_dump(&d.out()) {
            Ok(got) if ok_states.contains(&&got) => {}
            Ok(got) => t.violations.push(format!(
                "{what}: dump printed a state the history never had: {}",
                history::diff(ok_states[0], &got)
            )),
            Err(e) => t.violations.push(format!("{what}: dump: {e}")),
        },
        Some(6) => {
            t.refused_reads += 1;
            // Lines printed before the refusal must still be right.
            for line in d.out().lines() {
                match parse_doc(line) {
                    Ok((id, doc)) if ok_states.iter().any(|s| s.get(&id) == Some(&doc)) => {}
                    _ => t.violations.push(format!(
                        "{what}: dump printed a wrong line before failing: {line}"
                    )),
                }
            }
        }
        _ => t.violations.push(format!("{what}: dump: {}", d.describe())),
    }
    for id in [2u64, 3, 4] {
        let g = cx.run.stratum(work, &["get", &id.to_string()]);
        t.reads += 1;
        match g.code {
            Some(0) => match parse_doc(g.out().trim()) {
                Ok((gid, doc))
                    if gid == id && ok_states.iter().any(|s| s.get(&id) == Some(&doc)) => {}
                _ => t.violations.push(format!(
                    "{what}: get {id} printed a wrong value: {}",
                    g.out().trim()
                )),
            },
            Some(3) if ok_states.iter().any(|s| !s.contains_key(&id)) => {}
            Some(6) => t.refused_reads += 1,
            _ => t
                .violations
                .push(format!("{what}: get {id}: {}", g.describe())),
        }
    }
}

/// Record boundaries of a segment file, from `dump --records`.
fn boundaries(cx: &Ctx, dir: &Path, file: &str) -> Vec<u64> {
    let out = cx.run.stratum(dir, &["dump", "--records"]);
    let mut v = vec![
        0,
        1,
        format::SEGMENT_HEADER_LEN as u64 - 1,
        format::SEGMENT_HEADER_LEN as u64,
    ];
    for l in out.out().lines() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        if r["segment"] == file {
            let (o, s) = (
                r["offset"].as_u64().unwrap_or(0),
                r["size"].as_u64().unwrap_or(0),
            );
            v.extend([o, o + 1, o + s - 1, o + s]);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

fn report(cx: Ctx, label: &str, t: Tally) {
    eprintln!(
        "[{}] {label}: {} damaged stores; verify: {} damage (exit 6), {} torn tail (exit 0 + notice), {} clean (exit 0); \
         {} reads, {} refused (exit 6), 0 allowed to differ from the model; violations: {}",
        cx.name,
        t.cases,
        t.verify_damage,
        t.verify_torn,
        t.verify_clean,
        t.reads,
        t.refused_reads,
        t.violations.len()
    );
    cx.finish();
    crate::support::assert_no_violations(&t.violations);
}

#[test]
fn truncation_of_every_file_at_sampled_offsets() {
    let cx = Ctx::new("truncate");
    let fx = fixture(&cx);
    let mut rng = rng(cx.name);
    let work = cx.path("work");
    let mut t = Tally::default();
    for file in names(&fx.dir) {
        let path = fx.dir.join(&file);
        let len = fs::metadata(&path).map_or(0, |m| m.len());
        if file == "LOCK" || len == 0 {
            continue;
        }
        let mut offsets: Vec<u64> = if file.ends_with(".seg") {
            boundaries(&cx, &fx.dir, &file)
        } else {
            vec![0, 1, 63, 64, 65, len / 2, len - 1]
        };
        let samples = if long() { len } else { 40 };
        offsets.extend((0..samples).map(|_| rng.below(len)));
        if long() {
            offsets.extend(0..len);
        }
        offsets.retain(|&o| o < len);
        offsets.sort_unstable();
        offsets.dedup();
        for &o in &offsets {
            reset_dir(&fx.dir, &work);
            let f = fs::OpenOptions::new()
                .write(true)
                .open(work.join(&file))
                .expect("open");
            f.set_len(o).expect("truncate");
            drop(f);
            let dmg = Damage {
                file: &file,
                offset: o,
                cut: true,
                what: format!("{file} cut at {o} of {len}"),
            };
            check_damaged(&cx, &fx, &work, &dmg, &mut t);
        }
    }
    report(cx, "truncations", t);
}

#[test]
fn single_bit_flips_in_every_file() {
    let cx = Ctx::new("bit-flips");
    let fx = fixture(&cx);
    let mut rng = rng(cx.name);
    let work = cx.path("work");
    let mut t = Tally::default();
    let files: Vec<(String, Vec<u8>)> = names(&fx.dir)
        .into_iter()
        .filter(|n| n != "LOCK")
        .map(|n| {
            let b = fs::read(fx.dir.join(&n)).expect("read");
            (n, b)
        })
        .collect();
    let mut per_file: BTreeMap<String, u64> = BTreeMap::new();
    for (file, bytes) in &files {
        let bits = bytes.len() as u64 * 8;
        // Index files are mostly block padding (under the block CRC); the
        // segments are what holds data.
        let picks: Vec<u64> = if long() && file.ends_with(".seg") {
            (0..bits).collect()
        } else {
            let n = if file.ends_with(".seg") { 300 } else { 60 };
            (0..n).map(|_| rng.below(bits)).collect()
        };
        for bit in picks {
            let mut b = bytes.clone();
            b[(bit / 8) as usize] ^= 1 << (bit % 8);
            reset_dir(&fx.dir, &work);
            fs::write(work.join(file), &b).expect("write");
            *per_file.entry(file.clone()).or_default() += 1;
            let dmg = Damage {
                file,
                offset: bit / 8,
                cut: false,
                what: format!("{file} bit {bit} (byte {})", bit / 8),
            };
            check_damaged(&cx, &fx, &work, &dmg, &mut t);
        }
    }
    eprintln!("[{}] flips per file: {per_file:?}", cx.name);
    report(cx, "single-bit flips", t);
}

/// Writes a store whose active segment holds `records` (after a header).
fn crafted_store(dir: &Path, records: &[u8]) {
    fs::create_dir_all(dir).expect("dir");
    fs::write(dir.join("LOCK"), b"").expect("lock");
    let mut b = SegmentHeader {
        version: format::FORMAT_V1,
        store_id: 0,
        flags: 0,
        number: 1,
        gen_base: 0,
        gen_count: 0,
    }
    .encode()
    .to_vec();
    b.extend_from_slice(records);
    fs::write(dir.join("active.seg"), b).expect("active");
}

fn rec(seq: u64, kind: Kind, flags: u8, doc: u64, node: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_record(&mut v, seq, kind, flags, doc, node, payload, &[]);
    v
}

fn doc_rec(seq: u64, doc: u64, node_hwm: u64) -> Vec<u8> {
    let mut p = encode_doc_meta(node_hwm, Some("c"), None);
    p.extend_from_slice(b"body");
    rec(seq, Kind::DocPut, 0, doc, 0, &p)
}

fn input_rec(seq: u64, doc: u64, node: u64, input: &[u8]) -> Vec<u8> {
    let mut p = (input.len() as u32).to_le_bytes().to_vec();
    p.extend_from_slice(input);
    rec(seq, Kind::InputPut, 0, doc, node, &p)
}

/// A header with `len` in its length field and a CRC over the header alone.
fn lying_header(seq: u64, len: u32) -> Vec<u8> {
    let mut v = rec(seq, Kind::InputPut, 0, 1, 1, &[]);
    v[4..8].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&v[4..]);
    v[..4].copy_from_slice(&crc.to_le_bytes());
    v
}

/// A sealed segment file `number` holding `records` and a footer.
fn sealed_segment(
    number: u64,
    records: &[u8],
    seal: SealPayload,
    seal_seq: u64,
    generation: Option<(u64, u32)>,
) -> Vec<u8> {
    let mut b = SegmentHeader {
        version: format::FORMAT_V1,
        store_id: 0,
        flags: if generation.is_some() {
            format::SEG_FLAG_COMPACTED
        } else {
            0
        },
        number,
        gen_base: generation.map_or(0, |g| g.0),
        gen_count: generation.map_or(0, |g| g.1),
    }
    .encode()
    .to_vec();
    b.extend_from_slice(records);
    encode_record(&mut b, seal_seq, Kind::Seal, 0, 0, 0, &seal.encode(), &[]);
    b
}

struct Crafted {
    name: &'static str,
    build: Box<dyn Fn(&Path)>,
}

fn crafted_cases() -> Vec<Crafted> {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_rec = input_rec(2, 1, 1, deep.as_bytes());
    vec![
        Crafted {
            name: "length u32::MAX",
            build: Box::new(|d| {
                crafted_store(d, &[doc_rec(1, 1, 0), lying_header(2, u32::MAX)].concat())
            }),
        },
        Crafted {
            name: "length MAX_PAYLOAD (64 MiB) in a tiny file",
            build: Box::new(|d| {
                crafted_store(
                    d,
                    &[doc_rec(1, 1, 0), lying_header(2, MAX_PAYLOAD)].concat(),
                )
            }),
        },
        Crafted {
            name: "length MAX_PAYLOAD+1",
            build: Box::new(|d| {
                crafted_store(
                    d,
                    &[doc_rec(1, 1, 0), lying_header(2, MAX_PAYLOAD + 1)].concat(),
                )
            }),
        },
        Crafted {
            name: "length 2 GiB mid-file, valid record after",
            build: Box::new(|d| {
                crafted_store(
                    d,
                    &[doc_rec(1, 1, 0), lying_header(2, 1 << 31), doc_rec(3, 2, 0)].concat(),
                )
            }),
        },
        Crafted {
            name: "category length 0xFFFFFFF0, valid CRC",
            build: Box::new(|d| {
                let mut p = 0u64.to_le_bytes().to_vec();
                p.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                p.extend_from_slice(b"abc");
                crafted_store(d, &rec(1, Kind::DocPut, 0, 1, 0, &p));
            }),
        },
        Crafted {
            name: "input length 0xFFFFFFF0, valid CRC",
            build: Box::new(|d| {
                let mut p = 0xFFFF_FFF0u32.to_le_bytes().to_vec();
                p.extend_from_slice(b"[1]");
                crafted_store(
                    d,
                    &[doc_rec(1, 1, 1), rec(2, Kind::InputPut, 0, 1, 1, &p)].concat(),
                );
            }),
        },
        Crafted {
            name: "document id u64::MAX",
            build: Box::new(|d| crafted_store(d, &doc_rec(1, u64::MAX, 0))),
        },
        Crafted {
            name: "node id u64::MAX",
            build: Box::new(|d| {
                crafted_store(
                    d,
                    &[doc_rec(1, 1, 0), input_rec(2, 1, u64::MAX, b"[1]")].concat(),
                )
            }),
        },
        Crafted {
            name: "node high-water mark u64::MAX",
            build: Box::new(|d| crafted_store(d, &doc_rec(1, 1, u64::MAX))),
        },
        Crafted {
            name: "sequence number u64::MAX",
            build: Box::new(|d| {
                crafted_store(d, &[doc_rec(1, 1, 0), doc_rec(u64::MAX, 2, 0)].concat())
            }),
        },
        Crafted {
            name: "commit count u64::MAX",
            build: Box::new(|d| {
                let batch = rec(1, Kind::DocPut, format::FLAG_BATCH, 1, 0, &{
                    let mut p = encode_doc_meta(0, None, None);
                    p.extend_from_slice(b"b");
                    p
                });
                crafted_store(
                    d,
                    &[
                        batch,
                        rec(2, Kind::Commit, 0, 0, 0, &u64::MAX.to_le_bytes()),
                    ]
                    .concat(),
                );
            }),
        },
        Crafted {
            name: "JSON nested 100,000 deep",
            build: Box::new(move |d| {
                crafted_store(d, &[doc_rec(1, 1, 1), deep_rec.clone()].concat())
            }),
        },
        Crafted {
            name: "seal footer: doc high-water mark u64::MAX, records u64::MAX",
            build: Box::new(|d| {
                let seg = sealed_segment(
                    1,
                    &doc_rec(1, 1, 0),
                    SealPayload {
                        records: u64::MAX,
                        max_seq: 2,
                        doc_hwm: u64::MAX,
                    },
                    2,
                    None,
                );
                fs::create_dir_all(d).expect("dir");
                fs::write(d.join("LOCK"), b"").expect("lock");
                fs::write(d.join("seg_000001.seg"), seg).expect("seg");
            }),
        },
        Crafted {
            name: "segment number u64::MAX",
            build: Box::new(|d| {
                let seg = sealed_segment(
                    u64::MAX,
                    &doc_rec(1, 1, 0),
                    SealPayload {
                        records: 1,
                        max_seq: 2,
                        doc_hwm: 1,
                    },
                    2,
                    None,
                );
                fs::create_dir_all(d).expect("dir");
                fs::write(d.join("LOCK"), b"").expect("lock");
                fs::write(d.join(format!("seg_{}.seg", u64::MAX)), seg).expect("seg");
            }),
        },
        Crafted {
            name: "compaction generation base u64::MAX, count u32::MAX",
            build: Box::new(|d| {
                let seal = SealPayload {
                    records: 1,
                    max_seq: 2,
                    doc_hwm: 1,
                };
                fs::create_dir_all(d).expect("dir");
                fs::write(d.join("LOCK"), b"").expect("lock");
                let a = sealed_segment(5, &doc_rec(1, 1, 0), seal, 2, Some((u64::MAX, u32::MAX)));
                fs::write(d.join("seg_000005.seg"), a).expect("seg");
                let b = sealed_segment(
                    u64::MAX,
                    &doc_rec(3, 2, 0),
                    SealPayload { max_seq: 4, ..seal },
                    4,
                    Some((u64::MAX, 2)),
                );
                fs::write(d.join(format!("seg_{}.seg", u64::MAX)), b).expect("seg");
            }),
        },
        Crafted {
            name: "index entry length u32::MAX, index checksums valid",
            build: Box::new(|d| {
                let records = doc_rec(1, 1, 0);
                let seal = SealPayload {
                    records: 1,
                    max_seq: 2,
                    doc_hwm: 1,
                };
                let seg = sealed_segment(1, &records, seal, 2, None);
                let entry = IndexEntry {
                    doc: 1,
                    node: 0,
                    seq: 1,
                    offset: format::SEGMENT_HEADER_LEN as u64,
                    aux: 0,
                    len: u32::MAX,
                    kind: Kind::DocPut,
                    flags: 0,
                };
                let mut idx = IndexHeader {
                    version: format::FORMAT_V1,
                    store_id: 0,
                    segment: 1,
                    segment_len: seg.len() as u64,
                    entries: 1,
                    max_seq: 2,
                    doc_hwm: 1,
                }
                .encode()
                .to_vec();
                idx.extend_from_slice(&encode_block(&[entry]));
                fs::create_dir_all(d).expect("dir");
                fs::write(d.join("LOCK"), b"").expect("lock");
                fs::write(d.join("seg_000001.seg"), seg).expect("seg");
                fs::write(d.join("seg_000001.idx"), idx).expect("idx");
            }),
        },
        Crafted {
            name: "index header: u64::MAX entries",
            build: Box::new(|d| {
                let seal = SealPayload {
                    records: 1,
                    max_seq: 2,
                    doc_hwm: 1,
                };
                let seg = sealed_segment(1, &doc_rec(1, 1, 0), seal, 2, None);
                let idx = IndexHeader {
                    version: format::FORMAT_V1,
                    store_id: 0,
                    segment: 1,
                    segment_len: seg.len() as u64,
                    entries: u64::MAX,
                    max_seq: 2,
                    doc_hwm: 1,
                }
                .encode()
                .to_vec();
                fs::create_dir_all(d).expect("dir");
                fs::write(d.join("LOCK"), b"").expect("lock");
                fs::write(d.join("seg_000001.seg"), seg).expect("seg");
                fs::write(d.join("seg_000001.idx"), idx).expect("idx");
            }),
        },
    ]
}

/// Max RSS in KiB from a `/usr/bin/time -v` report.
fn max_rss_kib(report: &str) -> Option<u64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn crafted_records_with_valid_checksums_under_a_memory_cap() {
    crate::support::require_tools(&["prlimit", "timeout", "/usr/bin/time"]);
    let cx = Ctx::new("crafted");
    let mut violations = Vec::new();
    let mut runs = 0;
    let mut peak = 0u64;
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let commands: [&[&str]; 9] = [
        &["verify"],
        &["get", "1"],
        &["dump"],
        &["dump", "--records"],
        &["list"],
        &["stats"],
        &["create-doc", "new"],
        &["add-input", "1", "[1]"],
        &["compact"],
    ];
    for case in crafted_cases() {
        let mut line = Vec::new();
        for args in commands {
            let dir = cx.path("crafted");
            let _ = fs::remove_dir_all(&dir);
            (case.build)(&dir);
            let report = cx.path("time.txt");
            let cmd = Cmd::new("timeout")
                .args(["-s", "KILL", "20", "/usr/bin/time", "-v", "-o"])
                .arg(&report)
                .args(["prlimit", "--as=268435456"])
                .arg(crate::support::bin())
                .args(["-q", "--dir"])
                .arg(&dir)
                .args(args.iter().copied());
            let out = cx.run.run(cmd);
            runs += 1;
            let rss = max_rss_kib(&fs::read_to_string(&report).unwrap_or_default()).unwrap_or(0);
            peak = peak.max(rss);
            let what = format!("{}: stratum {}", case.name, args.join(" "));
            if out.killed_by(libc::SIGKILL) {
                violations.push(format!("{what}: hung (killed after 20 s)"));
            } else if !matches!(out.code, Some(0 | 1 | 3 | 4 | 6 | 7)) {
                violations.push(format!("{what}: {}", out.describe()));
            }
            if rss > 64 * 1024 {
                violations.push(format!("{what}: peak RSS {rss} KiB over 64 MiB"));
            }
            *codes.entry(out.status()).or_default() += 1;
            line.push(format!(
                "{}={}",
                args[0],
                out.code.map_or("sig".into(), |c| c.to_string())
            ));
        }
        eprintln!("[{}] {:<58} {}", cx.name, case.name, line.join(" "));
    }
    eprintln!(
        "[{}] crafted records: {runs} runs under prlimit --as=256M; exit statuses {codes:?}; peak RSS {} KiB; violations: {}",
        cx.name,
        peak,
        violations.len()
    );
    cx.finish();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
