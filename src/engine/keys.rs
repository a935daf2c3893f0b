//! The store-wide key index (docs/FORMAT.md §7.8): the owner of `keys.base`
//! and `keys.recent`, a derived cache of the members' key entries (§7.6)
//! so that finding a key costs two small binary searches whatever the
//! number of members, as finding an id does through the document ranges.
//!
//! It is never the only copy of anything. Every entry names a candidate
//! document that a lookup resolves and whose key it compares, as the probe
//! over every member does, so a stale entry costs a read and never a wrong
//! answer. What it must never do is *miss* a live key, and that is what the
//! binding is for: the pair is used only when `keys.recent` was written for
//! exactly the manifest on disk (store id, serial, max seq and the
//! manifest's CRC) and for exactly the `keys.base` beside it (its nonce).
//! A file from another store, one left beside an older or newer manifest,
//! or a pair half replaced by a crash therefore fails its check, and the
//! lookup probes the members as it would without it; the next manifest
//! commit builds a new pair.
//!
//! Two levels keep a commit cheap: `keys.base` is built once from every
//! member and then left alone; `keys.recent` holds the key entries of the
//! members added since and is rewritten at every commit. The base is built
//! again (and the recent file emptied) when the recent file passes an
//! eighth of it, when a quarter of its entries name members no longer
//! listed, or when the pair was not valid before the commit.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::engine::format::{FORMAT_VERSION, Manifest, TMP_SUFFIX, u16_at, u32_at, u64_at};
use crate::engine::vfs::{VFile, Vfs};
use crate::error::{Error, IoContext, Result};

/// The base file: every member's key entries when it was built.
pub const BASE_NAME: &str = "keys.base";
/// The recent file: the key entries of the members added since the base.
pub const RECENT_NAME: &str = "keys.recent";

const MAGIC: [u8; 8] = *b"\x89STRKEY\n";
/// Bytes in a key index header.
pub const HEADER_LEN: usize = 64;
/// Bytes in one block.
pub const BLOCK_LEN: usize = 4096;
/// Bytes in one entry.
pub const ENTRY_LEN: usize = 32;
/// Entries per block.
pub const PER_BLOCK: usize = 127;
const COUNT_AT: usize = PER_BLOCK * ENTRY_LEN;
const CRC_AT: usize = BLOCK_LEN - 4;
const KIND_BASE: u16 = 1;
const KIND_RECENT: u16 = 2;

/// The recent file is rewritten whole at each commit; below this many
/// entries (8 blocks, 32 KiB) that costs less than rebuilding the base, so
/// the "an eighth of the base" rule waits for it: a small store would
/// otherwise rebuild its base at nearly every commit.
const RECENT_FLOOR: u64 = 8 * PER_BLOCK as u64;

/// Largest entry count a header may claim: far above any real store, small
/// enough that a damaged count never costs much memory.
const MAX_ENTRIES: u64 = 1 << 36;

/// One entry: a key entry of member `member` (§7.6), with the key's slot,
/// the document its `DocPut` belongs to and that record's seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyEntry {
    /// 2⁶³ + (FNV-1a-64 of the key >> 2), as in the member's index.
    pub slot: u64,
    /// The document whose `DocPut` holds the key.
    pub doc: u64,
    /// That `DocPut`'s seq.
    pub seq: u64,
    /// The member whose index holds the key entry.
    pub member: u64,
}

