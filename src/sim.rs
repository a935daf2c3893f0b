//! `CrashFs`: an in-memory [`Vfs`] that keeps, next to what a running
//! process sees, what a disk would still hold after a power loss.
//!
//! Per file (inode) it keeps the live bytes, the durable bytes (copied at
//! `sync_data`) and the writes and truncations made since then. Per directory
//! it keeps the live entries, the durable entries (copied at `sync_dir` of
//! that directory) and the creates, renames and unlinks made since then.
//! File data and directory entries are durable independently, as on Linux:
//! `fdatasync` of a new file does not make its name durable, and `fsync` of a
//! directory does not make the data of the files in it durable.
//!
//! [`crash_image`] builds the file system a reboot would find, from a
//! [`State`] and a choice of what the disk kept of the unsynced changes.
//!
//! Behind the `sim` feature, for the harnesses: the `crashfs`,
//! `model_based`, `corruption` and `fuzz_corpus` modules of `tests/engine.rs`
//! and the fuzz targets (the package's tests turn the feature on through a
//! dev-dependency on itself). Not part of the API a program builds on.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::engine::vfs::{EntryKind, LockGuard, VFile, Vfs};

/// Granularity of torn writes in [`DataMode::Sectors`].
pub const SECTOR: u64 = 512;

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// crash images on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    /// One of `v` (not empty), each as likely.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FileOp {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last `sync_data`, oldest first.
    pending: Vec<FileOp>,
}

/// What a directory entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DirOp {
    Put(OsString, Node),
    Remove(OsString),
    /// Atomic on a real file system, so one entry in the log: a crash keeps
    /// the old name or the new one, never both or neither.
    Rename(OsString, OsString),
}

#[derive(Clone, Debug, Default)]
struct Dir {
    live: BTreeMap<OsString, Node>,
    durable: BTreeMap<OsString, Node>,
    /// Entry changes since the last `sync_dir`, oldest first.
    pending: Vec<DirOp>,
}

fn apply_dir_op(entries: &mut BTreeMap<OsString, Node>, op: &DirOp) {
    match op {
        DirOp::Put(name, node) => {
            entries.insert(name.clone(), *node);
        }
        DirOp::Remove(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to) => {
            if let Some(node) = entries.remove(from) {
                entries.insert(to.clone(), node);
            }
        }
    }
}

/// Everything the simulated machine holds: cheap to clone (stores under test
/// are a few KiB).
#[derive(Clone, Debug)]
pub struct State {
    inodes: HashMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_inode: u64,
}

