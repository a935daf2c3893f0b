//! Item 2: the random-kill soak (sled-style). Each round, several writer
//! threads run a mix of every mutating command as separate `stratum`
//! processes against one store (`--segment-size 4096`, so segments seal all
//! the time), while a compactor runs `compact`; about a third of all
//! processes are SIGKILLed at a random moment. After the round the store
//! must verify, and each writer's documents (writers touch only their own)
//! must equal its model of acknowledged commands, with its one killed
//! command absent or fully applied.
//!
//! A reader dumps concurrently; every dump must succeed.
//!
//! Rounds: 300 by default, 3,000 with `STRATUM_LONG=1`, or
//! `STRATUM_SOAK_ROUNDS=N`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::history::{
    self, Command, Doc, Docs, Model, Op, Target, Write, add_input, apply, create_doc, delete_doc,
    delete_input, load_doc, op_cmd, set_output, text_doc, update_doc,
};
use crate::support::{Ctx, Out, Rng, Runner, env_u64, long, rng};
use stratum::NewDoc;

const WRITERS: usize = 5;
const OPS_PER_ROUND: usize = 5;
const SEG: &str = "4096";
const KILL_PERCENT: u64 = 33;

/// One writer's view: its documents, what it deleted, and its killed
/// command, if any.
struct Writer {
    id: usize,
    model: Model,
    deleted_docs: BTreeSet<u64>,
    deleted_nodes: BTreeSet<(u64, u64)>,
    pending: Option<Command>,
    counter: u64,
    /// What this writer ran and got, for failure reports.
    history: Vec<String>,
}

#[derive(Default)]
struct Figures {
    processes: u64,
    kills: u64,
    acknowledged: u64,
    in_flight_applied: u64,
    in_flight_absent: u64,
    lost: u64,
    revived: u64,
    reused_ids: u64,
    failed_reopens: u64,
    reads: u64,
    other_failures: Vec<String>,
}

fn body(w: usize, n: u64, what: &str) -> String {
    format!("w{w} {what} {n}")
}

impl Writer {
    fn next_op(&mut self, rng: &mut Rng) -> Command {
        self.counter += 1;
        let (w, n) = (self.id, self.counter);
        let docs: Vec<u64> = self.model.docs.keys().copied().collect();
        if docs.len() < 2 || (docs.len() < 6 && rng.chance(15, 100)) {
            return create_doc(text_doc(
                body(w, n, "doc"),
                rng.chance(50, 100).then(|| format!("w{w}")),
                None,
            ));
        }
        let doc = *rng.pick(&docs);
        let nodes: Vec<u64> = self.model.docs[&doc].nodes.keys().copied().collect();
        let pad = "s".repeat(rng.below(300) as usize);
        match rng.below(100) {
            0..=29 => add_input(
                Target::Id(doc),
                format!("{{\"w\":{w},\"n\":{n},\"pad\":\"{pad}\"}}"),
                rng.chance(50, 100).then(|| format!("[{w},{n}]")),
            ),
            30..=44 if !nodes.is_empty() => set_output(
                Target::Id(doc),
                *rng.pick(&nodes),
                format!("{{\"set\":{n}}}"),
            ),
            45..=54 if !nodes.is_empty() => delete_input(Target::Id(doc), *rng.pick(&nodes)),
            55..=64 => update_doc(
                Target::Id(doc),
                Some(body(w, n, "updated")),
                None,
                Some(format!("v{n}")),
            ),
            65..=72 if docs.len() > 2 => delete_doc(Target::Id(doc)),
            73..=82 => apply(vec![
                create_doc(text_doc(body(w, n, "batch doc"), None, Some("b".into()))),
                add_input(
                    Target::Line(1),
                    format!("{{\"batch\":{n}}}"),
                    Some("0".into()),
                ),
                add_input(
                    Target::Id(doc),
                    format!("{{\"w\":{w},\"n\":{n},\"in\":\"batch\"}}"),
                    None,
                ),
            ]),
            83..=87 => Command::Load(vec![load_doc(
                body(w, n, "loaded doc"),
                Some("loaded".into()),
                None,
                vec![history::node(&format!("{{\"loaded\":{n}}}"), Some("1"))],
            )]),
            _ => add_input(Target::Id(doc), format!("[{w},{n}]"), None),
        }
    }
}