impl KeyEntry {
    fn encode_into(&self, b: &mut [u8]) {
        for (i, v) in [self.slot, self.doc, self.seq, self.member]
            .into_iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(b: &[u8]) -> Option<KeyEntry> {
        Some(KeyEntry {
            slot: u64_at(b, 0)?,
            doc: u64_at(b, 8)?,
            seq: u64_at(b, 16)?,
            member: u64_at(b, 24)?,
        })
    }
}

/// Encodes one block of 1 to [`PER_BLOCK`] entries.
fn encode_block(entries: &[KeyEntry]) -> [u8; BLOCK_LEN] {
    debug_assert!(!entries.is_empty() && entries.len() <= PER_BLOCK);
    let mut b = [0u8; BLOCK_LEN];
    for (i, e) in entries.iter().enumerate() {
        e.encode_into(&mut b[i * ENTRY_LEN..(i + 1) * ENTRY_LEN]);
    }
    b[COUNT_AT..COUNT_AT + 4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let crc = crate::crc::crc32(&b[..CRC_AT]);
    b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks one block: its CRC, its count, the zero bytes and the
/// strict order of its entries. `None` when any fails.
fn decode_block(b: &[u8]) -> Option<Vec<KeyEntry>> {
    if b.len() != BLOCK_LEN || u32_at(b, CRC_AT)? != crate::crc::crc32(&b[..CRC_AT]) {
        return None;
    }
    let n = u32_at(b, COUNT_AT)? as usize;
    if n == 0 || n > PER_BLOCK || b[COUNT_AT + 4..CRC_AT].iter().any(|&x| x != 0) {
        return None;
    }
    let out: Vec<KeyEntry> = b[..n * ENTRY_LEN]
        .chunks_exact(ENTRY_LEN)
        .map(KeyEntry::decode)
        .collect::<Option<_>>()?;
    out.windows(2).all(|w| w[0] < w[1]).then_some(out)
}

/// What a key index file's header binds it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    kind: u16,
    /// The store's id.
    pub store_id: u64,
    /// The base's nonce (its own, in the base; the base it goes with, in
    /// the recent file).
    pub nonce: u64,
    /// Entries in the blocks.
    pub entries: u64,
    /// The manifest it was written for: serial, max seq and CRC.
    pub serial: u64,
    max_seq: u64,
    manifest_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&self.kind.to_le_bytes());
        b[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.nonce.to_le_bytes());
        b[32..40].copy_from_slice(&self.entries.to_le_bytes());
        b[40..48].copy_from_slice(&self.serial.to_le_bytes());
        b[48..56].copy_from_slice(&self.max_seq.to_le_bytes());
        b[56..60].copy_from_slice(&self.manifest_crc.to_le_bytes());
        let crc = crate::crc::crc32(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8], kind: u16) -> Option<Header> {
        let b = b.get(..HEADER_LEN)?;
        if b.get(..8)? != MAGIC
            || u16_at(b, 8)? != FORMAT_VERSION
            || u16_at(b, 10)? != kind
            || b.get(12..16)?.iter().any(|&x| x != 0)
            || u32_at(b, 60)? != crate::crc::crc32(&b[..60])
        {
            return None;
        }
        let h = Header {
            kind,
            store_id: u64_at(b, 16)?,
            nonce: u64_at(b, 24)?,
            entries: u64_at(b, 32)?,
            serial: u64_at(b, 40)?,
            max_seq: u64_at(b, 48)?,
            manifest_crc: u32_at(b, 56)?,
        };
        (h.entries <= MAX_ENTRIES).then_some(h)
    }

    fn blocks(&self) -> u64 {
        self.entries.div_ceil(PER_BLOCK as u64)
    }

    /// The exact length of a file with this header.
    fn file_len(&self) -> u64 {
        HEADER_LEN as u64 + BLOCK_LEN as u64 * self.blocks()
    }
}

/// What of a manifest the recent file is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    store_id: u64,
    serial: u64,
    max_seq: u64,
    crc: u32,
}

impl Bound {
    fn of(m: &Manifest) -> Bound {
        let b = m.encode();
        let crc = b
            .len()
            .checked_sub(4)
            .and_then(|n| u32_at(&b, n))
            .unwrap_or(0);
        Bound {
            store_id: m.store_id,
            serial: m.serial,
            max_seq: m.max_seq,
            crc,
        }
    }

    fn matches(&self, h: &Header) -> bool {
        h.store_id == self.store_id
            && h.serial == self.serial
            && h.max_seq == self.max_seq
            && h.manifest_crc == self.crc
    }
}

/// One open file of the pair.
struct Part {
    path: PathBuf,
    file: Box<dyn VFile>,
    header: Header,
}

/// What is found under one of the two names.
enum Probe {
    Missing,
    /// There, but its header or length does not check: damage.
    Bad(&'static str),
    Ok(Part),
}

impl Part {
    /// Opens `name` and checks its header and length; `Ok(None)` when it is
    /// missing or does not check (then it is no part of a valid pair).
    fn open(vfs: &dyn Vfs, dir: &Path, name: &str, kind: u16) -> Result<Option<Part>> {
        Ok(match Part::probe(vfs, dir, name, kind)? {
            Probe::Ok(p) => Some(p),
            Probe::Missing | Probe::Bad(_) => None,
        })
    }

    fn probe(vfs: &dyn Vfs, dir: &Path, name: &str, kind: u16) -> Result<Probe> {
        let path = dir.join(name);
        let file = match vfs.open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::Missing),
            // Not a regular file (a symlink or a FIFO put there): never
            // followed, never read; the probe answers.
            Err(e)
                if e.raw_os_error() == Some(libc::ELOOP)
                    || e.kind() == std::io::ErrorKind::InvalidInput =>
            {
                return Ok(Probe::Bad("not a regular file"));
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let mut b = [0u8; HEADER_LEN];
        match file.read_exact_at(&mut b, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Probe::Bad("shorter than its header"));
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        }
        let Some(header) = Header::decode(&b, kind) else {
            return Ok(Probe::Bad("its header does not check"));
        };
        if file.len().io("stat", &path)? != header.file_len() {
            return Ok(Probe::Bad("its length is not the one its header gives"));
        }
        Ok(Probe::Ok(Part { path, file, header }))
    }