impl Default for State {
    fn default() -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        State {
            inodes: HashMap::new(),
            dirs,
            next_inode: 1,
        }
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((p.to_path_buf(), n.to_owned())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "no parent")),
    }
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl State {
    fn lookup(&self, path: &Path) -> io::Result<Option<Node>> {
        if path == Path::new("/") {
            return Ok(Some(Node::Dir));
        }
        let (parent, name) = split(path)?;
        Ok(self
            .dirs
            .get(&parent)
            .and_then(|d| d.live.get(&name))
            .copied())
    }

    fn dir_mut(&mut self, path: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(path).ok_or_else(not_found)
    }

    fn dir_op(&mut self, dir: &Path, op: DirOp) -> io::Result<()> {
        let d = self.dir_mut(dir)?;
        apply_dir_op(&mut d.live, &op);
        d.pending.push(op);
        Ok(())
    }

    fn file_ino(&self, path: &Path) -> io::Result<u64> {
        match self.lookup(path)? {
            Some(Node::File(ino)) => Ok(ino),
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )),
            None => Err(not_found()),
        }
    }

    /// Puts a file at `path` with `bytes`, live and durable, its name durable
    /// too: for building fixtures.
    pub fn put_file(&mut self, path: &Path, bytes: &[u8]) {
        let (parent, name) = split(path).expect("file path");
        self.mkdirs(&parent);
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            ino,
            Inode {
                live: bytes.to_vec(),
                durable: bytes.to_vec(),
                pending: Vec::new(),
            },
        );
        let d = self.dirs.get_mut(&parent).expect("parent made above");
        d.live.insert(name.clone(), Node::File(ino));
        d.durable.insert(name, Node::File(ino));
    }

    fn mkdirs(&mut self, path: &Path) {
        if self.dirs.contains_key(path) {
            return;
        }
        let (parent, name) = split(path).expect("dir path");
        self.mkdirs(&parent);
        let d = self.dirs.get_mut(&parent).expect("parent made above");
        d.live.insert(name.clone(), Node::Dir);
        d.durable.insert(name, Node::Dir);
        self.dirs.insert(path.to_path_buf(), Dir::default());
    }

    /// The live contents of every regular file, by path: what a process sees.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (dir, d) in &self.dirs {
            if !self.dir_live(dir) {
                continue;
            }
            for (name, node) in &d.live {
                if let Node::File(ino) = node {
                    out.insert(dir.join(name), self.inodes[ino].live.clone());
                }
            }
        }
        out
    }

    fn dir_live(&self, dir: &Path) -> bool {
        dir == Path::new("/") || matches!(self.lookup(dir), Ok(Some(Node::Dir)))
    }

    /// The live names in a directory.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.dirs
            .get(dir)
            .filter(|_| self.dir_live(dir))
            .map(|d| {
                d.live
                    .keys()
                    .map(|k| k.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when some change is not durable yet (data or directory entry).
    pub fn has_unsynced(&self) -> bool {
        self.inodes.values().any(|i| !i.pending.is_empty())
            || self.dirs.values().any(|d| !d.pending.is_empty())
    }

    /// A hash of what a process would see: every live name and its bytes.
    /// (A word-at-a-time mix rather than `Hash`: the images are hashed in
    /// debug builds, where SipHash over megabytes dominates a sweep.)
    pub fn fingerprint(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |bytes: &[u8]| {
            // SAFETY: every bit pattern is a valid u64.
            let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
            for &w in words {
                h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
            }
            for &b in head.iter().chain(tail) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            h = (h ^ bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        };
        for (dir, d) in &self.dirs {
            if !self.dir_live(dir) {
                continue;
            }
            mix(dir.as_os_str().as_encoded_bytes());
            for (name, node) in &d.live {
                mix(name.as_encoded_bytes());
                match node {
                    Node::File(ino) => mix(&self.inodes[ino].live),
                    Node::Dir => mix(b"/"),
                }
            }
        }
        h
    }
}

/// What survives of directory changes made since the last `sync_dir`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirMode {
    /// All of them (a file system whose metadata is synchronous).
    Live,
    /// None of them.
    Durable,
    /// A random prefix of them, per directory (a file system that commits
    /// metadata in order, as ext4's journal does).
    Prefix,
    /// A random subset of them, per directory: nothing orders directory
    /// changes between two fsyncs of the directory.
    Subset,
}

/// What survives of file data written since the last `sync_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataMode {
    /// Everything: the process died, the kernel kept its page cache.
    Keep,
    /// Nothing (LevelDB's `DropUnsyncedData`).
    Drop,
    /// Per 512-byte sector of each unsynced write: written, lost, or garbage;
    /// each unsynced truncation kept or lost (SQLite's test6).
    Sectors,
    /// The file size grew but the data did not arrive: unsynced appends read
    /// as zeros.
    Zeros,
    /// As `Zeros`, but the new blocks hold garbage.
    Garbage,
    /// A random prefix of the unsynced bytes, in write order.
    Prefix,
}

/// The file system a reboot would find after a crash in `state`.
pub fn crash_image(state: &State, dirs: DirMode, data: DataMode, rng: &mut Rng) -> State {
    let mut out = State {
        inodes: HashMap::new(),
        dirs: BTreeMap::new(),
        next_inode: state.next_inode,
    };
    // BTreeMap order visits a parent before its children.
    for (path, d) in &state.dirs {
        let present = path == Path::new("/")
            || split(path).ok().is_some_and(|(parent, name)| {
                out.dirs
                    .get(&parent)
                    .is_some_and(|p| p.live.get(&name) == Some(&Node::Dir))
            });
        if !present {
            continue;
        }
        let keep = match dirs {
            DirMode::Live | DirMode::Subset => d.pending.len(),
            DirMode::Durable => 0,
            DirMode::Prefix => rng.below(d.pending.len() as u64 + 1) as usize,
        };
        let mut entries = d.durable.clone();
        for op in &d.pending[..keep] {
            if dirs != DirMode::Subset || rng.chance(1, 2) {
                apply_dir_op(&mut entries, op);
            }
        }
        out.dirs.insert(
            path.clone(),
            Dir {
                live: entries.clone(),
                durable: entries,
                pending: Vec::new(),
            },
        );
    }
    let mut inos: Vec<u64> = out
        .dirs
        .values()
        .flat_map(|d| d.live.values())
        .filter_map(|n| match n {
            Node::File(i) => Some(*i),
            Node::Dir => None,
        })
        .collect();
    inos.sort_unstable();
    inos.dedup();
    for ino in inos {
        let bytes = surviving_bytes(&state.inodes[&ino], data, rng);
        out.inodes.insert(
            ino,
            Inode {
                live: bytes.clone(),
                durable: bytes,
                pending: Vec::new(),
            },
        );
    }
    out
}

fn write_into(buf: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if buf.len() < at + data.len() {
        buf.resize(at + data.len(), 0);
    }
    buf[at..at + data.len()].copy_from_slice(data);
}

fn surviving_bytes(inode: &Inode, mode: DataMode, rng: &mut Rng) -> Vec<u8> {
    let mut out = inode.durable.clone();
    if inode.pending.is_empty() {
        return out;
    }
    match mode {
        DataMode::Keep => out = inode.live.clone(),
        DataMode::Drop => {}
        DataMode::Zeros | DataMode::Garbage => {
            let live = inode.live.len();
            if live > out.len() {
                let extra = live - out.len();
                if mode == DataMode::Zeros {
                    out.resize(live, 0);
                } else {
                    out.extend(rng.bytes(extra));
                }
            }
        }
        DataMode::Sectors => {
            for op in &inode.pending {
                match op {
                    FileOp::SetLen(n) => {
                        if rng.chance(1, 2) {
                            out.resize(*n as usize, 0);
                        }
                    }
                    FileOp::Write { at, data } => {
                        let end = at + data.len() as u64;
                        let mut s = *at;
                        while s < end {
                            let e = ((s / SECTOR + 1) * SECTOR).min(end);
                            let piece = &data[(s - at) as usize..(e - at) as usize];
                            match rng.below(3) {
                                0 => write_into(&mut out, s, piece),
                                1 => {}
                                _ => write_into(&mut out, s, &rng.bytes(piece.len())),
                            }
                            s = e;
                        }
                    }
                }
            }
        }
        DataMode::Prefix => {
            let units: u64 = inode
                .pending
                .iter()
                .map(|op| match op {
                    FileOp::SetLen(_) => 1,
                    FileOp::Write { data, .. } => data.len() as u64,
                })
                .sum();
            let mut budget = rng.below(units + 1);
            for op in &inode.pending {
                if budget == 0 {
                    break;
                }
                match op {
                    FileOp::SetLen(n) => {
                        out.resize(*n as usize, 0);
                        budget -= 1;
                    }
                    FileOp::Write { at, data } => {
                        let n = budget.min(data.len() as u64) as usize;
                        write_into(&mut out, *at, &data[..n]);
                        budget -= n as u64;
                    }
                }
            }
        }
    }
    out
}

/// A snapshot taken after a mutating call, with the tag the driver had set.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The file system after the call.
    pub state: State,
    /// What the driver was doing (its own numbering).
    pub tag: usize,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    /// Mutating calls so far.
    mutations: u64,
    tag: usize,
    recording: Option<Vec<Snapshot>>,
}

