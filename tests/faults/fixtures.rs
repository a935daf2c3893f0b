//! Stores built through the CLI, with the model of what they hold.

use std::path::Path;

use crate::history::{
    self, Command, LoadDoc, Model, Target, add_input, create_doc, delete_doc, delete_input,
    load_doc, new_doc, node, set_output, update_doc,
};
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
        history::exec(run, dir, seg, &mut m, &create_doc(new_doc(body, cat, ver)));
    }
    for doc in 1..=5u64 {
        for n in 1..=8u64 {
            let output = (n % 3 != 0).then(|| format!("[{doc},{n}]"));
            let op = add_input(Target::Id(doc), input(doc, n, 200), output);
            history::exec(run, dir, seg, &mut m, &op);
        }
    }
    let tail = [
        set_output(Target::Id(1), 3, "{\"sum\":3}".into()),
        set_output(Target::Id(1), 1, "\"replaced\"".into()),
        delete_input(Target::Id(2), 2),
        update_doc(
            Target::Id(4),
            Some("Parse an ISO date".into()),
            None,
            Some("v2".into()),
        ),
        delete_doc(Target::Id(5)),
        add_input(Target::Id(3), "[1,2,3]".into(), Some("6".into())),
    ];
    for op in &tail {
        history::exec(run, dir, seg, &mut m, op);
    }
    m
}

/// A few documents for `load`, with inputs.
pub fn load_docs(tag: &str, count: usize, inputs: usize, pad: usize) -> Vec<LoadDoc> {
    (0..count)
        .map(|i| {
            load_doc(
                format!("loaded {tag} {i}"),
                (i % 2 == 0).then(|| "loaded".to_owned()),
                None,
                (0..inputs)
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
            )
        })
        .collect()
}

/// A batch touching existing documents and creating new ones.
pub fn apply_ops() -> Vec<Command> {
    vec![
        create_doc(new_doc("made by apply", Some("batch"), None)),
        add_input(Target::Line(1), "{\"a\":1}".into(), Some("1".into())),
        add_input(Target::Id(1), "[\"batch\"]".into(), None),
        set_output(Target::Id(1), 2, "\"from apply\"".into()),
        delete_input(Target::Id(3), 4),
        update_doc(
            Target::Id(2),
            Some("Sort a list, stably".into()),
            Some("sorting".into()),
            None,
        ),
        delete_doc(Target::Id(4)),
    ]
}
