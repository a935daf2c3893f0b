//! Stores built through the CLI, with the model of what they hold.

use std::path::Path;

use crate::model::{self, Model, NewDoc, Op, Target, new_doc, node};
use crate::support::Runner;

/// A JSON input of roughly `pad` bytes, unique per (doc, n).
pub fn input(doc: u64, n: u64, pad: usize) -> String {
    format!(
        "{{\"case\":{doc},\"n\":{n},\"pad\":\"{}\"}}",
        "x".repeat(pad)
    )
}

/// A store with several sealed segments (built with `--segment-size 4096`),
/// an active segment holding records, outputs set and replaced, an updated
/// document, a deleted input and a deleted document (tombstones).
pub fn base(run: &Runner, dir: &Path) -> Model {
    let mut m = Model::default();
    let seg = "4096";
    let docs: [(&str, Option<&str>, Option<&str>); 5] = [
        ("Add two numbers", Some("easy"), Some("v1")),
        ("Sort a list", None, None),
        ("Shortest path", Some("graphs"), Some("2024")),
        ("Parse a date", Some("strings"), None),
        ("To be deleted", None, Some("old")),
    ];
    for (body, cat, ver) in docs {
        model::exec(
            run,
            dir,
            seg,
            &mut m,
            &Op::CreateDoc(new_doc(body, cat, ver)),
        );
    }
    for doc in 1..=5u64 {
        for n in 1..=8u64 {
            let output = (n % 3 != 0).then(|| format!("[{doc},{n}]"));
            let op = Op::AddInput {
                doc: Target::Id(doc),
                input: input(doc, n, 200),
                output,
            };
            model::exec(run, dir, seg, &mut m, &op);
        }
    }
    let tail = [
        Op::SetOutput {
            doc: Target::Id(1),
            node: 3,
            output: "{\"sum\":3}".into(),
        },
        Op::SetOutput {
            doc: Target::Id(1),
            node: 1,
            output: "\"replaced\"".into(),
        },
        Op::DeleteInput {
            doc: Target::Id(2),
            node: 2,
        },
        Op::UpdateDoc {
            doc: Target::Id(4),
            body: Some("Parse an ISO date".into()),
            category: None,
            version: Some("v2".into()),
        },
        Op::DeleteDoc { doc: Target::Id(5) },
        Op::AddInput {
            doc: Target::Id(3),
            input: "[1,2,3]".into(),
            output: Some("6".into()),
        },
    ];
    for op in &tail {
        model::exec(run, dir, seg, &mut m, op);
    }
    m
}

/// A few documents for `load`, with inputs.
pub fn load_docs(tag: &str, count: usize, inputs: usize, pad: usize) -> Vec<NewDoc> {
    (0..count)
        .map(|i| NewDoc {
            body: format!("loaded {tag} {i}"),
            category: (i % 2 == 0).then(|| "loaded".to_owned()),
            version: None,
            inputs: (0..inputs)
                .map(|k| {
                    node(
                        &format!(
                            "{{\"load\":\"{tag}\",\"i\":{i},\"k\":{k},\"pad\":\"{}\"}}",
                            "y".repeat(pad)
                        ),
                        (k % 2 == 0).then_some("true"),
                    )
                })
                .collect(),
        })
        .collect()
}

/// A batch touching existing documents and creating new ones.
pub fn apply_ops() -> Vec<Op> {
    vec![
        Op::CreateDoc(new_doc("made by apply", Some("batch"), None)),
        Op::AddInput {
            doc: Target::Line(1),
            input: "{\"a\":1}".into(),
            output: Some("1".into()),
        },
        Op::AddInput {
            doc: Target::Id(1),
            input: "[\"batch\"]".into(),
            output: None,
        },
        Op::SetOutput {
            doc: Target::Id(1),
            node: 2,
            output: "\"from apply\"".into(),
        },
        Op::DeleteInput {
            doc: Target::Id(3),
            node: 4,
        },
        Op::UpdateDoc {
            doc: Target::Id(2),
            body: Some("Sort a list, stably".into()),
            category: Some("sorting".into()),
            version: None,
        },
        Op::DeleteDoc { doc: Target::Id(4) },
    ]
}