    /// Reads block `i`; `Ok(None)` when it fails its checks.
    fn block(&self, i: u64) -> Result<Option<Vec<KeyEntry>>> {
        let mut buf = vec![0u8; BLOCK_LEN];
        let at = HEADER_LEN as u64 + i * BLOCK_LEN as u64;
        self.file
            .read_exact_at(&mut buf, at)
            .io("read", &self.path)?;
        Ok(decode_block(&buf))
    }

    /// The entries of `slot`: a binary search over the blocks by their
    /// last entry, then forward. `Ok(None)` when a block on the way fails
    /// its checks or the blocks are out of order.
    fn lookup(&self, slot: u64) -> Result<Option<Vec<KeyEntry>>> {
        let blocks = self.header.blocks();
        let (mut lo, mut hi) = (0u64, blocks);
        // The search ends on the block the entries start in, most often
        // one it has just read: kept, not read twice.
        let mut last_read: Option<(u64, Vec<KeyEntry>)> = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(b) = self.block(mid)? else {
                return Ok(None);
            };
            match b.last() {
                Some(e) if e.slot < slot => lo = mid + 1,
                _ => hi = mid,
            }
            last_read = Some((mid, b));
        }
        let mut out = Vec::new();
        let mut prev: Option<KeyEntry> = None;
        for i in lo..blocks {
            let kept = match last_read.take() {
                Some((at, b)) if at == i => Some(b),
                _ => None,
            };
            let Some(b) = (match kept {
                Some(b) => Some(b),
                None => self.block(i)?,
            }) else {
                return Ok(None);
            };
            if prev.is_some_and(|p| b.first().is_none_or(|f| *f <= p)) {
                return Ok(None);
            }
            prev = b.last().copied();
            out.extend(b.iter().filter(|e| e.slot == slot));
            if b.last().is_some_and(|e| e.slot > slot) {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Every entry, in order; `Ok(None)` when a block fails its checks,
    /// the blocks are out of order, or the count differs from the header.
    fn all(&self) -> Result<Option<Vec<KeyEntry>>> {
        let mut out: Vec<KeyEntry> = Vec::new();
        for i in 0..self.header.blocks() {
            let Some(b) = self.block(i)? else {
                return Ok(None);
            };
            let full = b.len() == PER_BLOCK || i + 1 == self.header.blocks();
            if !full || out.last().is_some_and(|l| b.first().is_none_or(|f| f <= l)) {
                return Ok(None);
            }
            out.extend(b);
        }
        Ok((out.len() as u64 == self.header.entries).then_some(out))
    }
}

/// The pair, both headers checked against each other and a manifest.
struct Pair {
    base: Part,
    recent: Part,
}

impl Pair {
    /// Opens the pair in `dir`; `Ok(None)` unless both files check and
    /// belong to each other and to the manifest `bound`.
    fn open(vfs: &dyn Vfs, dir: &Path, bound: &Bound) -> Result<Option<Pair>> {
        let Some(recent) = Part::open(vfs, dir, RECENT_NAME, KIND_RECENT)? else {
            return Ok(None);
        };
        if !bound.matches(&recent.header) {
            return Ok(None);
        }
        let Some(base) = Part::open(vfs, dir, BASE_NAME, KIND_BASE)? else {
            return Ok(None);
        };
        if base.header.store_id != bound.store_id || base.header.nonce != recent.header.nonce {
            return Ok(None);
        }
        Ok(Some(Pair { base, recent }))
    }
}

enum State {
    /// Not looked at yet: opened on the first lookup or commit.
    Unchecked,
    /// Missing, damaged or bound to another manifest: lookups probe the
    /// members until a commit writes a new pair.
    Invalid,
    Valid(Pair),
}

/// The key index of an open store: which manifest it is checked against,
/// and the pair once opened. Held by the sealed set, which owns the
/// manifest and the members whose key entries it lists.
pub(crate) struct KeyIndex {
    /// The manifest on disk as far as the key index knows: the one the
    /// pair must be bound to, and whose members it covers.
    bound: Option<(Bound, Vec<u64>)>,
    state: RefCell<State>,
    /// A lookup met a block that fails its checks: the next commit builds
    /// the pair again from the members rather than keep that base.
    damaged: std::cell::Cell<bool>,
}

/// What a commit of the key index did, for tests and notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The recent file was rewritten.
    Recent,
    /// The base was rebuilt (and the recent file emptied).
    Base,
    /// No member holds a key: there is no key index (any was removed).
    Nothing,
}

impl KeyIndex {
    /// The key index of a store opened with manifest `m` (none: format 1).
    pub fn new(m: Option<&Manifest>) -> KeyIndex {
        KeyIndex {
            bound: m.map(|m| (Bound::of(m), m.members.iter().map(|x| x.number).collect())),
            state: RefCell::new(State::Unchecked),
            damaged: std::cell::Cell::new(false),
        }
    }

