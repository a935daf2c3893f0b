//! The command kinds every sweep walks through, each with the store it
//! starts from (a template copied afresh before every run) and the model of
//! that store.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::fixtures;
use crate::history::{
    Command, Model, Target, add_input, apply, create_doc, delete_doc, delete_input, new_doc,
    set_output, update_doc,
};
use crate::support::{
    Ctx, MUTATING, TMP_SUFFIX, count_calls, names, reset_dir, under_strace, watch_paths,
};
use crate::trace;

/// One command kind on one starting store.
pub struct Case {
    pub name: String,
    /// Template copied to the work directory before each run; `None`: the
    /// command runs on a directory that does not exist yet.
    pub template: Option<PathBuf>,
    pub model: Model,
    pub op: Command,
    pub seg: String,
}

impl Case {
    fn new(name: &str, template: &Path, model: &Model, op: Command, seg: &str) -> Case {
        Case {
            name: name.to_owned(),
            template: Some(template.to_path_buf()),
            model: model.clone(),
            op,
            seg: seg.to_owned(),
        }
    }

    /// Resets `work` to the starting store.
    pub fn reset(&self, work: &Path) {
        match &self.template {
            Some(t) => reset_dir(t, work),
            None => {
                if work.exists() {
                    fs::remove_dir_all(work).expect("remove work dir");
                }
            }
        }
    }

    /// Sealed segments are never modified in place: each one the starting
    /// store had is, after any fault, byte-identical or gone (removed after
    /// a compaction's commit point). Returns the ones that changed.
    pub fn changed_sealed(&self, work: &Path) -> Vec<String> {
        let Some(t) = &self.template else {
            return Vec::new();
        };
        names(t)
            .into_iter()
            .filter(|n| n.starts_with("seg_") && n.ends_with(".seg"))
            .filter(|n| match fs::read(work.join(n)) {
                Ok(now) => fs::read(t.join(n)).ok() != Some(now),
                Err(_) => false,
            })
            .collect()
    }

    /// Paths for `strace -P`: the store's files, and the parent directory
    /// when the command creates the store.
    pub fn watch(&self, work: &Path) -> Vec<PathBuf> {
        let mut v = match &self.template {
            Some(t) => {
                let mut v = watch_paths(t);
                for p in &mut v {
                    *p = match p.strip_prefix(t) {
                        Ok(rel) if !rel.as_os_str().is_empty() => work.join(rel),
                        _ => work.to_path_buf(),
                    };
                }
                v
            }
            None => watch_paths(work),
        };
        if let (None, Some(p)) = (&self.template, work.parent()) {
            v.push(p.to_path_buf());
        }
        v
    }
}

/// The templates and cases shared by the sweeps.
pub struct Cases {
    pub base: PathBuf,
    pub base_model: Model,
    root: PathBuf,
    run: crate::support::Runner,
}

impl Cases {
    /// Builds the base store (through the CLI) under `cx`.
    pub fn build(cx: &Ctx) -> Cases {
        let root = cx.path("templates");
        fs::create_dir_all(&root).expect("templates dir");
        let base = root.join("base");
        let base_model = fixtures::base(&cx.run, &base);
        Cases {
            base,
            base_model,
            root,
            run: cx.run.clone(),
        }
    }

    /// Single-record commands on the base store.
    pub fn single_commands(&self) -> Vec<Case> {
        let (b, m) = (&self.base, &self.base_model);
        let seg = "1M";
        vec![
            Case::new(
                "create-doc",
                b,
                m,
                create_doc(new_doc("New problem", Some("easy"), Some("v1"))),
                seg,
            ),
            Case::new(
                "update-doc",
                b,
                m,
                update_doc(
                    Target::Id(2),
                    Some("Sort a list in place".into()),
                    Some("sorting".into()),
                    Some("v3".into()),
                ),
                seg,
            ),
            Case::new(
                "add-input",
                b,
                m,
                add_input(Target::Id(1), "[40,2]".into(), None),
                seg,
            ),
            Case::new(
                "add-input --output",
                b,
                m,
                add_input(Target::Id(1), "[40,2]".into(), Some("42".into())),
                seg,
            ),
            Case::new(
                "set-output",
                b,
                m,
                set_output(Target::Id(2), 3, "{\"sorted\":true}".into()),
                seg,
            ),
            Case::new("delete-input", b, m, delete_input(Target::Id(3), 1), seg),
            Case::new("delete-doc", b, m, delete_doc(Target::Id(1)), seg),
        ]
    }

    /// The first write, which creates the store directory.
    pub fn first_write(&self) -> Case {
        Case {
            name: "create-doc (new store)".into(),
            template: None,
            model: Model::default(),
            op: create_doc(new_doc("First", None, None)),
            seg: "1M".into(),
        }
    }

