//! Model-based property tests (reliability guide T21, T22): random sequences
//! of every operation, with reopen, power loss, rotation (tiny segments) and
//! compaction in between, checked against an in-memory model after every
//! step; and compaction equivalence and idempotence on random stores.
//!
//! After every step: `dump` equals the model, `get` of every id ever handed
//! out (and one past) agrees with it, and the document id high-water mark
//! equals the model's (so the next id is the one the model expects). A
//! command aimed at a missing document or node must fail and change
//! nothing.
//!
//! Case counts are modest by default; `PROPTEST_CASES` scales them.

#[allow(dead_code)]
#[path = "crashfs/memfs.rs"]
mod memfs;
#[allow(dead_code)]
#[path = "crashfs/oracle.rs"]
mod oracle;

use std::sync::Arc;

use memfs::{CrashFs, DataMode, DirMode, Rng, crash_image};
use oracle::{Model, Op};
use proptest::prelude::*;
use stratum::engine::CompactMode;
use stratum::{DocId, DocPatch, Json, Mode, NewDoc, NodeId, Options, Store};

/// An operation with its targets given as positions among the live
/// documents and nodes, resolved against the model when it runs; `None` aims
/// at something that does not exist.
#[derive(Clone, Debug)]
enum Step {
    Create {
        cat: Option<u8>,
        body: Vec<u8>,
    },
    Update {
        doc: Option<usize>,
        cat: Option<u8>,
        body: Option<Vec<u8>>,
    },
    AddInput {
        doc: Option<usize>,
        value: u32,
        output: bool,
    },
    SetOutput {
        doc: usize,
        node: Option<usize>,
        value: u32,
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
        4 => (proptest::option::of(0u8..3), body()).prop_map(|(cat, body)| Step::Create { cat, body }),
        2 => (pick(), proptest::option::of(0u8..3), proptest::option::of(body()))
            .prop_map(|(doc, cat, body)| Step::Update { doc, cat, body }),
        5 => (pick(), any::<u32>(), any::<bool>())
            .prop_map(|(doc, value, output)| Step::AddInput { doc, value, output }),
        2 => (any::<usize>(), pick(), any::<u32>())
            .prop_map(|(doc, node, value)| Step::SetOutput { doc, node, value }),
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

fn json(v: u32) -> Json {
    let text = match v % 4 {
        0 => format!("{v}"),
        1 => format!("[{v}, \"s\", 1.0]"),
        2 => format!("{{\"k\": {v}, \"n\": null}}"),
        _ => format!("\"{}\"", "x".repeat((v % 300) as usize)),
    };
    Json::parse(&text).expect("valid JSON")
}

/// Resolves a step against the model: the operation to run, and whether it
/// must fail (it aims at a missing document or node).
fn resolve(step: &Step, model: &Model) -> (Op, bool) {
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
            _ => (model.docs.get(&d).map_or(1, |m| m.node_hwm + 1), true),
        }
    };
    match step {
        Step::Create { cat, body } => (
            Op::Create(NewDoc {
                category: cat.map(|c| CATEGORIES[c as usize].to_owned()),
                version: None,
                body: body.clone(),
                ..NewDoc::default()
            }),
            false,
        ),
        Step::Update { doc: p, cat, body } => {
            let (d, bad) = doc(*p);
            let patch = DocPatch {
                category: cat.map(|c| Some(CATEGORIES[c as usize].to_owned())),
                version: Some(Some("v".into())),
                body: body.clone(),
                ..DocPatch::default()
            };
            (Op::Update(d, patch), bad)
        }
        Step::AddInput {
            doc: p,
            value,
            output,
        } => {
            let (d, bad) = doc(*p);
            (
                Op::AddInput(d, json(*value), output.then(|| json(value / 2))),
                bad,
            )
        }
        Step::SetOutput {
            doc: p,
            node: n,
            value,
        } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (Op::SetOutput(d, n, json(*value)), bad_doc || bad_node)
        }
        Step::DeleteInput { doc: p, node: n } => {
            let (d, bad_doc) = doc(Some(*p));
            let (n, bad_node) = node(d, *n);
            (Op::DeleteInput(d, n), bad_doc || bad_node)
        }
        Step::DeleteDoc { doc: p } => {
            let (d, bad) = doc(*p);
            (Op::DeleteDoc(d), bad)
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
        oracle::dump(store).map_err(|e| TestCaseError::fail(format!("dump after {after}: {e}")))?;
    let diff = model.diff(&docs);
    prop_assert!(diff.is_empty(), "after {}: {:?}", after, diff);
    oracle::check_gets(store, model)
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
    prop_assert_eq!(stats.documents, model.docs.len() as u64);
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
    Ok(())
}

/// Runs one op that is expected to work, or (when `must_fail`) to fail with
/// a not-found error and change nothing.
fn run_op(
    store: &mut Store,
    model: &mut Model,
    op: &Op,
    must_fail: bool,
) -> Result<(), TestCaseError> {
    if must_fail {
        let r = match op {
            Op::Create(d) => store.create_doc(d).map(|_| ()),
            Op::Update(id, p) => store.update_doc(DocId(*id), p),
            Op::AddInput(id, i, o) => store.add_input(DocId(*id), i, o.as_ref()).map(|_| ()),
            Op::SetOutput(id, n, o) => store.set_output(DocId(*id), NodeId(*n), o),
            Op::DeleteInput(id, n) => store.delete_input(DocId(*id), NodeId(*n)),
            Op::DeleteDoc(id) => store.delete_doc(DocId(*id)),
        };
        prop_assert!(
            matches!(
                r,
                Err(stratum::Error::DocNotFound(_) | stratum::Error::NodeNotFound { .. })
            ),
            "{:?} on something missing gave {:?}",
            op,
            r
        );
        return Ok(());
    }
    oracle::exec(store, model, op).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))
}