    /// Stops using the pair for the rest of the process, and has the next
    /// commit build it again from the members: a member's index file, which
    /// the pair was built from, turned out stale.
    pub fn distrust(&self) {
        *self.state.borrow_mut() = State::Invalid;
        self.damaged.set(true);
    }

    /// Whether the manifest `m` is the one the key index was checked
    /// against.
    fn bound_to(&self, m: &Manifest) -> bool {
        self.bound
            .as_ref()
            .is_some_and(|(b, _)| b.serial == m.serial && b.store_id == m.store_id)
    }

    /// Opens the pair if not yet done; whether it is valid.
    fn ensure(&self, vfs: &dyn Vfs, dir: &Path) -> Result<bool> {
        let mut state = self.state.borrow_mut();
        if let State::Unchecked = *state {
            *state = match &self.bound {
                Some((b, _)) => match Pair::open(vfs, dir, b)? {
                    Some(p) => State::Valid(p),
                    None => State::Invalid,
                },
                None => State::Invalid,
            };
        }
        Ok(matches!(*state, State::Valid(_)))
    }

    /// The key index's entries for `slot` that name members of `m`, when
    /// the pair is valid for `m`; `Ok(None)` when it is not (the caller
    /// probes the members). A block that fails its checks makes the pair
    /// invalid for the rest of the process.
    ///
    /// # Errors
    /// [`Error::Io`]: a read error is never taken for damage.
    pub fn lookup(
        &self,
        vfs: &dyn Vfs,
        dir: &Path,
        m: &Manifest,
        slot: u64,
    ) -> Result<Option<Vec<KeyEntry>>> {
        if !self.bound_to(m) || !self.ensure(vfs, dir)? {
            return Ok(None);
        }
        let found = {
            let state = self.state.borrow();
            let State::Valid(p) = &*state else {
                return Ok(None);
            };
            match (p.base.lookup(slot)?, p.recent.lookup(slot)?) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                _ => None,
            }
        };
        let Some(mut found) = found else {
            *self.state.borrow_mut() = State::Invalid;
            self.damaged.set(true);
            return Ok(None);
        };
        found.retain(|e| {
            m.members
                .binary_search_by_key(&e.member, |x| x.number)
                .is_ok()
        });
        Ok(Some(found))
    }

    /// Brings the pair up to date after the manifest commit that wrote
    /// `m` (docs/FORMAT.md §7.8): the recent file gets the key entries of
    /// the members `m` lists that the manifest before did not, or the base
    /// is rebuilt. `keys_of` gives a member's key entries. On an error the
    /// pair is left invalid (bound to the older manifest) and lookups probe
    /// the members until a later commit succeeds; the commit itself stands.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Corrupt`] when a member's index does not
    /// hold the key entries the manifest counts for it.
    pub fn commit(
        &mut self,
        vfs: &dyn Vfs,
        dir: &Path,
        m: &Manifest,
        keys_of: &dyn Fn(u64) -> Result<Vec<KeyEntry>>,
    ) -> Result<Written> {
        // Checked against the manifest before this commit, which the pair
        // was written for: a commit in a process that looked no key up
        // opens it here.
        let valid = self.bound.is_some()
            && !self.damaged.replace(false)
            && self.ensure(vfs, dir).unwrap_or(false);
        let before = self.bound.take();
        let state = std::mem::replace(self.state.get_mut(), State::Invalid);
        self.bound = Some((Bound::of(m), m.members.iter().map(|x| x.number).collect()));
        let pair = match (valid, state) {
            (true, State::Valid(p)) => Some(p),
            _ => None,
        };
        let written = write_pair(vfs, dir, m, pair, before.map(|(_, n)| n), keys_of)?;
        *self.state.get_mut() = State::Unchecked;
        Ok(written)
    }
}

/// The members of `m` that hold key entries.
fn keyed(m: &Manifest) -> impl Iterator<Item = &crate::engine::format::Member> {
    m.members.iter().filter(|x| x.keys > 0)
}

/// A member's key entries, checked against the count the manifest lists.
fn member_keys(
    m: &Manifest,
    n: u64,
    keys_of: &dyn Fn(u64) -> Result<Vec<KeyEntry>>,
    dir: &Path,
) -> Result<Vec<KeyEntry>> {
    let listed = m
        .members
        .iter()
        .find(|x| x.number == n)
        .map_or(0, |x| x.keys);
    let got = keys_of(n)?;
    if got.len() as u64 != listed {
        return Err(Error::corrupt(
            dir.join(crate::engine::format::index_name(n)),
            0,
            format!(
                "index holds {} key entries, the manifest counts {listed}",
                got.len()
            ),
        ));
    }
    Ok(got)
}