    /// Writes that seal the active segment, and compaction.
    pub fn rotation_and_compaction(&self) -> Vec<Case> {
        let (b, m) = (&self.base, &self.base_model);
        vec![
            Case::new(
                "add-input (rotation)",
                b,
                m,
                add_input(
                    Target::Id(2),
                    fixtures::input(2, 99, 4000),
                    Some("\"big\"".into()),
                ),
                "4096",
            ),
            Case::new(
                "load (rotation)",
                b,
                m,
                Command::Load(fixtures::load_docs("r", 3, 6, 300)),
                "4096",
            ),
            Case::new("compact --full", b, m, Command::Compact, "4096"),
            self.compact_many_segments(),
            self.compact_selective(),
        ]
    }

    /// Commits that write the key index (docs/FORMAT.md §7.8): a keyed
    /// `create-doc` that seals, a `load` of keyed documents that spills,
    /// and a full compaction, on a store whose members hold keys.
    pub fn keyed(&self) -> Vec<Case> {
        let dir = self.root.join("keyed");
        reset_dir(&self.base, &dir);
        let mut m = self.base_model.clone();
        for i in 0..6 {
            let mut d = new_doc(&format!("keyed {i} {}", "k".repeat(1500)), None, None);
            d.key = Some(format!("key-{i}"));
            crate::history::exec(&self.run, &dir, "4096", &mut m, &create_doc(d));
        }
        let mut big = new_doc(&format!("keyed big {}", "b".repeat(3500)), None, None);
        big.key = Some("key-big".into());
        let mut loaded = fixtures::load_docs("kl", 4, 3, 300);
        for (i, d) in loaded.iter_mut().enumerate() {
            d.doc.key = Some(format!("loaded-{i}"));
        }
        vec![
            Case::new(
                "create-doc --key (rotation, keyed members)",
                &dir,
                &m,
                create_doc(big),
                "4096",
            ),
            Case::new(
                "load (spill, keyed)",
                &dir,
                &m,
                Command::Load(loaded),
                "4096",
            ),
            Case::new(
                "compact --full (keyed members)",
                &dir,
                &m,
                Command::Compact,
                "4096",
            ),
        ]
    }

    /// A selective compaction of about ten sealed segments: the first two
    /// loads' segments lost half their data to a deleted document, so they
    /// are merged (the other document's records copied raw, the deletions
    /// kept while the segments they shadow survive) and the rest are not.
    fn compact_selective(&self) -> Case {
        let dir = self.root.join("selective");
        reset_dir(&self.base, &dir);
        let mut m = self.base_model.clone();
        let loads = if crate::support::long() { 18 } else { 7 };
        let mut victims = Vec::new();
        for i in 0..loads {
            if i < 2 {
                victims.push(m.doc_hwm + 1);
            }
            let op = Command::Load(fixtures::load_docs(&format!("v{i}"), 2, 6, 280));
            crate::history::exec(&self.run, &dir, "4096", &mut m, &op);
        }
        for id in victims {
            let op = delete_doc(Target::Id(id));
            crate::history::exec(&self.run, &dir, "4096", &mut m, &op);
        }
        let plan = self.run.stratum(
            &dir,
            &["--segment-size", "4096", "compact", "--dry-run", "--json"],
        );
        assert!(plan.ok(), "{}", plan.describe());
        let plan: serde_json::Value = serde_json::from_str(plan.out().trim()).expect("json");
        let merge = plan["merge"].as_array().map_or(0, Vec::len);
        let sealed = names(&dir)
            .iter()
            .filter(|n| n.ends_with(".seg") && n.starts_with("seg_"))
            .count();
        assert!(
            merge > 0 && merge < sealed,
            "a selective compaction merges some of {sealed} segments: {plan}"
        );
        Case::new(
            &format!("compact (selective, {merge} of {sealed} sealed segments)"),
            &dir,
            &m,
            Command::CompactSelective,
            "4096",
        )
    }

    /// Compaction of a store of about ten sealed segments, twenty in the
    /// long tier (each `load` of about 4 KiB seals one).
    fn compact_many_segments(&self) -> Case {
        let dir = self.root.join("many-segments");
        reset_dir(&self.base, &dir);
        let mut m = self.base_model.clone();
        let loads = if crate::support::long() { 18 } else { 7 };
        for i in 0..loads {
            let op = Command::Load(fixtures::load_docs(&format!("s{i}"), 2, 6, 280));
            crate::history::exec(&self.run, &dir, "4096", &mut m, &op);
        }
        let sealed = names(&dir)
            .iter()
            .filter(|n| n.ends_with(".seg") && n.starts_with("seg_"))
            .count();
        Case::new(
            &format!("compact ({sealed} sealed segments)"),
            &dir,
            &m,
            Command::Compact,
            "4096",
        )
    }

    /// The batch commands.
    pub fn batches(&self) -> Vec<Case> {
        let (b, m) = (&self.base, &self.base_model);
        vec![
            Case::new(
                "load",
                b,
                m,
                Command::Load(fixtures::load_docs("k", 2, 2, 10)),
                "1M",
            ),
            Case::new("apply", b, m, apply(fixtures::apply_ops()), "1M"),
        ]
    }

