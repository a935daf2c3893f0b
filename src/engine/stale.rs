//! A sealed index file that disagrees with its segment is a cache miss, not
//! damage (issue 9, item 6).
//!
//! An index file whose checksums pass can still describe another file: an
//! index restored from another backup of the same store (same number, same
//! length, other records), or another segment's index copied over. The
//! segment is the truth. An index whose header describes another segment,
//! or that lists another number of entries than the manifest counted for
//! its segment, is passed over when the member is opened. When a record
//! read through an index does not match the entry that found it, the
//! segment is scanned: if the scan is clean, the index was stale, the
//! segment answers from the scan from then on, and the read is done again.
//! Either way a notice names the index file; a write open also writes the
//! index again from the scan, a read open changes nothing, and `repair` (or
//! the next write that meets it) rebuilds it. A scan that finds damage
//! leaves the original error to be reported: then it is the segment that is
//! damaged. The segment itself is never rewritten.
//!
//! Every entry a command reads is checked against its record, so a stale
//! index cannot make a command serve another record. An index that is wrong
//! only in entries no command reads (it agrees on the count and on every
//! record it is asked for) is found by `verify` and fixed by `repair`, which
//! compare every entry.

use std::cell::{Cell, RefCell};

use crate::engine::format::IndexEntry;
use crate::engine::index::{self, Entry, Merge, SealedIndex};
use crate::engine::notice::Notice;
use crate::engine::segment::{self, Sealed};
use crate::engine::store::{DocView, Mode, Store, resolve};
use crate::error::{IoContext, Result};

/// Where a store sends its notices (see [`Store::on_notice`]).
pub type NoticeHook = Box<dyn Fn(&Notice) + Send>;

/// What this store found out about its index files while open.
#[derive(Default)]
pub(crate) struct StaleIndexes {
    /// Bumped each time an index is found stale, so that a read that failed
    /// through it knows to run again.
    epoch: Cell<u64>,
    /// Where notices go once the caller has taken the open's notices; until
    /// then they queue.
    hook: Option<NoticeHook>,
    queued: RefCell<Vec<Notice>>,
    /// Members already scanned after a failed read and found at fault
    /// themselves: a later failure there is not scanned for again.
    damaged: RefCell<Vec<u64>>,
}

impl StaleIndexes {
    fn notice(&self, n: Notice) {
        match &self.hook {
            Some(h) => h(&n),
            None => self.queued.borrow_mut().push(n),
        }
    }
}

/// What showed an index file to be stale.
pub(crate) use crate::engine::notice::StaleIndex as Why;

/// The notice for member `s`'s stale index, found by a `mode` open.
fn notice(s: &Sealed, mode: Mode, why: Why) -> Notice {
    Notice::StaleIndex {
        path: s.idx_path(),
        why,
        rebuilt: mode == Mode::Write,
    }
}

impl Store {
    /// Sends notices found from now on to `f` as they happen, instead of
    /// queueing them for [`Store::take_notices`]. For a caller that reports
    /// as it goes: an index found stale part-way through a command says so.
    pub fn on_notice(&mut self, f: NoticeHook) {
        for n in self.stale.queued.get_mut().drain(..) {
            f(&n);
        }
        self.stale.hook = Some(f);
    }

    /// Notices queued since the open (see [`Store::on_notice`]).
    pub(crate) fn take_stale_notices(&mut self) -> Vec<Notice> {
        std::mem::take(self.stale.queued.get_mut())
    }