fn write_pair(
    vfs: &dyn Vfs,
    dir: &Path,
    m: &Manifest,
    pair: Option<Pair>,
    before: Option<Vec<u64>>,
    keys_of: &dyn Fn(u64) -> Result<Vec<KeyEntry>>,
) -> Result<Written> {
    let listed = |n: u64| m.members.binary_search_by_key(&n, |x| x.number).is_ok();
    let bound = Bound::of(m);
    if keyed(m).next().is_none() {
        // No member holds a key: the probe reads none, so a store without
        // keys keeps no key index and pays nothing for it at a commit.
        remove(vfs, dir)?;
        return Ok(Written::Nothing);
    }
    if let (Some(p), Some(before)) = (pair, before)
        && let Some(mut recent) = p.recent.all()?
    {
        recent.retain(|e| listed(e.member));
        for x in keyed(m).filter(|x| before.binary_search(&x.number).is_err()) {
            recent.extend(member_keys(m, x.number, keys_of, dir)?);
        }
        recent.sort_unstable();
        let base_count = p.base.header.entries;
        let listed_keys: u64 = keyed(m).map(|x| x.keys).sum();
        let live_in_base = listed_keys.saturating_sub(recent.len() as u64);
        let departed = base_count.saturating_sub(live_in_base);
        let recent_big = recent.len() as u64 > (base_count / 8).max(RECENT_FLOOR);
        if !recent_big && departed * 4 <= base_count {
            let h = header(KIND_RECENT, &bound, p.base.header.nonce);
            write_file(vfs, dir, RECENT_NAME, &h, &mut recent.into_iter().map(Ok))?;
            vfs.sync_dir(dir).io("fsync", dir)?;
            return Ok(Written::Recent);
        }
        // Rebuilt from the pair itself, streamed: the base's entries
        // that name listed members merged with the recent ones, no
        // member read and one block of the base held at a time.
        let base = Blocks {
            part: &p.base,
            next: 0,
            block: Vec::new().into_iter(),
        }
        .filter(|e| e.as_ref().map_or(true, |e| listed(e.member)));
        let mut merged = Merged {
            a: base.peekable(),
            b: recent.into_iter().peekable(),
        };
        if write_base(vfs, dir, &bound, &mut merged).is_ok() {
            return Ok(Written::Base);
        }
        // A damaged block of the base: built from the members below.
    }
    build_from_members(vfs, dir, m, &bound, keys_of)?;
    Ok(Written::Base)
}

/// Entries sorted in memory at once while a base is built from the
/// members (4 MiB); more go through sorted runs on disk.
const RUN_ENTRIES: usize = if cfg!(test) { 500 } else { 1 << 17 };

