//! The store-wide key index (docs/FORMAT.md §7.8, issue 11 item 1): key
//! lookups that cost what an id lookup costs at any number of members, and
//! a key index that is only ever a cache. Stores are built through the
//! library (fast, many segments) and driven through the binary, as scripts
//! do.

use std::path::Path;

use crate::run::{self, Out};
use stratum::{NewDoc, Options, Store};

const BASE: &str = "keys.base";
const RECENT: &str = "keys.recent";

fn opts(dir: &Path, seg: u64) -> Options {
    let mut o = Options::new(dir);
    o.segment_size = seg;
    o.sync = false;
    o
}

fn keyed(key: &str, body: &str) -> NewDoc {
    NewDoc {
        key: Some(key.into()),
        body: body.as_bytes().to_vec(),
        ..NewDoc::default()
    }
}

fn stratum(dir: &Path, args: &[&str]) -> Out {
    run::run(run::stratum(dir, args), None)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = stratum(dir, args);
    assert_eq!(r.code, Some(0), "{args:?}: {}", r.err());
    r.out()
}

/// A store of `n` keyed documents `k0` … with one input each; with a small
/// `seg`, one sealed segment per document or so.
fn build(dir: &Path, seg: u64, n: u64) -> usize {
    let mut s = Store::open(opts(dir, seg)).unwrap();
    for i in 0..n {
        let id = s
            .create_doc(&keyed(
                &format!("k{i}"),
                &format!("document {i} {}", "x".repeat(3000)),
            ))
            .unwrap();
        s.add_input(id, &stratum::Json::parse("[1, 2]").unwrap(), None)
            .unwrap();
    }
    s.stats().unwrap().segments.len() - 1
}

/// The id `get key:K` finds.
fn id_of(dir: &Path, key: &str) -> Option<u64> {
    let r = stratum(dir, &["get", &format!("key:{key}")]);
    if r.code == Some(3) {
        return None;
    }
    assert_eq!(r.code, Some(0), "get key:{key}: {}", r.err());
    let v: serde_json::Value = serde_json::from_str(r.out().trim()).unwrap();
    assert_eq!(v["key"], key);
    v["id"].as_u64()
}

/// `strace` counts of openat + read + pread64 of one command on the store's
/// files.
fn io_calls(dir: &Path, args: &[&str]) -> usize {
    let text = run::strace_log(&["-f", "-e", "trace=openat,read,pread64"], dir, args);
    text.lines()
        .filter(|l| l.contains(dir.to_str().unwrap()) || l.contains("pread64("))
        .count()
}

fn verify(dir: &Path) -> (Option<i32>, String) {
    let r = stratum(dir, &["verify", "--json"]);
    (r.code, r.out() + &r.err())
}

