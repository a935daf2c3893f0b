//! Model-based property tests (reliability guide T21, T22): random sequences
//! of every operation, with reopen, power loss, rotation (tiny segments) and
//! compaction in between, checked against an in-memory model after every
//! step; and compaction equivalence and idempotence on random stores.
//!
//! After every step: `dump` equals the model, `get` of every id ever handed
//! out (and one past) agrees with it, and the document id high-water mark
//! equals the model's (so the next id is the one the model expects), and
//! `find_key` of every key in the pool finds the document the model says
//! holds it, or none. A command aimed at a missing document or node, or
//! giving a document a key another live document holds, must fail and
//! change nothing.
//!
//! Case counts are modest by default; `PROPTEST_CASES` scales them. The
//! random seed is fixed unless `PROPTEST_RNG_SEED` gives one, so that the
//! test command gives the same verdict on every run of the same code; new
//! histories are explored with, for example,
//! `PROPTEST_RNG_SEED=$RANDOM PROPTEST_CASES=100000 cargo test --release --test engine model_based::`.

use std::sync::Arc;

use crate::model::{self, Model, Op};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use stratum::engine::{CompactMode, Estimate};
use stratum::sim::{CrashFs, DataMode, DirMode, Rng, crash_image};
use stratum::{DocId, DocPatch, Json, NewDoc, Options, Store};

/// An operation with its targets given as positions among the live
/// documents and nodes, resolved against the model when it runs; `None` aims
/// at something that does not exist.
#[derive(Clone, Debug)]
enum Step {
    Create {
        cat: Option<u8>,
        key: Option<u8>,
        meta: Option<u32>,
        body: Vec<u8>,
    },
    Update {
        doc: Option<usize>,
        cat: Option<u8>,
        /// Set (`Some(Some)`) or clear (`Some(None)`) the key.
        key: Option<Option<u8>>,
        /// Set or clear the meta.
        meta: Option<Option<u32>>,
        body: Option<Vec<u8>>,
    },
    AddInput {
        doc: Option<usize>,
        value: u32,
        output: bool,
    },
    /// `value` of the form 5k+4 sets the JSON value null: a real null.
    SetOutput {
        doc: usize,
        node: Option<usize>,
        value: u32,
    },
    ClearOutput {
        doc: usize,
        node: Option<usize>,
    },
    NodeMeta {
        doc: usize,
        node: Option<usize>,
        meta: Option<u32>,
    },
    DeleteInput {
        doc: usize,
        node: Option<usize>,
    },
    DeleteDoc {
        doc: Option<usize>,
    },
    Batch(Vec<Step>),
    Reopen,
    PowerLoss,
    Compact,
    /// A selective compaction (`compact` without `--full`).
    CompactSelective,
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(b'a'..=b'z', 0..40),
        1 => proptest::collection::vec(any::<u8>(), 0..700),
    ]
}

fn pick() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![9 => any::<usize>().prop_map(Some), 1 => Just(None)]
}

fn write_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..KEYS.len() as u8),
            proptest::option::of(any::<u32>()),
            body(),
        )
            .prop_map(|(cat, key, meta, body)| Step::Create { cat, key, meta, body }),
        2 => (
            pick(),
            proptest::option::of(0u8..3),
            proptest::option::of(proptest::option::of(0u8..KEYS.len() as u8)),
            proptest::option::of(proptest::option::of(any::<u32>())),
            proptest::option::of(body()),
        )
            .prop_map(|(doc, cat, key, meta, body)| Step::Update { doc, cat, key, meta, body }),
        5 => (pick(), any::<u32>(), any::<bool>())
            .prop_map(|(doc, value, output)| Step::AddInput { doc, value, output }),
        2 => (any::<usize>(), pick(), any::<u32>())
            .prop_map(|(doc, node, value)| Step::SetOutput { doc, node, value }),
        1 => (any::<usize>(), pick()).prop_map(|(doc, node)| Step::ClearOutput { doc, node }),
        1 => (any::<usize>(), pick(), proptest::option::of(any::<u32>()))
            .prop_map(|(doc, node, meta)| Step::NodeMeta { doc, node, meta }),
        1 => (any::<usize>(), pick()).prop_map(|(doc, node)| Step::DeleteInput { doc, node }),
        1 => pick().prop_map(|doc| Step::DeleteDoc { doc }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => write_step(),
        2 => proptest::collection::vec(write_step(), 1..5).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
        1 => Just(Step::PowerLoss),
        1 => Just(Step::Compact),
        2 => Just(Step::CompactSelective),
    ]
}