/// A new base from every member's key entries: sorted in memory up to
/// [`RUN_ENTRIES`] (plus one member's), else sorted runs written as
/// temporaries (`keys.runN.stratum-tmp`, deleted here or by the next write
/// open) and merged a block of each at a time, so that memory does not
/// grow with the store's keys.
fn build_from_members(
    vfs: &dyn Vfs,
    dir: &Path,
    m: &Manifest,
    bound: &Bound,
    keys_of: &dyn Fn(u64) -> Result<Vec<KeyEntry>>,
) -> Result<()> {
    let mut runs: Vec<String> = Vec::new();
    let built = (|| {
        let mut chunk: Vec<KeyEntry> = Vec::new();
        for x in keyed(m) {
            chunk.extend(member_keys(m, x.number, keys_of, dir)?);
            if chunk.len() >= RUN_ENTRIES {
                chunk.sort_unstable();
                let name = format!("keys.run{}{TMP_SUFFIX}", runs.len());
                runs.push(name.clone());
                let h = header(KIND_BASE, bound, 0);
                write_file(vfs, dir, &name, &h, &mut chunk.drain(..).map(Ok))?;
            }
        }
        chunk.sort_unstable();
        if runs.is_empty() {
            return write_base(vfs, dir, bound, &mut chunk.into_iter().map(Ok));
        }
        let mut parts = Vec::with_capacity(runs.len());
        for name in &runs {
            match Part::probe(vfs, dir, name, KIND_BASE)? {
                Probe::Ok(p) => parts.push(p),
                _ => return Err(Error::internal("a key index run did not read back")),
            }
        }
        let mut streams: Vec<Box<dyn Iterator<Item = Result<KeyEntry>> + '_>> = parts
            .iter()
            .map(|part| {
                Box::new(Blocks {
                    part,
                    next: 0,
                    block: Vec::new().into_iter(),
                }) as Box<dyn Iterator<Item = Result<KeyEntry>>>
            })
            .collect();
        streams.push(Box::new(chunk.into_iter().map(Ok)));
        let mut heap = std::collections::BinaryHeap::new();
        for (i, s) in streams.iter_mut().enumerate() {
            if let Some(e) = s.next().transpose()? {
                heap.push(std::cmp::Reverse((e, i)));
            }
        }
        let mut merged = std::iter::from_fn(|| {
            let std::cmp::Reverse((e, i)) = heap.pop()?;
            match streams[i].next().transpose() {
                Ok(Some(next)) => heap.push(std::cmp::Reverse((next, i))),
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            Some(Ok(e))
        });
        write_base(vfs, dir, bound, &mut merged)
    })();
    for name in &runs {
        let _ = vfs.remove_file(&dir.join(name));
    }
    built
}

/// Two ascending streams merged into one (the base's and the recent
/// file's entries, which never share an entry: each member's key entries
/// are in exactly one of them).
struct Merged<A: Iterator<Item = Result<KeyEntry>>, B: Iterator<Item = KeyEntry>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = Result<KeyEntry>>, B: Iterator<Item = KeyEntry>> Iterator for Merged<A, B> {
    type Item = Result<KeyEntry>;

    fn next(&mut self) -> Option<Result<KeyEntry>> {
        let take_b = match (self.a.peek(), self.b.peek()) {
            (Some(Ok(a)), Some(b)) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        if take_b {
            self.b.next().map(Ok)
        } else {
            self.a.next()
        }
    }
}

/// A header for a file bound to `bound`; its count is set when written.
fn header(kind: u16, bound: &Bound, nonce: u64) -> Header {
    Header {
        kind,
        store_id: bound.store_id,
        nonce,
        entries: 0,
        serial: bound.serial,
        max_seq: bound.max_seq,
        manifest_crc: bound.crc,
    }
}

/// A new base holding `all`, with a new nonce, and an empty recent file
/// that names it. The base's name is durable (directory fsync) before the
/// recent file that goes with it is written.
fn write_base(
    vfs: &dyn Vfs,
    dir: &Path,
    bound: &Bound,
    all: &mut dyn Iterator<Item = Result<KeyEntry>>,
) -> Result<()> {
    let nonce = vfs.new_store_id();
    write_file(vfs, dir, BASE_NAME, &header(KIND_BASE, bound, nonce), all)?;
    vfs.sync_dir(dir).io("fsync", dir)?;
    write_file(
        vfs,
        dir,
        RECENT_NAME,
        &header(KIND_RECENT, bound, nonce),
        &mut std::iter::empty(),
    )?;
    vfs.sync_dir(dir).io("fsync", dir)
}

/// Writes `name` whole: temporary file, blocks, header (with the count of
/// `entries`, which must be strictly ascending), fsync, rename. Streams:
/// a few blocks are held at a time, however many entries there are.
fn write_file(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    h: &Header,
    entries: &mut dyn Iterator<Item = Result<KeyEntry>>,
) -> Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let _ = vfs.remove_file(&tmp);
    let file = vfs.create_new(&tmp).io("create", &tmp)?;
    let mut at = HEADER_LEN as u64;
    let mut buf = Vec::with_capacity(BLOCK_LEN * 64);
    let mut block = Vec::with_capacity(PER_BLOCK);
    let mut count = 0u64;
    let mut last: Option<KeyEntry> = None;
    loop {
        let next = entries.next().transpose()?;
        if let Some(e) = next {
            if last.is_some_and(|l| l >= e) {
                return Err(Error::internal("key index entries out of order"));
            }
            last = Some(e);
            block.push(e);
            count += 1;
        }
        if block.len() == PER_BLOCK || (next.is_none() && !block.is_empty()) {
            buf.extend_from_slice(&encode_block(&block));
            block.clear();
        }
        if buf.len() >= BLOCK_LEN * 64 || (next.is_none() && !buf.is_empty()) {
            file.write_all_at(&buf, at).io("write", &tmp)?;
            at += buf.len() as u64;
            buf.clear();
        }
        if next.is_none() {
            break;
        }
    }
    let h = Header {
        entries: count,
        ..*h
    };
    file.write_all_at(&h.encode(), 0).io("write", &tmp)?;
    file.sync_data().io("fsync", &tmp)?;
    drop(file);
    let path = dir.join(name);
    vfs.rename(&tmp, &path).io("rename", &path)
}

/// The entries of a file of the pair, a block at a time, each checked.
struct Blocks<'a> {
    part: &'a Part,
    next: u64,
    block: std::vec::IntoIter<KeyEntry>,
}

impl Iterator for Blocks<'_> {
    type Item = Result<KeyEntry>;

    fn next(&mut self) -> Option<Result<KeyEntry>> {
        loop {
            if let Some(e) = self.block.next() {
                return Some(Ok(e));
            }
            if self.next >= self.part.header.blocks() {
                return None;
            }
            let at = HEADER_LEN as u64 + self.next * BLOCK_LEN as u64;
            let last = self.next + 1 == self.part.header.blocks();
            match self.part.block(self.next) {
                Ok(Some(b)) if b.len() == PER_BLOCK || last => self.block = b.into_iter(),
                Ok(_) => {
                    return Some(Err(Error::corrupt(
                        &self.part.path,
                        at,
                        "key index block fails its checks",
                    )));
                }
                Err(e) => return Some(Err(e)),
            }
            self.next += 1;
        }
    }
}