/// Document ids a successful command printed for the documents it created.
fn created_ids(op: &Command, stdout: &str) -> Vec<u64> {
    match op {
        Command::Write(Op::Create(_)) | Command::Load(_) => stdout
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
        Command::Apply(_) => stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["op"] == "create-doc")
            .filter_map(|v| v["doc"].as_u64())
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs one process, killing it at a random moment with some probability.
fn run_maybe_killed(
    run: &Runner,
    rng: &mut Rng,
    cmd: crate::support::Cmd,
    max_ms: u64,
) -> (Out, bool) {
    let deadline = rng
        .chance(KILL_PERCENT, 100)
        .then(|| Instant::now() + Duration::from_micros(rng.below(max_ms * 1000)));
    let mut p = run.spawn(cmd);
    let mut killed = false;
    if let Some(d) = deadline {
        while !p.try_done() {
            if Instant::now() >= d {
                p.kill();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let out = p.wait();
    let died = out.killed_by(libc::SIGKILL);
    (out, killed && died)
}

struct Shared {
    figures: Mutex<Figures>,
    /// Highest document id acknowledged so far (by anyone).
    max_acked: AtomicU64,
    /// Every document id ever acknowledged or seen.
    ids: Mutex<BTreeSet<u64>>,
}

fn writer_round(run: &Runner, dir: &std::path::Path, w: &mut Writer, seed: u64, shared: &Shared) {
    let mut rng = Rng::new(seed);
    for _ in 0..OPS_PER_ROUND {
        let op = w.next_op(&mut rng);
        let floor = shared.max_acked.load(Ordering::SeqCst);
        let (out, killed) = run_maybe_killed(run, &mut rng, op_cmd(dir, SEG, &op), 25);
        let mut f = shared.figures.lock().unwrap_or_else(|p| p.into_inner());
        f.processes += 1;
        w.history.push(format!(
            "#{} {:?} → {}{} {:?}",
            w.counter,
            op.cli().0,
            out.status(),
            if killed { " (killed)" } else { "" },
            out.out().trim()
        ));
        if killed {
            f.kills += 1;
            w.pending = Some(op);
            return;
        }
        if !out.ok() {
            f.other_failures
                .push(format!("w{} {}: {}", w.id, op.kind(), out.describe()));
            w.pending = Some(op);
            return;
        }
        f.acknowledged += 1;
        let mut new_ids = created_ids(&op, &out.out()).into_iter();
        let result = w.model.after_with(&op, &mut |_, _| new_ids.next());
        match result {
            Ok((next, printed)) => {
                let want = Model::expected_printed(&op, &printed);
                let got = Model::printed_ids(&op, &out.out());
                if want != got {
                    f.other_failures.push(format!(
                        "w{} {}: printed {got:?}, model says {want:?}",
                        w.id,
                        op.kind()
                    ));
                }
                let fresh: Vec<u64> = next
                    .docs
                    .keys()
                    .filter(|k| !w.model.docs.contains_key(k))
                    .copied()
                    .collect();
                let mut ids = shared.ids.lock().unwrap_or_else(|p| p.into_inner());
                for id in fresh {
                    if id <= floor || !ids.insert(id) {
                        f.reused_ids += 1;
                        f.other_failures.push(format!(
                            "w{} {}: new document id {id} was used before or is not above {floor}, the highest acknowledged before it started",
                            w.id,
                            op.kind()
                        ));
                    }
                    shared.max_acked.fetch_max(id, Ordering::SeqCst);
                }
                note_deletes(w, &op);
                w.model = next;
            }
            Err(e) => f
                .other_failures
                .push(format!("w{} {}: model: {e}", w.id, op.kind())),
        }
    }
}

fn note_deletes(w: &mut Writer, op: &Command) {
    let ops: Vec<&Write> = match op {
        Command::Apply(v) => v.iter().collect(),
        Command::Write(o) => vec![o],
        _ => Vec::new(),
    };
    for o in ops {
        match o {
            Op::DeleteDoc(Target::Id(d)) => {
                w.deleted_docs.insert(*d);
            }
            Op::DeleteInput(Target::Id(d), node) => {
                w.deleted_nodes.insert((*d, *node));
            }
            _ => {}
        }
    }
}

/// Compares a writer's model with what the store holds (restricted to the
/// writer's documents) and counts lost and revived items.
fn compare(w: &Writer, got: &Docs, f: &mut Figures) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, want) in &w.model.docs {
        match got.get(id) {
            None => {
                f.lost += 1;
                problems.push(format!("w{}: acknowledged doc {id} lost", w.id));
            }
            Some(g) => {
                for (n, node) in &want.nodes {
                    if g.nodes.get(n) != Some(node) {
                        f.lost += 1;
                        problems.push(format!(
                            "w{}: doc {id} node {n}: want {node:?}, got {:?}",
                            w.id,
                            g.nodes.get(n)
                        ));
                    }
                }
                for n in g.nodes.keys() {
                    if !want.nodes.contains_key(n) {
                        if w.deleted_nodes.contains(&(*id, *n)) {
                            f.revived += 1;
                        }
                        problems.push(format!(
                            "w{}: doc {id} has node {n}, which the model does not",
                            w.id
                        ));
                    }
                }
                if (&g.body, &g.category, &g.version) != (&want.body, &want.category, &want.version)
                {
                    f.lost += 1;
                    problems.push(format!("w{}: doc {id}: want {want:?}, got {g:?}", w.id));
                }
            }
        }
    }
    for id in &w.deleted_docs {
        if got.contains_key(id) {
            f.revived += 1;
            problems.push(format!("w{}: deleted doc {id} is back", w.id));
        }
    }
    problems
}

/// Settles a writer's killed command against the store: applied (adopt)
/// or absent; anything else is a violation.
fn settle(w: &mut Writer, got: &Docs, shared: &Shared, f: &mut Figures) -> Result<(), String> {
    let Some(op) = w.pending.take() else {
        return Ok(());
    };
    // The store restricted to the documents either state mentions, so a
    // document that should be gone is seen too.
    let view = |a: &Model, b: &Model| -> Docs {
        a.docs
            .keys()
            .chain(b.docs.keys())
            .filter_map(|k| got.get(k).map(|d| (*k, d.clone())))
            .collect()
    };
    let by_body = |body: &[u8]| got.iter().find(|(_, d)| d.body == body).map(|(k, _)| *k);
    let applied = w
        .model
        .after_with(&op, &mut |_, d: &NewDoc| by_body(&d.body));
    if let Ok((a, _)) = &applied
        && view(a, &w.model) == a.docs
    {
        let a = a.clone();
        let fresh: Vec<u64> = a
            .docs
            .keys()
            .filter(|k| !w.model.docs.contains_key(k))
            .copied()
            .collect();
        let mut ids = shared.ids.lock().unwrap_or_else(|p| p.into_inner());
        for id in fresh {
            if !ids.insert(id) {
                f.reused_ids += 1;
                return Err(format!(
                    "w{}: in-flight {} landed with a reused id {id}",
                    w.id,
                    op.kind()
                ));
            }
            shared.max_acked.fetch_max(id, Ordering::SeqCst);
        }
        note_deletes(w, &op);
        w.model = a;
        f.in_flight_applied += 1;
        return Ok(());
    }
    let after = applied.map(|(a, _)| a).unwrap_or_else(|_| w.model.clone());
    if view(&w.model, &after) == w.model.docs {
        f.in_flight_absent += 1;
        return Ok(());
    }
    Err(format!(
        "w{}: killed {} is neither absent nor fully applied",
        w.id,
        op.kind()
    ))
}

#[test]
fn random_kill_soak_with_concurrent_writers_rotation_and_compaction() {
    let cx = Ctx::new("soak");
    let rounds = env_u64("STRATUM_SOAK_ROUNDS", if long() { 3000 } else { 300 });
    let mut rng = rng(cx.name);
    let dir = cx.path("store");
    let shared = Arc::new(Shared {
        figures: Mutex::new(Figures::default()),
        max_acked: AtomicU64::new(0),
        ids: Mutex::new(BTreeSet::new()),
    });
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            model: Model::default(),
            deleted_docs: BTreeSet::new(),
            deleted_nodes: BTreeSet::new(),
            pending: None,
            counter: 0,
            history: Vec::new(),
        })
        .collect();
    let mut violations: Vec<String> = Vec::new();
    let mut compactions = 0u64;
    let mut round = 0;
    while round < rounds {
        round += 1;
        let seeds: Vec<u64> = (0..=WRITERS).map(|_| rng.next_u64()).collect();
        let compact_seed = seeds[WRITERS];
        std::thread::scope(|s| {
            for (w, seed) in writers.iter_mut().zip(&seeds) {
                let (run, shared, dir) = (cx.run.clone(), Arc::clone(&shared), dir.clone());
                s.spawn(move || writer_round(&run, &dir, w, *seed, &shared));
            }
            // A reader: dumps run while the others write and compact; each
            // must succeed (or be the first round's "no store").
            let (run, rshared, rdir) = (cx.run.clone(), Arc::clone(&shared), dir.clone());
            s.spawn(move || {
                let (dir, shared) = (rdir, rshared);
                for _ in 0..2 {
                    let out = run.run(crate::support::stratum_cmd(&dir, &["dump"]));
                    let mut f = shared.figures.lock().unwrap_or_else(|p| p.into_inner());
                    f.processes += 1;
                    f.reads += 1;
                    let parsed = history::parse_dump(&out.out());
                    if !(out.ok() && parsed.is_ok()) && out.code != Some(3) {
                        f.other_failures.push(format!(
                            "concurrent dump: {} {:?}",
                            out.describe(),
                            parsed.err()
                        ));
                    }
                }
            });
            let (run, shared, dir) = (cx.run.clone(), Arc::clone(&shared), dir.clone());
            let c = s.spawn(move || {
                let mut rng = Rng::new(compact_seed);
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                let (out, killed) = run_maybe_killed(
                    &run,
                    &mut rng,
                    crate::support::stratum_cmd(&dir, &["--segment-size", SEG, "compact"]),
                    40,
                );
                let mut f = shared.figures.lock().unwrap_or_else(|p| p.into_inner());
                f.processes += 1;
                if killed {
                    f.kills += 1;
                } else if !out.ok() && out.code != Some(3) {
                    // Exit 3: the store does not exist yet in the first round.
                    f.other_failures
                        .push(format!("compact: {}", out.describe()));
                }
                u64::from(out.ok())
            });
            compactions += c.join().unwrap_or(0);
        });
        if !dir.join("LOCK").exists() {
            continue;
        }
        let v = cx.run.stratum(&dir, &["verify"]);
        let mut f = shared.figures.lock().unwrap_or_else(|p| p.into_inner());
        if !v.ok() {
            f.failed_reopens += 1;
            violations.push(format!(
                "round {round}: verify: {} {}",
                v.describe(),
                v.out()
            ));
            break;
        }
        let got = match history::dump(&cx.run, &dir) {
            Ok(g) => g,
            Err(e) => {
                f.failed_reopens += 1;
                violations.push(format!("round {round}: {e}"));
                break;
            }
        };
        let mut problems = Vec::new();
        for w in &mut writers {
            if let Err(e) = settle(w, &got, &shared, &mut f) {
                problems.push(e);
            }
            problems.extend(compare(w, &got, &mut f));
        }
        let owned: BTreeSet<u64> = writers
            .iter()
            .flat_map(|w| w.model.docs.keys().copied())
            .collect();
        for id in got.keys() {
            if !owned.contains(id) {
                problems.push(format!("doc {id} belongs to no writer: {:?}", got[id]));
            }
        }
        if !f.other_failures.is_empty() {
            problems.append(&mut f.other_failures);
        }
        if !problems.is_empty() {
            violations.extend(problems.into_iter().map(|p| format!("round {round}: {p}")));
            for w in &writers {
                eprintln!(
                    "[{}] writer {} history (last 40):\n  {}",
                    cx.name,
                    w.id,
                    w.history
                        .iter()
                        .rev()
                        .take(40)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n  ")
                );
            }
            let recs = cx.run.stratum(&dir, &["dump", "--records"]);
            eprintln!("[{}] records:\n{}", cx.name, recs.out());
            eprintln!("[{}] files: {:?}", cx.name, crate::support::names(&dir));
            break;
        }
    }
    let f = shared.figures.lock().unwrap_or_else(|p| p.into_inner());
    let docs: usize = writers.iter().map(|w| w.model.docs.len()).sum();
    let nodes: usize = writers
        .iter()
        .flat_map(|w| w.model.docs.values())
        .map(|d: &Doc| d.nodes.len())
        .sum();
    eprintln!(
        "[{}] soak: {round} rounds, {WRITERS} writers + 1 compactor + 1 reader, {} processes, {} killed, {} acknowledged writes, \
         {compactions} compactions completed, {} concurrent dumps; killed in flight: {} applied, {} absent; final store {docs} docs, {nodes} inputs",
        cx.name,
        f.processes,
        f.kills,
        f.acknowledged,
        f.reads,
        f.in_flight_applied,
        f.in_flight_absent
    );
    eprintln!(
        "[{}] soak: acknowledged writes lost: {}, revived deletes: {}, reused ids: {}, failed reopens: {}, other failures: {}",
        cx.name,
        f.lost,
        f.revived,
        f.reused_ids,
        f.failed_reopens,
        violations.len()
    );
    let zero = f.lost == 0 && f.revived == 0 && f.reused_ids == 0 && f.failed_reopens == 0;
    drop(f);
    cx.finish();
    assert!(
        zero && violations.is_empty(),
        "soak violations:\n{}",
        violations
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