const CATEGORIES: [&str; 3] = ["easy", "hard", "ünïcode"];

/// The keys documents are given: few, so that they collide and are freed
/// and taken again.
const KEYS: [&str; 4] = ["two-sum", "HumanEval/0", "ünï-key", "0042"];

/// A meta object whose text needs keeping exactly.
fn meta(v: u32) -> Json {
    Json::parse(&format!(
        "{{\"z\": {v}, \"tags\": [\"t{}\"], \"x\": 1.0}}",
        v % 3
    ))
    .expect("valid JSON")
}

/// How a resolved step must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    /// It aims at a missing document or node: not found.
    Missing,
    /// It gives a document a key another live document holds: invalid input.
    KeyTaken,
}

fn json(v: u32) -> Json {
    let text = match v % 4 {
        0 => format!("{v}"),
        1 => format!("[{v}, \"s\", 1.0]"),
        2 => format!("{{\"k\": {v}, \"n\": null}}"),
        _ => format!("\"{}\"", "x".repeat((v % 300) as usize)),
    };
    Json::parse(&text).expect("valid JSON")
}

/// An expected output: as [`json`], but every fifth value is the JSON value
/// null, a real null output.
fn output_json(v: u32) -> Json {
    if v % 5 == 4 {
        Json::parse("null").expect("valid JSON")
    } else {
        json(v)
    }
}

/// Resolves a step against the model: the operation to run, and how it
/// must end.
fn resolve(step: &Step, model: &Model) -> (Op, Expect) {
    let (op, missing, taken) = resolve_parts(step, model);
    let expect = if missing {
        Expect::Missing
    } else if taken {
        Expect::KeyTaken
    } else {
        Expect::Ok
    };
    (op, expect)
}

/// [`resolve`]'s operation, whether it aims at something missing, and
/// whether its key is taken by another live document.
fn resolve_parts(step: &Step, model: &Model) -> (Op, bool, bool) {
    let taken = |key: Option<&str>, own: Option<u64>| {
        key.and_then(|k| model.key_holder(k))
            .is_some_and(|h| Some(h) != own)
    };
    let ids = model.live_ids();
    let missing = model.doc_hwm + 1;
    let doc = |p: Option<usize>| match p {
        Some(i) if !ids.is_empty() => (ids[i % ids.len()], false),
        _ => (missing, true),
    };
    let node = |d: u64, p: Option<usize>| {
        let nodes: Vec<u64> = model
            .docs
            .get(&d)
            .map(|m| m.nodes.keys().copied().collect())
            .unwrap_or_default();
        match p {
            Some(i) if !nodes.is_empty() => (nodes[i % nodes.len()], false),
            _ => (model.node_hwm(d) + 1, true),
        }
    };
    match step {
        Step::Create {
            cat,
            key,
            meta: m,
            body,
        } => {
            let key = key.map(|k| KEYS[k as usize].to_owned());
            let is_taken = taken(key.as_deref(), None);
            (
                Op::Create(NewDoc {
                    key,
                    category: cat.map(|c| CATEGORIES[c as usize].to_owned()),
                    version: None,
                    meta: m.map(meta),
                    body: body.clone(),
                }),
                false,
                is_taken,
            )
        }
        Step::Update {
            doc: p,
            cat,
            key,
            meta: m,
            body,
        } => {
            let (d, bad) = doc(*p);
            let key = key.map(|k| k.map(|k| KEYS[k as usize].to_owned()));
            let is_taken = taken(key.clone().flatten().as_deref(), Some(d));
            let patch = DocPatch {
                key,
                category: cat.map(|c| Some(CATEGORIES[c as usize].to_owned())),
                version: Some(Some("v".into())),
                meta: m.map(|m| m.map(meta)),
                body: body.clone(),
            };
            (Op::Update(d, patch), bad, is_taken)
        }
        Step::AddInput {
            doc: p,
            value,
            output,
        } => {
            let (d, bad) = doc(*p);
            (
                Op::AddInput(d, json(*value), output.then(|| output_json(value / 2))),
                bad,
                false,
            )
        }
        Step::SetOutput {
            doc: p,
            node: n,
            value,
        } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (
                Op::SetOutput(d, n, output_json(*value)),
                bad_doc || bad_node,
                false,
            )
        }
        Step::ClearOutput { doc: p, node: n } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (Op::ClearOutput(d, n), bad_doc || bad_node, false)
        }
        Step::NodeMeta {
            doc: p,
            node: n,
            meta: m,
        } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (
                Op::SetNodeMeta(d, n, m.map(meta)),
                bad_doc || bad_node,
                false,
            )
        }
        Step::DeleteInput { doc: p, node: n } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (Op::DeleteInput(d, n), bad_doc || bad_node, false)
        }
        Step::DeleteDoc { doc: p } => {
            let (d, bad) = doc(*p);
            (Op::DeleteDoc(d), bad, false)
        }
        Step::Batch(_)
        | Step::Reopen
        | Step::PowerLoss
        | Step::Compact
        | Step::CompactSelective => {
            unreachable!("not a single operation")
        }
    }
}