/// Removes both files (`repair`, which then rebuilds them by its
/// compaction's commit). Missing files are fine.
///
/// # Errors
/// [`Error::Io`].
pub(crate) fn remove(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    for name in [RECENT_NAME, BASE_NAME] {
        let p = dir.join(name);
        // Only a regular file: a directory or link someone put there is
        // left alone (and makes the pair invalid).
        if vfs.kind(&p).io("stat", &p)? != Some(crate::engine::vfs::EntryKind::File) {
            continue;
        }
        match vfs.remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &p, e)),
        }
    }
    Ok(())
}

/// What `verify` found of the key index (docs/FORMAT.md §7.8).
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Whether the pair is bound to the manifest (else it is not used, and
    /// there is nothing more to check).
    pub valid: bool,
    /// Whether either file is there.
    pub present: bool,
    /// The first problem: a file whose header or length does not check, or
    /// a block of a valid pair that fails its checks or is out of order;
    /// with the file name and offset.
    pub problem: Option<(String, u64, String)>,
    /// Entries naming listed members.
    pub listed: u64,
}

/// Checks the pair in `dir` against `m`: every block's CRC and order, and
/// feeds every entry naming a listed member to `fold`, for the caller to
/// compare with the members' own key entries.
///
/// # Errors
/// [`Error::Io`].
pub(crate) fn check(
    vfs: &dyn Vfs,
    dir: &Path,
    m: &Manifest,
    fold: &mut dyn FnMut(&KeyEntry),
) -> Result<Checked> {
    let mut out = Checked::default();
    let base = Part::probe(vfs, dir, BASE_NAME, KIND_BASE)?;
    let recent = Part::probe(vfs, dir, RECENT_NAME, KIND_RECENT)?;
    for (name, probe) in [(BASE_NAME, &base), (RECENT_NAME, &recent)] {
        if let Probe::Bad(why) = probe {
            out.problem = Some((
                name.to_owned(),
                0,
                format!(
                    "key index file: {why}; not used (key lookups read every member that holds keys); the next write or repair rebuilds it"
                ),
            ));
            return Ok(out);
        }
    }
    out.present = !matches!((&base, &recent), (Probe::Missing, Probe::Missing));
    let (Probe::Ok(base), Probe::Ok(recent)) = (base, recent) else {
        return Ok(out);
    };
    let bound = Bound::of(m);
    if !bound.matches(&recent.header)
        || base.header.store_id != bound.store_id
        || base.header.nonce != recent.header.nonce
    {
        return Ok(out);
    }
    out.valid = true;
    let p = Pair { base, recent };
    for part in [&p.base, &p.recent] {
        let name = part
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut last: Option<KeyEntry> = None;
        for i in 0..part.header.blocks() {
            let at = HEADER_LEN as u64 + i * BLOCK_LEN as u64;
            let Some(b) = part.block(i)? else {
                out.problem.get_or_insert((
                    name.clone(),
                    at,
                    "key index block fails its checks (a lookup that reaches it reads every member that holds keys instead); repair rebuilds it".into(),
                ));
                break;
            };
            let full = b.len() == PER_BLOCK || i + 1 == part.header.blocks();
            if !full || last.is_some_and(|l| b.first().is_none_or(|f| *f <= l)) {
                out.problem.get_or_insert((
                    name.clone(),
                    at,
                    "key index blocks are out of order (a lookup that reaches them reads every member that holds keys instead); repair rebuilds it".into(),
                ));
                break;
            }
            last = b.last().copied();
            for e in &b {
                if m.members
                    .binary_search_by_key(&e.member, |x| x.number)
                    .is_ok()
                {
                    out.listed += 1;
                    fold(e);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_round_trips_and_refuses_disorder_and_bit_flips() {
        let es: Vec<KeyEntry> = (0..PER_BLOCK as u64)
            .map(|i| KeyEntry {
                slot: (1 << 63) + i,
                doc: i + 1,
                seq: 10 + i,
                member: 3,
            })
            .collect();
        let b = encode_block(&es);
        assert_eq!(decode_block(&b).unwrap(), es);
        let mut flipped = b;
        flipped[5] ^= 1;
        assert!(decode_block(&flipped).is_none());
        let mut rev = es.clone();
        rev.swap(0, 1);
        assert!(decode_block(&encode_block(&rev)).is_none());
    }

    fn member(n: u64, keys: u64) -> crate::engine::format::Member {
        crate::engine::format::Member {
            number: n,
            len: 100,
            records: keys,
            min_seq: 1,
            max_seq: 1,
            min_doc: 1,
            max_doc: 1,
            keys,
            live_bytes: crate::engine::format::UNKNOWN,
            dead_bytes: crate::engine::format::UNKNOWN,
            version: FORMAT_VERSION,
            flags: 0,
        }
    }

    /// Member `n`'s key entries in this test: 200, interleaved by slot
    /// with every other member's, so that a merge has work to do.
    fn entries(n: u64) -> Vec<KeyEntry> {
        (0..200)
            .map(|i| KeyEntry {
                slot: (1 << 63) + i * 1000 + n,
                doc: n * 1000 + i,
                seq: n * 1000 + i,
                member: n,
            })
            .collect()
    }

    /// The recent file grows until it passes max(base / 8, 1,016 entries),
    /// then the base is rebuilt from the pair; one whose entries mostly
    /// name departed members is rebuilt too; a pair left bound to an older
    /// manifest is rebuilt from the members. After every commit each
    /// listed member's entries are found, and no departed one's.
    #[test]
    fn commits_follow_the_rebuild_rules_and_every_entry_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let vfs = crate::engine::vfs::OsFs;
        let mut m = Manifest {
            store_id: 7,
            serial: 1,
            active: 100,
            next_number: 101,
            doc_hwm: 0,
            max_seq: 0,
            counters: [0; 4],
            members: Vec::new(),
        };
        let mut ki = KeyIndex::new(Some(&m));
        let keys_of = |n: u64| Ok(entries(n));
        let commit = |m: &mut Manifest, ki: &mut KeyIndex| {
            m.serial += 1;
            m.max_seq += 1;
            let w = ki.commit(&vfs, dir, m, &keys_of).unwrap();
            if w == Written::Nothing {
                assert!(
                    ki.lookup(&vfs, dir, m, entries(1)[0].slot)
                        .unwrap()
                        .is_none()
                );
                return w;
            }
            for x in 1..=20 {
                let listed = m.members.iter().any(|y| y.number == x);
                for e in entries(x).iter().step_by(37) {
                    let got = ki.lookup(&vfs, dir, m, e.slot).unwrap().expect("valid");
                    assert_eq!(got.contains(e), listed, "member {x}, {e:?}");
                    assert!(got.iter().all(|g| g.slot == e.slot));
                }
            }
            w
        };
        m.members.push(member(1, 200));
        assert_eq!(commit(&mut m, &mut ki), Written::Base, "no pair before");
        for n in 2..=6 {
            m.members.push(member(n, 200));
            assert_eq!(commit(&mut m, &mut ki), Written::Recent, "member {n}");
        }
        // 1,200 recent entries: past the floor and an eighth of the base.
        m.members.push(member(7, 200));
        assert_eq!(commit(&mut m, &mut ki), Written::Base);
        // A commit that adds nothing rewrites the (empty) recent file.
        assert_eq!(commit(&mut m, &mut ki), Written::Recent);
        // Member 1 leaves (200 of 1,400): under a quarter, kept.
        m.members.retain(|x| x.number > 1);
        m.members.push(member(8, 200));
        assert_eq!(commit(&mut m, &mut ki), Written::Recent);
        // 2 and 3 leave too: 600 of 1,400 name departed members.
        m.members.retain(|x| x.number > 3);
        assert_eq!(commit(&mut m, &mut ki), Written::Base);
        // A commit the key index did not see (an older build's): the pair
        // is bound to the manifest before it, so not used, then rebuilt.
        m.serial += 1;
        m.members.push(member(9, 200));
        assert!(
            ki.lookup(&vfs, dir, &m, entries(9)[0].slot)
                .unwrap()
                .is_none()
        );
        let mut stale = KeyIndex::new(Some(&m));
        assert!(
            stale
                .lookup(&vfs, dir, &m, entries(9)[0].slot)
                .unwrap()
                .is_none()
        );
        // (1,200 entries: built through sorted runs, none left behind.)
        assert_eq!(commit(&mut m, &mut stale), Written::Base);
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(TMP_SUFFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // No member with keys: no key index at all.
        m.members.clear();
        assert_eq!(commit(&mut m, &mut stale), Written::Nothing);
        assert!(!dir.join(BASE_NAME).exists() && !dir.join(RECENT_NAME).exists());
    }

    #[test]
    fn a_header_is_bound_to_its_kind_and_checksum() {
        let h = Header {
            kind: KIND_RECENT,
            store_id: 7,
            nonce: 9,
            entries: 300,
            serial: 4,
            max_seq: 99,
            manifest_crc: 0xabcd,
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b, KIND_RECENT), Some(h));
        assert_eq!(Header::decode(&b, KIND_BASE), None);
        assert_eq!(h.file_len(), 64 + 3 * 4096);
        let mut c = b;
        c[40] ^= 1;
        assert_eq!(Header::decode(&c, KIND_RECENT), None);
    }
}