/// Issue 11 item 1: `get key:K`, `update-doc key:K` and `create-doc --key`
/// on a new key make about the same number of opens and reads on a store of
/// 1,000 keyed members as on the same live data in one member (within 2x):
/// the key's candidates come from the key index, not from every member.
#[test]
fn key_commands_cost_the_same_at_1000_segments() {
    run::require("strace", "strace");
    let tmp = tempfile::tempdir().unwrap();
    let many = tmp.path().join("many");
    let one = tmp.path().join("one");
    assert!(build(&many, 4096, 1010) >= 1000, "1,000 sealed segments");
    build(&one, 1 << 30, 1010);
    // The one-member store: everything sealed in one segment, so both
    // stores read a member's index and the key index, not a replay.
    Store::open(opts(&one, 1 << 30))
        .unwrap()
        .compact(&mut |_| {})
        .unwrap();
    for d in [&many, &one] {
        assert!(d.join(BASE).exists() && d.join(RECENT).exists());
    }
    let mut figures = Vec::new();
    for args in [
        &["get", "key:k500"][..],
        &["get", "key:k7", "--node", "1"],
        &["update-doc", "key:k500", "a new body"],
        &["update-doc", "key:k501", "--key", "renamed-501"],
        &["create-doc", "--key", "a-new-key", "new"],
        &["get", "key:no-such-key"],
    ] {
        let expect_ok = args[1] != "key:no-such-key";
        let (a, b) = if expect_ok {
            (io_calls(&many, args), io_calls(&one, args))
        } else {
            let count = |d: &Path| {
                let log = d.with_extension("strace");
                let o = run::strace(
                    [
                        "-f",
                        "-e",
                        "trace=openat,read,pread64",
                        "-o",
                        log.to_str().unwrap(),
                    ],
                    d,
                    args,
                );
                assert_eq!(o.status.code(), Some(3), "{args:?}");
                std::fs::read_to_string(&log)
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains(d.to_str().unwrap()) || l.contains("pread64("))
                    .count()
            };
            (count(&many), count(&one))
        };
        figures.push(format!("{args:?}: {a} at 1,000 segments, {b} in one"));
        assert!(
            a <= 2 * b,
            "{args:?}: {a} calls at 1,000 segments, {b} in one segment"
        );
    }
    eprintln!("{}", figures.join("\n"));
    for d in [&many, &one] {
        assert_eq!(id_of(d, "renamed-501"), Some(502));
        assert_eq!(id_of(d, "k501"), None);
        assert_eq!(id_of(d, "a-new-key"), Some(1011));
        let (code, out) = verify(d);
        assert_eq!(code, Some(0), "{out}");
    }
}

/// Every key of `keys` is found with its id, and `create-doc --key` on
/// each is refused (exit 4): a key index that does not bind is never used,
/// so it can make no lookup miss a live key.
fn all_found(dir: &Path, keys: &[(String, u64)]) {
    for (k, id) in keys {
        assert_eq!(id_of(dir, k), Some(*id), "key {k}");
    }
    let (k, _) = &keys[keys.len() / 2];
    let r = stratum(dir, &["create-doc", "--key", k, "dup"]);
    assert_eq!(r.code, Some(4), "a duplicate of {k}: {}", r.err());
}

fn keys_of(dir: &Path) -> Vec<(String, u64)> {
    ok(dir, &["list", "--json"])
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["key"].as_str()?.to_owned(), v["id"].as_u64()?))
        })
        .collect()
}

/// What a case does to a copy of the store.
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

fn copy_dir(from: &Path, to: &Path) {
    run::reset_dir(from, to);
}