/// Where a test store lives: the simulated machine, or a real directory.
enum Backend {
    Mem(CrashFs),
    Disk(tempfile::TempDir),
}

impl Backend {
    fn options(&self, segment_size: u64) -> Options {
        match self {
            Backend::Mem(fs) => Options {
                vfs: Arc::new(fs.clone()),
                segment_size,
                ..Options::new("/store")
            },
            Backend::Disk(dir) => Options {
                segment_size,
                ..Options::new(dir.path().join("store"))
            },
        }
    }
}

/// Compares the store with the model.
fn check(store: &Store, model: &Model, after: &str) -> Result<(), TestCaseError> {
    let docs =
        model::dump(store).map_err(|e| TestCaseError::fail(format!("dump after {after}: {e}")))?;
    let diff = model.diff(&docs);
    prop_assert!(diff.is_empty(), "after {}: {:?}", after, diff);
    model::check_gets(store, model)
        .map_err(|e| TestCaseError::fail(format!("after {after}: {e}")))?;
    let stats = store
        .stats()
        .map_err(|e| TestCaseError::fail(format!("stats: {e}")))?;
    prop_assert_eq!(
        stats.doc_id_high_water,
        model.doc_hwm,
        "high-water mark after {}",
        after
    );
    prop_assert_eq!(
        stats.documents,
        model.docs.len() as u64,
        "documents after {}",
        after
    );
    // The manifest's counters plus the active segment's share give exactly
    // what a merge of every index gives.
    let merged = store
        .stats_by_merge()
        .map_err(|e| TestCaseError::fail(format!("stats by merge: {e}")))?;
    let inputs: usize = model.docs.values().map(|d| d.nodes.len()).sum();
    let outputs = model
        .docs
        .values()
        .flat_map(|d| d.nodes.values())
        .filter(|n| n.1.is_some())
        .count();
    prop_assert_eq!(merged.inputs, inputs as u64, "inputs after {}", after);
    prop_assert_eq!(merged.outputs, outputs as u64, "outputs after {}", after);
    if let Some(counted) = store
        .stats_counted()
        .map_err(|e| TestCaseError::fail(format!("counted stats: {e}")))?
    {
        prop_assert_eq!(
            &counted,
            &merged,
            "counters against a merge after {}",
            after
        );
    }
    for key in KEYS {
        let found = store
            .find_key(key)
            .map_err(|e| TestCaseError::fail(format!("find_key after {after}: {e}")))?;
        prop_assert_eq!(
            found.map(|d| d.0),
            model.key_holder(key),
            "find_key({:?}) after {}",
            key,
            after
        );
    }
    Ok(())
}

/// Runs one op that is expected to work, or (when `must_fail`) to fail with
/// a not-found error and change nothing.
fn run_op(
    store: &mut Store,
    model: &mut Model,
    op: &Op,
    expect: Expect,
) -> Result<(), TestCaseError> {
    if expect != Expect::Ok {
        let r = model::call(store, op);
        let as_expected = match expect {
            Expect::Missing => matches!(
                r,
                Err(stratum::Error::DocNotFound(_) | stratum::Error::NodeNotFound { .. })
            ),
            _ => matches!(&r, Err(stratum::Error::InvalidInput(m)) if m.contains("already used")),
        };
        prop_assert!(as_expected, "{:?} ({:?}) gave {:?}", op, expect, r);
        return Ok(());
    }
    model::exec(store, model, op).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))
}