impl Inner {
    fn mutated(&mut self) {
        self.mutations += 1;
        if let Some(r) = &mut self.recording {
            r.push(Snapshot {
                state: self.state.clone(),
                tag: self.tag,
            });
        }
    }
}

/// The simulated file system. Clones share the same machine.
#[derive(Clone, Debug, Default)]
pub struct CrashFs {
    inner: Arc<Mutex<Inner>>,
}

impl CrashFs {
    /// An empty file system.
    pub fn new() -> CrashFs {
        CrashFs::default()
    }

    /// A machine that boots with `state`.
    pub fn from_state(state: State) -> CrashFs {
        CrashFs {
            inner: Arc::new(Mutex::new(Inner {
                state,
                ..Inner::default()
            })),
        }
    }

    fn guard(&self) -> MutexGuard<'_, Inner> {
        // A panic in one test thread must not hide the state from the report.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the whole machine state now.
    pub fn state(&self) -> State {
        self.guard().state.clone()
    }

    /// Mutating calls made so far.
    pub fn mutations(&self) -> u64 {
        self.guard().mutations
    }

    /// Labels the snapshots taken from now on.
    pub fn set_tag(&self, tag: usize) {
        self.guard().tag = tag;
    }

    /// Starts keeping a snapshot after every mutating call.
    pub fn start_recording(&self) {
        self.guard().recording = Some(Vec::new());
    }

    /// Stops recording and returns the snapshots.
    pub fn take_recording(&self) -> Vec<Snapshot> {
        self.guard().recording.take().unwrap_or_default()
    }

    /// The live bytes of a file, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let g = self.guard();
        let ino = g.state.file_ino(path).ok()?;
        Some(g.state.inodes[&ino].live.clone())
    }

    /// Names in a directory (live view).
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let g = self.guard();
        g.state
            .dirs
            .get(dir)
            .map(|d| {
                d.live
                    .keys()
                    .map(|k| k.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct MemFile {
    fs: Arc<Mutex<Inner>>,
    ino: u64,
    writable: bool,
}

impl MemFile {
    fn guard(&self) -> MutexGuard<'_, Inner> {
        self.fs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ))
        }
    }
}