/// A key index from another store, one bound to an older or a newer
/// manifest, a truncated one and one with a bad block are ignored: every
/// key is still found, no duplicate is let in, verify says what it is,
/// and the next write (or repair) builds a pair that binds again.
#[test]
fn a_key_index_that_does_not_bind_is_ignored_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    build(&a, 4096, 40);
    build(&b, 4096, 40);
    let snapshot = tmp.path().join("snapshot");
    copy_dir(&a, &snapshot);
    // More members and keys, and a compaction that replaces members.
    {
        let mut s = Store::open(opts(&a, 4096)).unwrap();
        for i in 40..60 {
            s.create_doc(&keyed(&format!("k{i}"), &"y".repeat(3000)))
                .unwrap();
        }
        s.update_doc(
            stratum::DocId(3),
            &stratum::DocPatch {
                key: Some(Some("k3-renamed".into())),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let keys = keys_of(&a);
    assert_eq!(keys.len(), 60);
    let (code, out) = verify(&a);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("key index"), "{out}");

    let cases: Vec<(&str, Spoil)> = vec![
        (
            "another store's",
            Box::new(|d: &Path| {
                for n in [BASE, RECENT] {
                    std::fs::copy(b.join(n), d.join(n)).unwrap();
                }
            }),
        ),
        (
            "an older manifest's",
            Box::new(|d: &Path| {
                for n in [BASE, RECENT] {
                    std::fs::copy(snapshot.join(n), d.join(n)).unwrap();
                }
            }),
        ),
        (
            "the recent file of an older manifest's",
            Box::new(|d: &Path| {
                std::fs::copy(snapshot.join(RECENT), d.join(RECENT)).unwrap();
            }),
        ),
        (
            "a truncated",
            Box::new(|d: &Path| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join(BASE))
                    .unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len - 100).unwrap();
            }),
        ),
        (
            "a damaged block of the",
            Box::new(|d: &Path| {
                let p = d.join(BASE);
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[64 + 40] ^= 0x10;
                std::fs::write(&p, bytes).unwrap();
            }),
        ),
    ];
    for (what, spoil) in &cases {
        let d = tmp.path().join("work");
        copy_dir(&a, &d);
        spoil(&d);
        all_found(&d, &keys);
        let (code, out) = verify(&d);
        if what.starts_with("another") || what.contains("older") {
            // Intact files bound to something else: not used, a notice.
            assert_eq!(code, Some(0), "{what} key index: {out}");
            assert!(out.contains("not bound to this manifest"), "{what}: {out}");
        } else {
            assert_ne!(code, Some(0), "{what} key index: {out}");
            assert!(out.contains(BASE), "{what}: {out}");
        }
        // A write commits a manifest and writes the pair again.
        if what.contains("block") {
            ok(&d, &["repair"]);
        } else {
            let mut s = Store::open(opts(&d, 4096)).unwrap();
            s.create_doc(&keyed("after", &"z".repeat(5000))).unwrap();
        }
        let (code, out) = verify(&d);
        assert_eq!(code, Some(0), "{what}, then a write: {out}");
        assert!(!out.contains("key index"), "{what}, then a write: {out}");
        all_found(&d, &keys);
    }

    // The other way round: a restored older store (its MANIFEST and
    // members) beside the newer key index. It binds to the newer manifest
    // only, so the older store's keys are all found.
    let d = tmp.path().join("restored");
    copy_dir(&snapshot, &d);
    for n in [BASE, RECENT] {
        std::fs::copy(a.join(n), d.join(n)).unwrap();
    }
    all_found(&d, &keys_of(&snapshot));
    assert_eq!(id_of(&d, "k3"), Some(4), "k3 still names its document here");
}

/// verify compares a bound key index with the members' key entries: one
/// that lacks an entry (crafted, checksums recomputed) is damage, and
/// repair builds it again.
#[test]
fn verify_reports_a_key_index_that_lacks_an_entry_and_repair_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 4096, 30);
    // The file of the pair that holds more than one entry, in one block.
    let count_of = |b: &[u8]| u64::from_le_bytes(b[32..40].try_into().unwrap());
    let p = [BASE, RECENT]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| (2..127).contains(&count_of(&std::fs::read(p).unwrap())))
        .expect("a key index file of one block of several entries");
    let mut bytes = std::fs::read(&p).unwrap();
    let count = count_of(&bytes);
    // Drop the first entry of the one block: shift the others down, lower
    // both counts, and recompute the block's and the header's CRCs.
    let n = count as usize;
    let block = &mut bytes[64..64 + 4096];
    block.copy_within(32..n * 32, 0);
    block[(n - 1) * 32..n * 32].fill(0);
    block[4064..4068].copy_from_slice(&((n - 1) as u32).to_le_bytes());
    let crc = crc32fast::hash(&block[..4092]);
    block[4092..].copy_from_slice(&crc.to_le_bytes());
    bytes[32..40].copy_from_slice(&(count - 1).to_le_bytes());
    let crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();

    let (code, out) = verify(&dir);
    assert_eq!(code, Some(6), "damage: {out}");
    assert!(out.contains("the key index holds"), "{out}");
    ok(&dir, &["repair"]);
    let (code, out) = verify(&dir);
    assert_eq!(code, Some(0), "{out}");
    all_found(&dir, &keys_of(&dir));
}

