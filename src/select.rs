//! Selection: which documents a listing or a dump shows, by key, key
//! prefix, category, metadata field, id range, or a node without an output,
//! so that a program gets exactly what it asks for in stratum's exact text
//! (no `jq` that may rewrite numbers).
//!
//! A [`Selection`] is a conjunction of filters; an empty one selects every
//! live document. [`Store::select`], [`Store::select_summaries`] and
//! [`Store::docs_where`] take the cheap path when the selection names few
//! documents: a key is looked up as [`Store::find_key`] does it (one
//! document at most), and a narrow id range id by id as [`Store::get`]
//! does; any other selection reads the index once, from the first id of
//! its range to its last, and of the records only each document's own and
//! the nodes of the documents selected. [`Selection::halves`] cuts such a
//! pass in two, for two handles ([`crate::ReadOnlyStore::beside`]) to read
//! side by side.

use std::ops::{Bound, RangeBounds, RangeInclusive};

use crate::engine::format::DocFields;
use crate::engine::{DocFilter, Docs, Progress, Shape};
use crate::error::{Error, Result};
use crate::json::Json;
use crate::model::{DocSummary, Document};
use crate::{DocId, Store};

/// Widest id range looked up id by id rather than by reading the whole
/// store: a lookup costs an index probe or two, a scan every record.
pub const POINT_LOOKUPS: u64 = 10_000;

/// Smallest store (bytes of segment files) whose scans [`Selection::halves`]
/// splits: below it a scan takes a few milliseconds, about what a second
/// open and a thread cost.
pub const SPLIT_BYTES: u64 = 8 << 20;

/// Which documents to select: every filter set must hold.
///
/// ```
/// use stratum::{Json, NewDoc, Options, Selection, Store};
///
/// # fn main() -> stratum::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("stratum-doc-sel-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let mut store = Store::open(Options::new(&dir))?;
/// for (key, level) in [("HumanEval/1", "1.0"), ("HumanEval/2", "1"), ("mbpp/1", "1.0")] {
///     store.create_doc(&NewDoc {
///         key: Some(key.into()),
///         meta: Some(Json::parse(&format!(r#"{{"level":{level}}}"#))?),
///         ..NewDoc::default()
///     })?;
/// }
/// // Values compare as their exact text: `1.0` is not `1`.
/// let sel = Selection::new()
///     .key_prefix("HumanEval/")
///     .meta("level", Json::parse("1.0")?);
/// let mut keys = Vec::new();
/// store.select(&sel, &mut |_| {}, &mut |d| {
///     keys.push(d.key.clone());
///     Ok(())
/// })?;
/// assert_eq!(keys, [Some("HumanEval/1".to_owned())]);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    key: Option<String>,
    key_prefix: Option<String>,
    category: Option<String>,
    meta: Vec<(String, Json)>,
    ids: Option<RangeInclusive<u64>>,
    missing_output: bool,
}

impl Selection {
    /// A selection of every live document.
    pub fn new() -> Selection {
        Selection::default()
    }