/// Runs `steps` on a fresh store and checks it after each.
fn run(backend: Backend, segment_size: u64, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut backend = backend;
    let open = |b: &Backend| Store::open(b.options(segment_size));
    let mut store = open(&backend).map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    let mut model = Model::default();
    for (i, step) in steps.iter().enumerate() {
        let what = format!("step {i} {step:?}");
        match step {
            Step::Reopen => {
                drop(store);
                store = open(&backend).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
            }
            Step::PowerLoss => {
                drop(store);
                if let Backend::Mem(fs) = &backend {
                    // Everything acknowledged was fsynced: forgetting all
                    // unsynced data and directory changes loses nothing.
                    let image = crash_image(
                        &fs.state(),
                        DirMode::Durable,
                        DataMode::Drop,
                        &mut Rng::new(i as u64),
                    );
                    backend = Backend::Mem(CrashFs::from_state(image));
                }
                store =
                    open(&backend).map_err(|e| TestCaseError::fail(format!("recovery: {e}")))?;
            }
            Step::Compact => {
                store
                    .compact(&mut |_| {})
                    .map_err(|e| TestCaseError::fail(format!("compact: {e}")))?;
            }
            Step::CompactSelective => {
                let plan = store
                    .compact_plan(CompactMode::Selective, Estimate::Exact)
                    .map_err(|e| TestCaseError::fail(format!("plan: {e}")))?;
                let done = store
                    .compact_with(CompactMode::Selective, &mut |_| {})
                    .map_err(|e| TestCaseError::fail(format!("selective compact: {e}")))?;
                // The dry run's figures are what the compaction then does.
                prop_assert_eq!(plan.merge.len(), done.merged, "merged after {}", what);
                prop_assert_eq!(plan.write_bytes, done.written, "written after {}", what);
                if done.merged == 0 {
                    prop_assert_eq!(done.written, 0);
                    prop_assert_eq!(done.bytes_after, done.bytes_before, "after {}", what);
                }
            }
            Step::Batch(inner) => {
                let mut scratch = model.clone();
                let mut failed = false;
                let r = store.atomic(|s| {
                    for st in inner {
                        let (op, expect) = resolve(st, &scratch);
                        if expect != Expect::Ok {
                            // A failing command inside a batch abandons it.
                            failed = true;
                            return match op {
                                Op::DeleteDoc(id) => s.delete_doc(DocId(id)),
                                _ => Err(stratum::Error::InvalidInput("abandon".into())),
                            };
                        }
                        model::exec(s, &mut scratch, &op)?;
                    }
                    Ok(())
                });
                if failed {
                    prop_assert!(r.is_err(), "a batch with a failing command was committed");
                    // After a failed batch the store must be reopened.
                    drop(store);
                    store =
                        open(&backend).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
                } else {
                    r.map_err(|e| TestCaseError::fail(format!("batch: {e}")))?;
                    model = scratch;
                }
            }
            single => {
                let (op, expect) = resolve(single, &model);
                run_op(&mut store, &mut model, &op, expect)?;
            }
        }
        check(&store, &model, &what)?;
    }
    drop(store);
    let report = stratum::engine::verify(&backend.options(segment_size), &mut |_| {})
        .map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
    prop_assert!(report.is_ok(), "verify: {:?}", report.problems);
    Ok(())
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let config = ProptestConfig::default();
    let rng_seed = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => config.rng_seed,
        None => RngSeed::Fixed(0x5717_a7d0),
    };
    ProptestConfig {
        cases,
        rng_seed,
        ..config
    }
}

fn segment_size() -> impl Strategy<Value = u64> {
    prop_oneof![Just(512u64), Just(1024), Just(4096), Just(1 << 20)]
}

proptest! {
    #![proptest_config(cases(1000))]

    /// The simulated machine: fast, and able to lose power.
    #[test]
    fn random_histories_match_the_model(
        segment_size in segment_size(),
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        run(Backend::Mem(CrashFs::new()), segment_size, &steps)?;
    }
}

