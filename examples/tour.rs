//! A tour of the library: create a document, give it inputs and expected
//! outputs, read it back, list the store and verify it.
//!
//! Run it with `cargo run --example tour [DIR]`; `cargo test` runs it too.

use std::path::{Path, PathBuf};

use stratum::{Json, NewDoc, Options, Store};

fn tour(dir: &Path) -> stratum::Result<()> {
    let mut store = Store::open(Options::new(dir).segment_size(1 << 20))?;

    // A problem and its test cases. Values are JSON text, kept exactly.
    let doc = store.create_doc(&NewDoc {
        key: Some("add-two".into()),
        category: Some("easy".into()),
        body: b"<p>Add two numbers.</p>".to_vec(),
        ..NewDoc::default()
    })?;
    let first = store.add_input(doc, &Json::parse("[1, 2]")?, Some(&Json::parse("3")?))?;
    let second = store.add_input(doc, &Json::parse("[1.0, -9999999999999999]")?, None)?;
    store.set_output(doc, second, &Json::parse("-9999999999999998.0")?)?;

    // Several writes that land together or not at all.
    store.atomic(|s| {
        let other = s.create_doc(&NewDoc {
            body: b"<p>Negate a number.</p>".to_vec(),
            ..NewDoc::default()
        })?;
        s.add_input(other, &Json::parse("7")?, Some(&Json::parse("-7")?))?;
        Ok(())
    })?;

    let read = store.get(doc)?;
    assert_eq!(store.find_key("add-two")?, Some(doc));
    assert_eq!(read.inputs.len(), 2);
    assert_eq!(store.get_node(doc, first)?.input.as_str(), "[1,2]");
    let exact = read.inputs[1].output.as_ref().map(Json::as_str);
    assert_eq!(exact, Some("-9999999999999998.0"));
    println!("{}", read.to_json());

    // Listing reads one document at a time, whatever the store's size.
    for d in store.docs()? {
        let d = d?;
        println!("{} {:?}: {} inputs", d.id.0, d.category, d.inputs.len());
    }

    // Verify under the lock this store already holds.
    let report = store.verify(&mut |_| {})?;
    assert!(report.is_ok(), "{:?}", report.problems);
    println!(
        "verified {} records, {} bytes",
        report.records, report.bytes
    );
    Ok(())
}

fn main() -> stratum::Result<()> {
    let dir = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("stratum-tour-{}", std::process::id())),
        PathBuf::from,
    );
    tour(&dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tour_runs_on_a_new_store() {
        let tmp = std::env::temp_dir().join(format!("stratum-tour-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        super::tour(&tmp).unwrap();
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