/// Runs `steps` on a fresh store and checks it after each.
fn run(backend: Backend, segment_size: u64, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut backend = backend;
    let open = |b: &Backend| Store::open(b.options(segment_size), Mode::Write);
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
                    .compact_plan(CompactMode::Selective, true)
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
                        let (op, must_fail) = resolve(st, &scratch);
                        if must_fail {
                            // A failing command inside a batch abandons it.
                            failed = true;
                            return match op {
                                Op::DeleteDoc(id) => s.delete_doc(DocId(id)),
                                _ => Err(stratum::Error::InvalidInput("abandon".into())),
                            };
                        }
                        oracle::exec(s, &mut scratch, &op)?;
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
                let (op, must_fail) = resolve(single, &model);
                run_op(&mut store, &mut model, &op, must_fail)?;
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
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
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
    let mut store =
        Store::open(opts.clone(), Mode::Write).map_err(|e| TestCaseError::fail(e.to_string()))?;
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
        let (op, must_fail) = resolve(step, &model);
        if !must_fail {
            oracle::exec(&mut store, &mut model, &op)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    let fail = |e: stratum::Error| TestCaseError::fail(e.to_string());
    let before = oracle::dump(&store).map_err(fail)?;
    // Selective compactions converge: soon one finds nothing worth merging,
    // and none changes what the store holds.
    let mut rounds = 0;
    loop {
        let size = store.stats().map_err(fail)?.total_bytes;
        let done = store
            .compact_with(CompactMode::Selective, &mut |_| {})
            .map_err(fail)?;
        prop_assert_eq!(&oracle::dump(&store).map_err(fail)?, &before);
        if done.merged == 0 {
            prop_assert_eq!(store.stats().map_err(fail)?.total_bytes, size);
            break;
        }
        rounds += 1;
        prop_assert!(rounds <= 8, "selective compaction does not converge");
    }
    let stats0 = store.stats().map_err(fail)?;
    let first = store.compact(&mut |_| {}).map_err(fail)?;
    let once = oracle::dump(&store).map_err(fail)?;
    let stats1 = store.stats().map_err(fail)?;
    let second = store.compact(&mut |_| {}).map_err(fail)?;
    let twice = oracle::dump(&store).map_err(fail)?;
    let stats2 = store.stats().map_err(fail)?;
    prop_assert_eq!(&before, &once);
    prop_assert_eq!(&once, &twice);
    prop_assert!(model.diff(&twice).is_empty());
    oracle::check_gets(&store, &model).map_err(TestCaseError::fail)?;
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