proptest! {
    #![proptest_config(cases(32))]

    /// The real file system, through the real `OsFs` layer.
    #[test]
    fn random_histories_on_disk_match_the_model(
        segment_size in segment_size(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        run(Backend::Disk(tempfile::tempdir().expect("tempdir")), segment_size, &steps)?;
    }
}

/// Builds a random store, then: dump, compact, dump, compact, dump.
fn compaction_round_trip(segment_size: u64, steps: &[Step]) -> Result<(), TestCaseError> {
    let fs = CrashFs::new();
    let opts = Options {
        vfs: Arc::new(fs.clone()),
        segment_size,
        ..Options::new("/store")
    };
    let mut store = Store::open(opts.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::default();
    for step in steps {
        if let Step::Batch(_)
        | Step::Reopen
        | Step::PowerLoss
        | Step::Compact
        | Step::CompactSelective = step
        {
            continue;
        }
        let (op, expect) = resolve(step, &model);
        if expect == Expect::Ok {
            model::exec(&mut store, &mut model, &op)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    let fail = |e: stratum::Error| TestCaseError::fail(e.to_string());
    let before = model::dump(&store).map_err(fail)?;
    // Selective compactions converge: soon one finds nothing worth merging,
    // and none changes what the store holds.
    let mut rounds = 0;
    loop {
        let size = store.stats().map_err(fail)?.total_bytes;
        let done = store
            .compact_with(CompactMode::Selective, &mut |_| {})
            .map_err(fail)?;
        prop_assert_eq!(&model::dump(&store).map_err(fail)?, &before);
        if done.merged == 0 {
            prop_assert_eq!(store.stats().map_err(fail)?.total_bytes, size);
            break;
        }
        rounds += 1;
        prop_assert!(rounds <= 8, "selective compaction does not converge");
    }
    let stats0 = store.stats().map_err(fail)?;
    let first = store.compact(&mut |_| {}).map_err(fail)?;
    let once = model::dump(&store).map_err(fail)?;
    let stats1 = store.stats().map_err(fail)?;
    let second = store.compact(&mut |_| {}).map_err(fail)?;
    let twice = model::dump(&store).map_err(fail)?;
    let stats2 = store.stats().map_err(fail)?;
    prop_assert_eq!(&before, &once);
    prop_assert_eq!(&once, &twice);
    prop_assert!(model.diff(&twice).is_empty());
    model::check_gets(&store, &model).map_err(TestCaseError::fail)?;
    prop_assert!(
        stats1.live_bytes <= stats0.live_bytes,
        "{} > {}",
        stats1.live_bytes,
        stats0.live_bytes
    );
    prop_assert_eq!(
        second.bytes_after,
        first.bytes_after,
        "compacting again changed the size"
    );
    prop_assert_eq!(stats1.total_bytes, stats2.total_bytes);
    prop_assert_eq!(stats0.doc_id_high_water, model.doc_hwm);
    prop_assert_eq!(stats1.doc_id_high_water, model.doc_hwm);
    prop_assert_eq!(stats2.doc_id_high_water, model.doc_hwm);
    let next = store.create_doc(&NewDoc::default()).map_err(fail)?;
    prop_assert_eq!(next.0, model.doc_hwm + 1, "next id after compaction");
    drop(store);
    let report = stratum::engine::verify(&opts, &mut |_| {}).map_err(fail)?;
    prop_assert!(report.is_ok(), "verify: {:?}", report.problems);
    Ok(())
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn compaction_is_equivalent_and_idempotent(
        segment_size in segment_size(),
        steps in proptest::collection::vec(write_step(), 0..60),
    ) {
        compaction_round_trip(segment_size, &steps)?;
    }
}

/// The history CI's random run found: `active.seg`, numbered below a
/// compaction output, was chosen for a selective compaction along with two
/// members, but the chosen set was not sorted, so binary searches missed
/// two of the three. The tombstone in `active.seg` was then left out of the
/// figures and `stats` counted a deleted document.
#[test]
fn deleting_after_selective_compaction_keeps_the_counters_exact() {
    use Step::*;
    let steps = [
        Create {
            cat: None,
            key: Some(0),
            meta: Some(100),
            body: vec![b'a'; 17],
        },
        Create {
            cat: None,
            key: Some(1),
            meta: Some(100),
            body: vec![b'a'; 14],
        },
        Update {
            doc: Some(0),
            cat: Some(2),
            key: None,
            meta: Some(Some(1_000_000_000)),
            body: None,
        },
        AddInput {
            doc: Some(0),
            value: 63_471_442,
            output: false,
        },
        AddInput {
            doc: Some(4_258_201_694_288_343_558),
            value: 166_257,
            output: false,
        },
        AddInput {
            doc: Some(0),
            value: 0,
            output: false,
        },
        SetOutput {
            doc: 7_075_728_499_632_215_774,
            node: Some(0),
            value: 0,
        },
        AddInput {
            doc: Some(0),
            value: 0,
            output: false,
        },
        DeleteDoc {
            doc: Some(888_294_931_356_145_651),
        },
        AddInput {
            doc: Some(0),
            value: 0,
            output: false,
        },
        SetOutput {
            doc: 0,
            node: Some(0),
            value: 2_629_144_391,
        },
        CompactSelective,
        DeleteDoc { doc: Some(0) },
        CompactSelective,
    ];
    run(Backend::Mem(CrashFs::new()), 512, &steps).unwrap();
}