    /// Stores left by a crash, and the write that recovers each: a torn
    /// tail, leftover temporary files, and compactions interrupted before
    /// and after their commit point.
    pub fn recovery(&self, cx: &Ctx) -> Vec<Case> {
        let m = &self.base_model;
        let mut v = Vec::new();
        let probe = || set_output(Target::Id(3), 2, "\"recovered\"".into());

        let torn = self.root.join("torn-tail");
        reset_dir(&self.base, &torn);
        let mut rec = Vec::new();
        stratum::engine::format::encode_record(
            &mut rec,
            1_000_000,
            stratum::engine::format::Kind::InputPut,
            0,
            1,
            77,
            &[4, 0, 0, 0, b'[', b'7', b'7', b']'],
            &[],
        );
        append(&torn.join("active.seg"), &rec[..rec.len() - 3]);
        v.push(Case::new("add-input (torn tail)", &torn, m, probe(), "1M"));

        let leftovers = self.root.join("leftover-tmp");
        reset_dir(&self.base, &leftovers);
        fs::write(
            leftovers.join(format!("active.seg{TMP_SUFFIX}")),
            b"\x89STRSEG\n partial",
        )
        .expect("write");
        fs::write(
            leftovers.join(format!("seg_000040.seg{TMP_SUFFIX}")),
            vec![0u8; 300],
        )
        .expect("write");
        fs::write(leftovers.join(format!("seg_000040.idx{TMP_SUFFIX}")), b"").expect("write");
        v.push(Case::new(
            "set-output (leftover temporaries)",
            &leftovers,
            m,
            probe(),
            "1M",
        ));

        for (name, call, pick) in [
            (
                "set-output (compaction killed before its commit)",
                "rename",
                Pick::FirstRenameIn,
            ),
            (
                "set-output (compaction killed after its commit)",
                "unlink",
                Pick::FirstOldUnlink,
            ),
        ] {
            let dir = self.root.join(
                name.split(' ')
                    .collect::<Vec<_>>()
                    .join("-")
                    .replace(['(', ')'], ""),
            );
            let n = find_call(cx, &self.base, &dir, call, pick);
            reset_dir(&self.base, &dir);
            let out = cx.run.run(under_strace(
                crate::history::op_cmd(&dir, "4096", &Command::Compact),
                Path::new("/dev/null"),
                &watch_paths(&dir),
                call,
                Some(&format!("{call}:signal=KILL:when={n}")),
                false,
            ));
            assert!(
                out.killed_by(9),
                "building the {name} store: {}",
                out.describe()
            );
            v.push(Case::new(name, &dir, m, probe(), "1M"));
        }
        v
    }
}

#[derive(Clone, Copy)]
enum Pick {
    FirstRenameIn,
    FirstOldUnlink,
}

/// Which occurrence of `call` (counted among calls on watched paths) a
/// compaction of `template` makes first that matches `pick`.
fn find_call(cx: &Ctx, template: &Path, work: &Path, call: &str, pick: Pick) -> u64 {
    reset_dir(template, work);
    let log = cx.path("find-call.log");
    let existing: BTreeSet<String> = names(work).into_iter().collect();
    let out = cx.run.run(under_strace(
        crate::history::op_cmd(work, "4096", &Command::Compact),
        &log,
        &watch_paths(work),
        call,
        None,
        true,
    ));
    assert!(out.ok(), "{}", out.describe());
    let t = trace::parse(&fs::read_to_string(&log).unwrap_or_default(), work);
    let mut n = 0;
    for c in t.calls.iter().filter(|c| c.name == call) {
        n += 1;
        let name = |p: &String| {
            Path::new(p)
                .file_name()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let hit = match pick {
            Pick::FirstRenameIn => c.paths.first().is_some_and(|p| {
                name(p).starts_with("seg_") && name(p).ends_with(&format!(".seg{TMP_SUFFIX}"))
            }),
            Pick::FirstOldUnlink => {
                !c.failed()
                    && c.paths
                        .first()
                        .is_some_and(|p| existing.contains(&name(p)) && name(p).starts_with("seg_"))
            }
        };
        if hit {
            return n;
        }
    }
    panic!("compaction trace has no {call} matching the pattern");
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}

/// Counts each mutating call a case makes on its store (a dry run, which
/// must itself succeed and be acknowledged correctly).
pub fn count_case_calls(
    cx: &Ctx,
    case: &Case,
    work: &Path,
) -> std::collections::BTreeMap<String, u64> {
    case.reset(work);
    let log = cx.path("count.log");
    let out = cx.run.run(under_strace(
        crate::history::op_cmd(work, &case.seg, &case.op),
        &log,
        &case.watch(work),
        &MUTATING.join(","),
        None,
        false,
    ));
    assert!(
        out.ok(),
        "[{}] dry run failed: {}",
        case.name,
        out.describe()
    );
    if let Err(e) =
        crate::oracle::check_acknowledged(&cx.run, work, &case.model, &case.op, &out.out())
    {
        panic!("[{}] dry run: {e}", case.name);
    }
    count_calls(&log)
}