impl VFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let g = self.guard();
        let data = &g.state.inodes[&self.ino].live;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut g = self.guard();
        let inode = g.state.inodes.get_mut(&self.ino).expect("open inode");
        write_into(&mut inode.live, offset, buf);
        inode.pending.push(FileOp::Write {
            at: offset,
            data: buf.to_vec(),
        });
        g.mutated();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.guard().state.inodes[&self.ino].live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut g = self.guard();
        let inode = g.state.inodes.get_mut(&self.ino).expect("open inode");
        inode.live.resize(len as usize, 0);
        inode.pending.push(FileOp::SetLen(len));
        g.mutated();
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut g = self.guard();
        let inode = g.state.inodes.get_mut(&self.ino).expect("open inode");
        inode.durable = inode.live.clone();
        inode.pending.clear();
        g.mutated();
        Ok(())
    }
}

struct NoLock;

impl LockGuard for NoLock {}

impl CrashFs {
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn VFile>> {
        let ino = self.guard().state.file_ino(path)?;
        Ok(Box::new(MemFile {
            fs: self.inner.clone(),
            ino,
            writable,
        }))
    }
}

impl Vfs for CrashFs {
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        self.open(path, false)
    }

    /// Fixed, so that a workload writes the same bytes every run.
    fn new_store_id(&self) -> u64 {
        0x5717_a7e5_0000_0001
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        self.open(path, true)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn VFile>> {
        let (parent, name) = split(path)?;
        let mut g = self.guard();
        if !g.state.dir_live(&parent) {
            return Err(not_found());
        }
        if g.state.lookup(path)?.is_some() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = g.state.next_inode;
        g.state.next_inode += 1;
        g.state.inodes.insert(ino, Inode::default());
        g.state.dir_op(&parent, DirOp::Put(name, Node::File(ino)))?;
        g.mutated();
        drop(g);
        Ok(Box::new(MemFile {
            fs: self.inner.clone(),
            ino,
            writable: true,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (pf, nf) = split(from)?;
        let (pt, nt) = split(to)?;
        if pf != pt {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "CrashFs renames within one directory only",
            ));
        }
        let mut g = self.guard();
        if !g.state.dir_live(&pf) || g.state.lookup(from)?.is_none() {
            return Err(not_found());
        }
        if g.state.lookup(to)? == Some(Node::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "rename target is a directory",
            ));
        }
        g.state.dir_op(&pf, DirOp::Rename(nf, nt))?;
        g.mutated();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (parent, name) = split(path)?;
        let mut g = self.guard();
        g.state.file_ino(path)?;
        g.state.dir_op(&parent, DirOp::Remove(name))?;
        g.mutated();
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut g = self.guard();
        let mut missing = Vec::new();
        let mut p = path.to_path_buf();
        loop {
            match g.state.lookup(&p)? {
                Some(Node::Dir) => break,
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file is in the way",
                    ));
                }
                None => {
                    missing.push(p.clone());
                    p = split(&p)?.0;
                }
            }
        }
        for d in missing.into_iter().rev() {
            let (parent, name) = split(&d)?;
            g.state.dirs.insert(d.clone(), Dir::default());
            g.state.dir_op(&parent, DirOp::Put(name, Node::Dir))?;
            g.mutated();
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        let g = self.guard();
        if !g.state.dir_live(path) {
            return Err(not_found());
        }
        Ok(g.state.dirs[path]
            .live
            .iter()
            .map(|(n, node)| {
                let kind = match node {
                    Node::File(_) => EntryKind::File,
                    Node::Dir => EntryKind::Dir,
                };
                (n.clone(), kind)
            })
            .collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut g = self.guard();
        if !g.state.dir_live(path) {
            return Err(not_found());
        }
        let d = g.state.dir_mut(path)?;
        d.durable = d.live.clone();
        d.pending.clear();
        g.mutated();
        Ok(())
    }

    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        Ok(self.guard().state.lookup(path)?.map(|n| match n {
            Node::File(_) => EntryKind::File,
            Node::Dir => EntryKind::Dir,
        }))
    }

    fn available_space(&self, _path: &Path) -> io::Result<u64> {
        Ok(1 << 40)
    }

    fn lock(
        &self,
        path: &Path,
        _exclusive: bool,
        create: bool,
        _timeout: Duration,
    ) -> io::Result<Option<Box<dyn LockGuard>>> {
        let exists = self.guard().state.lookup(path)?.is_some();
        if !exists {
            if !create {
                return Err(not_found());
            }
            self.create_new(path)?;
        }
        Ok(Some(Box::new(NoLock)))
    }
}