    /// Only the document whose key is `key` (a key lookup).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Selection {
        self.key = Some(key.into());
        self
    }

    /// Only documents whose key starts with `prefix`.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Selection {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// Only documents of this category.
    #[must_use]
    pub fn category(mut self, category: impl Into<String>) -> Selection {
        self.category = Some(category.into());
        self
    }

    /// Only documents whose meta has the top-level member `field` with
    /// exactly this value, compared as compact text (`1.0` is not `1`;
    /// member names compare decoded). May be given for several fields; a
    /// field no document has selects nothing.
    #[must_use]
    pub fn meta(mut self, field: impl Into<String>, value: Json) -> Selection {
        self.meta.push((field.into(), value));
        self
    }

    /// Only documents whose id is in `ids` (`3..=9`, `100..`, `..=50`).
    /// An empty range selects nothing.
    #[must_use]
    pub fn ids(mut self, ids: impl RangeBounds<u64>) -> Selection {
        let lo = match ids.start_bound() {
            Bound::Included(&n) => Some(n),
            Bound::Excluded(&n) => n.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let hi = match ids.end_bound() {
            Bound::Included(&n) => Some(n),
            Bound::Excluded(&n) => n.checked_sub(1),
            Bound::Unbounded => Some(u64::MAX),
        };
        // Ids start at 1: a range of nothing but 0 selects nothing.
        self.ids = Some(match (lo, hi) {
            (Some(lo), Some(hi)) if hi >= 1 => lo.max(1)..=hi,
            _ => RangeInclusive::new(1, 0),
        });
        self
    }

    /// Only documents with at least one input node that has no expected
    /// output (a node whose output is the JSON value `null` has one).
    #[must_use]
    pub fn missing_output(mut self) -> Selection {
        self.missing_output = true;
        self
    }

    /// True when no filter is set: every live document is selected.
    pub fn is_all(&self) -> bool {
        *self == Selection::default()
    }

    /// Whether a document is selected.
    pub fn matches(&self, d: &Document) -> bool {
        self.fields(
            d.id,
            d.key.as_deref(),
            d.category.as_deref(),
            d.meta.as_ref().map(Json::as_str),
        ) && (!self.missing_output || d.inputs.iter().any(|n| n.output.is_none()))
    }

    /// Whether the document a listing row summarizes is selected.
    pub fn matches_summary(&self, s: &DocSummary) -> bool {
        self.fields(
            s.id,
            s.key.as_deref(),
            s.category.as_deref(),
            s.meta.as_ref().map(Json::as_str),
        ) && (!self.missing_output || s.outputs < s.inputs)
    }

    /// What can be told from the index alone (id and node counts): a
    /// document this refuses is refused whatever its record holds.
    fn shape(&self, sh: &Shape) -> bool {
        self.ids.as_ref().is_none_or(|r| r.contains(&sh.id.0))
            && (!self.missing_output || sh.outputs < sh.inputs)
    }

    /// This selection as a filter for a walk of the store, which then reads
    /// inputs and outputs only for the documents selected.
    fn filter(&self) -> DocFilter<'static> {
        let (shape, keep) = (self.clone(), self.clone());
        DocFilter {
            shape: Box::new(move |sh| shape.shape(sh)),
            keep: Box::new(move |id, f| keep.matches_fields(id, f)),
        }
    }

    /// What the fields of a document's own record say of it.
    fn matches_fields(&self, id: DocId, f: &DocFields<'_>) -> bool {
        self.fields(id, f.key, f.category, f.meta)
    }

    fn fields(
        &self,
        id: DocId,
        key: Option<&str>,
        category: Option<&str>,
        meta: Option<&str>,
    ) -> bool {
        self.ids.as_ref().is_none_or(|r| r.contains(&id.0))
            && self.key.as_deref().is_none_or(|k| key == Some(k))
            && self
                .key_prefix
                .as_deref()
                .is_none_or(|p| key.is_some_and(|k| k.starts_with(p)))
            && self.category.as_deref().is_none_or(|c| category == Some(c))
            && self.meta.iter().all(|(field, value)| {
                meta.and_then(|m| crate::patch::member_text(m, field)) == Some(value.as_str())
            })
    }

    /// This selection cut in two at an id, lower ids first, when reading it
    /// means a scan of a store of at least [`SPLIT_BYTES`]: the halves can
    /// then be read side by side (by two handles, on two threads) and their
    /// documents put one after the other, in id order. `None` when the
    /// selection is looked up (a key, a narrow id range) or the store is
    /// small. The cut halves the ids from the lowest selected to the
    /// highest ever handed out.
    ///
    /// # Errors
    /// As [`Store::find_key`], for a selection by key.
    pub fn halves(&self, store: &Store) -> Result<Option<(Selection, Selection)>> {
        // A key is always looked up: not worth finding here only for the
        // read to find it again.
        if self.key.is_some()
            || !matches!(self.plan(store)?, Plan::Scan)
            || store.reads().bytes() < SPLIT_BYTES
        {
            return Ok(None);
        }
        let span = self.id_span();
        let (lo, hi) = (*span.start(), (*span.end()).min(store.doc_high_water().0));
        if hi <= lo {
            return Ok(None);
        }
        let mid = lo + (hi - lo) / 2;
        let (mut low, mut high) = (self.clone(), self.clone());
        low.ids = Some(lo..=mid);
        high.ids = Some(mid + 1..=*span.end());
        Ok(Some((low, high)))
    }

    /// The ids a scan for this selection walks: its range, or all.
    fn id_span(&self) -> RangeInclusive<u64> {
        self.ids.clone().unwrap_or(1..=u64::MAX)
    }

    /// The ids of a narrow id range (ids above `high_water` were never
    /// handed out), to look up one by one; `None` when there is no range or
    /// it is wide enough that reading the store is cheaper.
    fn narrow_ids(&self, high_water: DocId) -> Option<RangeInclusive<u64>> {
        let r = self.ids.as_ref()?;
        let (start, end) = (*r.start(), (*r.end()).min(high_water.0));
        (end < start || end - start < POINT_LOOKUPS).then_some(start..=end)
    }

    /// How to read this selection: the ids to look up one by one (a key's
    /// holder, none when no live document holds it, or a narrow range), or
    /// the whole store.
    fn plan(&self, store: &Store) -> Result<Plan> {
        if let Some(k) = &self.key {
            return Ok(Plan::Lookup(match store.find_key(k)? {
                Some(id) => id.0..=id.0,
                None => RangeInclusive::new(1, 0),
            }));
        }
        Ok(match self.narrow_ids(store.doc_high_water()) {
            Some(ids) => Plan::Lookup(ids),
            None => Plan::Scan,
        })
    }
}