/// A store without keys keeps no key index; one whose keys all go away
/// drops it at the next commit.
#[test]
fn a_store_without_keys_has_no_key_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    {
        let mut s = Store::open(opts(&dir, 4096)).unwrap();
        for i in 0..20 {
            s.create_doc(&NewDoc {
                body: format!("plain {i} {}", "x".repeat(3000)).into_bytes(),
                ..NewDoc::default()
            })
            .unwrap();
        }
    }
    assert!(!dir.join(BASE).exists() && !dir.join(RECENT).exists());
    ok(&dir, &["create-doc", "--key", "one", "keyed"]);
    ok(&dir, &["--segment-size", "4096", "compact", "--full"]);
    assert!(dir.join(BASE).exists(), "a keyed member: a key index");
    assert_eq!(id_of(&dir, "one"), Some(21));
    ok(&dir, &["delete-doc", "key:one"]);
    ok(&dir, &["--segment-size", "4096", "compact", "--full"]);
    assert!(!dir.join(BASE).exists() && !dir.join(RECENT).exists());
    assert_eq!(id_of(&dir, "one"), None);
}

/// A backup carries the key index, bound to the copy's manifest, so a
/// restored store finds keys as fast.
#[test]
fn a_backup_carries_a_key_index_that_binds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 4096, 30);
    let copy = tmp.path().join("copy");
    ok(&dir, &["backup", copy.to_str().unwrap()]);
    for n in [BASE, RECENT] {
        assert_eq!(
            std::fs::read(dir.join(n)).unwrap(),
            std::fs::read(copy.join(n)).unwrap(),
            "{n}"
        );
    }
    let (code, out) = verify(&copy);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("key index"), "{out}");
    all_found(&copy, &keys_of(&dir));
}

/// A key index that cannot be written after a commit (here a directory
/// sits where `keys.recent` goes) does not fail the write: the command
/// exits 0 with its write durable and one notice, and key lookups probe
/// the members and stay right.
#[test]
fn a_key_index_that_cannot_be_written_does_not_fail_the_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 4096, 10);
    std::fs::remove_file(dir.join(RECENT)).unwrap();
    std::fs::create_dir(dir.join(RECENT)).unwrap();
    // Over the segment size: the create seals the segment before it.
    let body = "w".repeat(5000);
    let r = stratum(
        &dir,
        &[
            "--segment-size",
            "4096",
            "create-doc",
            "--key",
            "late",
            &body,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err());
    assert_eq!(r.out().trim(), "11");
    let err = r.err();
    assert!(
        err.contains("note: the key index was not updated") && err.lines().count() == 1,
        "{err}"
    );
    let r = stratum(
        &dir,
        &[
            "--segment-size",
            "4096",
            "create-doc",
            "--key",
            "later",
            &body,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err());
    let mut keys = keys_of(&dir);
    assert_eq!(keys.len(), 12);
    keys.sort();
    all_found(&dir, &keys);
    std::fs::remove_dir(dir.join(RECENT)).unwrap();
    let r = stratum(
        &dir,
        &[
            "--segment-size",
            "4096",
            "create-doc",
            "--key",
            "last",
            &body,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err());
    assert_eq!(r.err(), "", "written again once it can be");
    let (code, out) = verify(&dir);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("key index"), "{out}");
    all_found(&dir, &keys_of(&dir));
}

/// A seal by a command that looks no key up rewrites only the recent file:
/// the pair it checks is the one bound to the manifest before the commit,
/// not a base built again from every member.
#[test]
fn a_seal_without_a_key_lookup_keeps_the_base() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    assert!(
        build(&dir, 4096, 10) > 2,
        "more keyed members than a lookup probes"
    );
    let inode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().ino();
    let (base, recent) = (inode(BASE), inode(RECENT));
    // Over the segment size: the input seals the segment before it.
    let value = format!("\"{}\"", "v".repeat(5000));
    ok(&dir, &["--segment-size", "4096", "add-input", "3", &value]);
    assert_ne!(inode(RECENT), recent, "the commit rewrote the recent file");
    assert_eq!(inode(BASE), base, "the base was built again");
    assert_eq!(id_of(&dir, "k7"), Some(8));
}
