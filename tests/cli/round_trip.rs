//! A real dataset of programming problems round-trips exactly (issue 11,
//! "Done when"): `tests/fixtures/problems.jsonl` holds problems with keys,
//! tags and reference solutions in meta, labels on test cases, expected
//! answers that are `null` (Python `None`) beside cases with no expected
//! answer yet, unicode and `\u` escapes, number text such as `1.0`,
//! `123e65`, `-9999999999999999` and `1E400`, and key orders to keep. Two
//! prompts are from openai/human-eval (MIT licence).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::util::TestStore;

const DATASET: &str = include_str!("../fixtures/problems.jsonl");

fn dataset_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/problems.jsonl")
}

#[derive(Deserialize)]
struct Problem<'a> {
    key: String,
    category: Option<String>,
    version: Option<String>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
    body: String,
    #[serde(borrow)]
    inputs: Vec<Case<'a>>,
}

#[derive(Deserialize)]
struct Case<'a> {
    #[serde(borrow)]
    input: &'a RawValue,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    has_output: Option<bool>,
}

/// The dataset as `apply` operations, every value passed on as its text.
fn as_operations() -> String {
    let mut ops = String::new();
    let text = |s: &str| serde_json::to_string(s).unwrap();
    for line in DATASET.lines() {
        let p: Problem<'_> = serde_json::from_str(line).unwrap();
        let mut create = format!(
            "{{\"op\":\"create-doc\",\"key\":{},\"body\":{}",
            text(&p.key),
            text(&p.body)
        );
        if let Some(c) = &p.category {
            create.push_str(&format!(",\"category\":{}", text(c)));
        }
        if let Some(v) = &p.version {
            create.push_str(&format!(",\"version\":{}", text(v)));
        }
        if let Some(m) = p.meta {
            create.push_str(&format!(",\"meta\":{}", m.get()));
        }
        ops.push_str(&create);
        ops.push_str("}\n");
        let created = ops.lines().count();
        for c in &p.inputs {
            let mut add = format!(
                "{{\"op\":\"add-input\",\"doc\":\"${created}\",\"input\":{}",
                c.input.get()
            );
            if let Some(m) = c.meta {
                add.push_str(&format!(",\"meta\":{}", m.get()));
            }
            // In the get shape a bare null (which serde reads as None) is
            // no output; in apply an output given as null is a real null.
            match (c.has_output, c.output) {
                (Some(true), _) => add.push_str(",\"output\":null"),
                (_, None) => {}
                (_, Some(o)) => add.push_str(&format!(",\"output\":{}", o.get())),
            }
            ops.push_str(&add);
            ops.push_str("}\n");
        }
    }
    ops
}

#[test]
fn a_problem_dataset_round_trips_through_load_dump_diff_and_apply() {
    let file = dataset_path();
    let file = file.to_str().unwrap();
    assert!(DATASET.contains("123e65") && DATASET.contains("\"has_output\":true"));
    let s = TestStore::new();
    let ids = s.ok(&["load", file]);
    assert_eq!(ids.lines().count(), DATASET.lines().count());
    // Byte for byte: key order, number text, escapes, real nulls.
    assert_eq!(s.ok(&["dump"]), DATASET);
    let (shown, run) = s.run(&["diff", file], None);
    assert_eq!(
        (run.code, run.stdout.len()),
        (0, 0),
        "{shown}: {}",
        run.stderr
    );

    // Regenerating with replace leaves the store exactly as it was.
    let before = s.snapshot();
    assert_eq!(s.ok(&["load", "--on-conflict", "replace", file]), ids);
    assert_eq!(s.snapshot(), before);
    assert_eq!(s.ok(&["dump"]), DATASET);
    assert_eq!(s.ok(&["load", "--on-conflict", "skip", file]), ids);
    assert_eq!(s.snapshot(), before);

    // The same dataset as apply operations makes the same store.
    let ops = as_operations();
    let t = TestStore::new();
    t.with_stdin(ops.as_bytes()).ok(&["apply", "-"]);
    assert_eq!(t.ok(&["dump"]), DATASET);
    let before = t.snapshot();
    t.with_stdin(ops.as_bytes())
        .ok(&["apply", "--on-conflict", "replace", "-"]);
    assert_eq!(t.snapshot(), before);
    let (shown, run) = t.run(&["diff", s.data().to_str().unwrap()], None);
    assert_eq!(
        (run.code, run.stdout.len()),
        (0, 0),
        "{shown}: {}",
        run.stderr
    );

    // Selection answers the dataset's questions in its exact text.
    assert_eq!(
        s.ok(&["dump", "--key", "big-numbers", "--fields", "inputs.output"]),
        "{\"inputs\":[{\"output\":123e65},{\"output\":-9999999999999999},{\"output\":3.50},{\"output\":18446744073709551616},{\"output\":null,\"has_output\":true},{\"output\":0}]}\n"
    );
    let missing = s.ok(&["list", "--missing-output", "--json"]);
    assert_eq!(missing.lines().count(), 1, "{missing}");
    assert!(missing.contains("\"key\":\"missing-outputs\""), "{missing}");
    let human: Vec<String> = s
        .ok(&["dump", "--key-prefix", "HumanEval/", "--fields", "key"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        human,
        ["{\"key\":\"HumanEval/0\"}", "{\"key\":\"HumanEval/2\"}"]
    );
    assert_eq!(
        s.ok(&["list", "--meta", "difficulty=\"easy\"", "--json"])
            .lines()
            .count(),
        2
    );
}