/// See [`Selection::plan`].
enum Plan {
    Lookup(RangeInclusive<u64>),
    Scan,
}

/// Document `id`, looked up as [`Store::get`] does it; `None` when it is
/// not live.
fn looked_up(store: &Store, id: u64) -> Result<Option<Document>> {
    match store.get(DocId(id)) {
        Ok(doc) => Ok(Some(doc)),
        Err(Error::DocNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Calls `f` with every live document `sel` selects, in id order. A key
    /// or a narrow id range is looked up, costing what [`Store::get`] costs
    /// per id; any other selection reads the store as [`Store::dump`] does,
    /// reporting its `progress`.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`], or what `f` returns.
    pub fn select(
        &self,
        sel: &Selection,
        progress: &mut dyn FnMut(Progress),
        f: &mut dyn FnMut(&Document) -> Result<()>,
    ) -> Result<()> {
        let mut wanted = |d: &Document| if sel.matches(d) { f(d) } else { Ok(()) };
        match sel.plan(self)? {
            Plan::Lookup(ids) => {
                for id in ids {
                    if let Some(d) = looked_up(self, id)? {
                        wanted(&d)?;
                    }
                }
                Ok(())
            }
            Plan::Scan => self.dump_where(sel.id_span(), progress, &sel.filter(), &mut |d| f(d)),
        }
    }

    /// As [`Store::select`], with a listing row for each document, as
    /// [`Store::list`] gives it (which reads no inputs or outputs when the
    /// store is read whole).
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Io`], or what `f` returns.
    pub fn select_summaries(
        &self,
        sel: &Selection,
        f: &mut dyn FnMut(DocSummary) -> Result<()>,
    ) -> Result<()> {
        match sel.plan(self)? {
            Plan::Lookup(ids) => {
                for id in ids {
                    if let Some(d) = looked_up(self, id)?.filter(|d| sel.matches(d)) {
                        f(summary_of(&d))?;
                    }
                }
                Ok(())
            }
            Plan::Scan => self.list_where(
                sel.id_span(),
                &|sh| sel.shape(sh),
                &|id, fields| sel.matches_fields(id, fields),
                f,
            ),
        }
    }

    /// The live documents `sel` selects, in id order, read one at a time
    /// by the same paths as [`Store::select`]: [`Store::docs`] with a
    /// filter. The iterator ends after the first error it yields.
    ///
    /// ```
    /// # use stratum::{NewDoc, Options, Selection, Store};
    /// # fn main() -> stratum::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("stratum-doc-where-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let mut store = Store::open(Options::new(&dir))?;
    /// for c in ["easy", "hard", "easy"] {
    ///     store.create_doc(&NewDoc { category: Some(c.into()), ..NewDoc::default() })?;
    /// }
    /// let easy = store
    ///     .docs_where(&Selection::new().category("easy"))?
    ///     .map(|d| d.map(|d| d.id.0))
    ///     .collect::<stratum::Result<Vec<_>>>()?;
    /// assert_eq!(easy, [1, 3]);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Store::docs`], and [`Store::find_key`] for a key.
    pub fn docs_where(&self, sel: &Selection) -> Result<DocsWhere<'_>> {
        let reading = match sel.plan(self)? {
            Plan::Lookup(ids) => Reading::Lookup(ids),
            Plan::Scan => Reading::Scan(self.docs_filtered(sel.id_span(), Some(sel.filter()))?),
        };
        Ok(DocsWhere {
            store: self,
            sel: sel.clone(),
            reading,
        })
    }
}

/// The documents a [`Selection`] selects: see [`Store::docs_where`].
pub struct DocsWhere<'s> {
    store: &'s Store,
    sel: Selection,
    reading: Reading<'s>,
}

enum Reading<'s> {
    Lookup(RangeInclusive<u64>),
    Scan(Docs<'s>),
}

impl Iterator for DocsWhere<'_> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        loop {
            let doc = match &mut self.reading {
                Reading::Lookup(ids) => match looked_up(self.store, ids.next()?) {
                    Ok(Some(d)) => d,
                    Ok(None) => continue,
                    Err(e) => {
                        *ids = RangeInclusive::new(1, 0);
                        return Some(Err(e));
                    }
                },
                Reading::Scan(docs) => match docs.next()? {
                    Ok(d) => d,
                    Err(e) => return Some(Err(e)),
                },
            };
            if self.sel.matches(&doc) {
                return Some(Ok(doc));
            }
        }
    }
}