    /// Runs `f`, and once more each time it fails after an index turned out
    /// stale (the failed read went through it; the segment now answers from
    /// a scan). Bounded: each round takes one index out of use.
    pub(crate) fn retry_stale<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        loop {
            let epoch = self.stale.epoch.get();
            match f() {
                Err(_) if self.stale.epoch.get() != epoch => {}
                r => return r,
            }
        }
    }

    /// The mutable form of [`Store::retry_stale`].
    pub(crate) fn retry_stale_mut<T>(
        &mut self,
        mut f: impl FnMut(&mut Store) -> Result<T>,
    ) -> Result<T> {
        loop {
            let epoch = self.stale.epoch.get();
            match f(self) {
                Err(_) if self.stale.epoch.get() != epoch => {}
                r => return r,
            }
        }
    }

    /// Member `s`'s index, with the notice of an index file passed over at
    /// open for its entry count.
    pub(crate) fn index_of<'a>(&self, s: &'a Sealed) -> Result<&'a SealedIndex> {
        let index = s.index()?;
        if let Some(why) = index.take_passed_over() {
            self.stale.notice(notice(s, self.mode, why));
        }
        Ok(index)
    }

    /// Calls `f` with the live view of one document's `entries` from
    /// `merge`, if it is live, and returns the bytes of the records it
    /// holds. When an index turns out stale reading it, its segment answers
    /// from a scan for this document and the rest of the pass, and `f` runs
    /// again. `f` reads before it reports, so a failed call printed nothing.
    pub(crate) fn visit<'a>(
        &'a self,
        merge: &mut Merge<'a>,
        mut entries: Vec<Entry>,
        f: &mut dyn FnMut(&Store, DocView) -> Result<()>,
    ) -> Result<Option<u64>> {
        let Some(doc) = entries.first().map(|e| e.doc) else {
            return Ok(None);
        };
        loop {
            let epoch = self.stale_epoch();
            let Some(view) = resolve(&entries) else {
                return Ok(None);
            };
            let size = u64::from(view.doc.len)
                + view
                    .nodes
                    .values()
                    .map(|(i, o)| u64::from(i.len) + o.map_or(0, |o| u64::from(o.len)))
                    .sum::<u64>();
            match f(self, view) {
                Ok(()) => return Ok(Some(size)),
                Err(_) if self.stale_epoch() != epoch => {
                    self.refresh_merge(merge, doc)?;
                    entries = self.entries_of(doc)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Points the cursors of `merge` that still read an index file taken out
    /// of use at the entries that replaced it, past document `doc`.
    pub(crate) fn refresh_merge<'a>(&'a self, merge: &mut Merge<'a>, doc: u64) -> Result<()> {
        for (cursor, seg) in &mut merge.sources {
            let Ok(i) = self.sealed.binary_search_by_key(seg, |s| s.number) else {
                continue;
            };
            let s = &self.sealed[i];
            let index = s.index()?;
            if cursor.on_disk() && !index.reads_file() {
                *cursor = index.cursor(Box::new(move || s.scan_entries()))?;
                cursor.skip_through(doc)?;
            }
        }
        Ok(())
    }

    /// The stale-index count: changes whenever an index is taken out of use.
    fn stale_epoch(&self) -> u64 {
        self.stale.epoch.get()
    }

    /// A record read through member `s`'s index file did not match `e`.
    /// Scans the segment; when the scan is clean and does not hold `e`, the
    /// index was stale: it is replaced by the scan (and rewritten in a write
    /// open), and `Ok(true)` tells the caller to read again. `Ok(false)`
    /// means the segment itself is at fault (or the index was already out of
    /// use), and the caller reports its own error.
    pub(crate) fn index_miss(&self, s: &Sealed, e: &Entry) -> Result<bool> {
        if !s.index()?.reads_file() || self.stale.damaged.borrow().contains(&s.number) {
            return Ok(false);
        }
        let scan = segment::scan(s.file()?, &s.path, true)?;
        if scan.damage.is_some() {
            self.stale.damaged.borrow_mut().push(s.number);
            return Ok(false);
        }
        let mut entries = scan.entries;
        entries.sort_unstable_by_key(index::key);
        let own = e.index_entry();
        if entries
            .binary_search_by_key(&index::key(&own), index::key)
            .is_ok_and(|i| entries[i] == own)
        {
            self.stale.damaged.borrow_mut().push(s.number);
            return Ok(false);
        }
        self.replace_index(s, entries, scan.max_seq, scan.doc_hwm, Why::Mismatch)?;
        Ok(true)
    }

    /// Takes member `s`'s index file out of use in favour of `entries` (its
    /// segment's, sorted), rewriting it in a write open, with a notice.
    pub(crate) fn replace_index(
        &self,
        s: &Sealed,
        entries: Vec<IndexEntry>,
        max_seq: u64,
        doc_hwm: u64,
        why: Why,
    ) -> Result<()> {
        if self.mode == Mode::Write {
            let bind = self.binding(s.version);
            segment::write_index(
                &self.opts, s.number, s.len, max_seq, doc_hwm, &entries, bind,
            )?;
            self.opts
                .vfs
                .sync_dir(&self.opts.dir)
                .io("fsync", &self.opts.dir)?;
        }
        s.index()?.use_entries(entries);
        self.stale.epoch.set(self.stale.epoch.get() + 1);
        self.stale.notice(notice(s, self.mode, why));
        Ok(())
    }
}