/// The listing row of a document read whole.
fn summary_of(d: &Document) -> DocSummary {
    DocSummary {
        id: d.id,
        key: d.key.clone(),
        category: d.category.clone(),
        version: d.version.clone(),
        meta: d.meta.clone(),
        inputs: d.inputs.len() as u64,
        outputs: d.inputs.iter().filter(|n| n.output.is_some()).count() as u64,
        body_len: d.body.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Node, NodeId};

    fn j(s: &str) -> Json {
        Json::parse(s).unwrap()
    }

    fn doc(id: u64, key: Option<&str>, meta: Option<&str>, outputs: &[Option<&str>]) -> Document {
        Document {
            id: DocId(id),
            key: key.map(str::to_owned),
            category: Some("easy".into()),
            version: None,
            meta: meta.map(j),
            body: Vec::new(),
            inputs: outputs
                .iter()
                .enumerate()
                .map(|(i, o)| Node {
                    id: NodeId(i as u64 + 1),
                    input: j("1"),
                    meta: None,
                    output: o.map(j),
                })
                .collect(),
        }
    }

    #[test]
    fn meta_filters_compare_exact_text_of_top_level_fields() {
        let d = doc(1, None, Some(r#"{"a":{"level":1.0},"level":1.0}"#), &[]);
        assert!(Selection::new().meta("level", j("1.0")).matches(&d));
        assert!(!Selection::new().meta("level", j("1")).matches(&d));
        assert!(!Selection::new().meta("a.level", j("1.0")).matches(&d));
        assert!(
            !Selection::new()
                .meta("level", j("1.0"))
                .matches(&doc(1, None, None, &[]))
        );
        let tags = doc(1, None, Some(r#"{"tags":["a","b"],"n":2}"#), &[]);
        let both = Selection::new().meta("tags", j(r#"[ "a", "b" ]"#));
        assert!(both.clone().meta("n", j("2")).matches(&tags));
        assert!(!both.meta("n", j("3")).matches(&tags));
    }

    #[test]
    fn every_filter_must_hold_and_an_empty_selection_takes_all() {
        let d = doc(5, Some("HumanEval/5"), None, &[Some("1"), Some("null")]);
        assert!(Selection::new().is_all() && Selection::new().matches(&d));
        assert!(!Selection::new().category("easy").is_all());
        assert!(
            Selection::new()
                .key("HumanEval/5")
                .category("easy")
                .matches(&d)
        );
        assert!(
            !Selection::new()
                .key("HumanEval/5")
                .category("hard")
                .matches(&d)
        );
        assert!(Selection::new().key_prefix("Human").matches(&d));
        assert!(!Selection::new().key_prefix("human").matches(&d));
        assert!(
            !Selection::new()
                .key_prefix("")
                .matches(&doc(5, None, None, &[]))
        );
        // A real null output is an output.
        assert!(!Selection::new().missing_output().matches(&d));
        assert!(
            Selection::new()
                .missing_output()
                .matches(&doc(5, None, None, &[Some("1"), None]))
        );
    }

    #[test]
    fn id_ranges_take_every_form_of_bounds() {
        let at = |id| doc(id, None, None, &[]);
        let sel = Selection::new().ids(3..=9);
        assert!(sel.matches(&at(3)) && sel.matches(&at(9)) && !sel.matches(&at(10)));
        let sel = Selection::new().ids(3..9);
        assert!(sel.matches(&at(8)) && !sel.matches(&at(9)));
        assert!(Selection::new().ids(100..).matches(&at(u64::MAX)));
        assert!(Selection::new().ids(..=2).matches(&at(1)));
        assert!(!Selection::new().ids(5..5).matches(&at(5)));
        assert!(!Selection::new().ids(0..=0).matches(&at(1)));
        assert_eq!(Selection::new().ids(..).ids, Some(1..=u64::MAX));
        assert_eq!(
            Selection::new().ids(0..1).ids,
            Some(RangeInclusive::new(1, 0))
        );
    }

    #[test]
    fn only_a_narrow_range_below_the_high_water_mark_is_looked_up() {
        let hw = DocId(50_000);
        assert_eq!(Selection::new().narrow_ids(hw), None);
        assert_eq!(Selection::new().ids(10..=20).narrow_ids(hw), Some(10..=20));
        assert_eq!(
            Selection::new().ids(49_990..).narrow_ids(hw),
            Some(49_990..=50_000)
        );
        assert_eq!(
            Selection::new().ids(1..=POINT_LOOKUPS).narrow_ids(hw),
            Some(1..=POINT_LOOKUPS)
        );
        assert_eq!(
            Selection::new().ids(1..=POINT_LOOKUPS + 1).narrow_ids(hw),
            None
        );
        // Past the mark: nothing to look up, and no scan.
        let past = Selection::new().ids(60_000..).narrow_ids(hw);
        assert!(past.is_some_and(|r| r.is_empty()));
    }
}
