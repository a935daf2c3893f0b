//! Values and bodies round-trip exactly: every JSON kind keeps its text
//! (number spelling, escapes, key order), and any body bytes survive, both
//! raw (`get --body`) and in JSON (`body_base64`).

use crate::util::{TestStore, json};

/// (as given, as stored: insignificant whitespace removed, nothing else).
const VALUES: &[(&str, &str)] = &[
    ("0", "0"),
    ("42", "42"),
    ("-7", "-7"),
    ("1.0", "1.0"),
    ("-3.25", "-3.25"),
    ("2.50", "2.50"),
    ("1e10", "1e10"),
    ("6.02E+23", "6.02E+23"),
    ("1E400", "1E400"),
    ("-0", "-0"),
    (
        "123456789012345678901234567890",
        "123456789012345678901234567890",
    ),
    (
        "-98765432109876543210987654321.5",
        "-98765432109876543210987654321.5",
    ),
    ("18446744073709551616", "18446744073709551616"),
    ("\"plain\"", "\"plain\""),
    (
        r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#,
        r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#,
    ),
    ("\"héllo wörld ✓\"", "\"héllo wörld ✓\""),
    ("\"\"", "\"\""),
    ("true", "true"),
    ("false", "false"),
    ("null", "null"),
    ("[1, 2, 3]", "[1,2,3]"),
    ("[\"a\", \"b c\"]", "[\"a\",\"b c\"]"),
    ("[]", "[]"),
    ("{}", "{}"),
    (
        "{\"z\": 1, \"a\": 2, \"m\": 3}",
        "{\"z\":1,\"a\":2,\"m\":3}",
    ),
    (
        "{\"b\": {\"d\": [1.0, {\"c\": null}], \"a\": \"x\"}}",
        "{\"b\":{\"d\":[1.0,{\"c\":null}],\"a\":\"x\"}}",
    ),
    (" \n\t[ 1 ,\n 2 ] \n", "[1,2]"),
];

#[test]
fn every_value_kind_round_trips_exactly_through_get_and_dump() {
    let s = TestStore::new();
    s.ok(&["create-doc", "values"]);
    let mut expected_inputs = Vec::new();
    for (i, (given, stored)) in VALUES.iter().enumerate() {
        let node = (i + 1).to_string();
        // Inputs from the argument, outputs from stdin: both paths tested.
        assert_eq!(s.ok(&["add-input", "1", given]), format!("{node}\n"));
        // A null output is a real one, told from none by "has_output".
        s.with_stdin(given.as_bytes())
            .ok(&["set-output", "1", &node, "-"]);
        assert_eq!(
            s.ok(&["get", "1", "--node", &node, "--input"]),
            format!("{stored}\n"),
            "{given}"
        );
        assert_eq!(
            s.ok(&["get", "1", "--node", &node, "--output"]),
            format!("{stored}\n"),
            "{given}"
        );
        let real_null = if *stored == "null" {
            ",\"has_output\":true"
        } else {
            ""
        };
        expected_inputs.push(format!(
            "{{\"node\":{node},\"input\":{stored},\"output\":{stored}{real_null}}}"
        ));
    }
    let expected = format!(
        "{{\"id\":1,\"category\":null,\"version\":null,\"body\":\"values\",\"inputs\":[{}]}}\n",
        expected_inputs.join(",")
    );
    assert_eq!(s.ok(&["get", "1"]), expected);
    assert_eq!(s.ok(&["dump"]), expected);
    // Values arriving on stdin as inputs, and through load and apply.
    let t = TestStore::new();
    t.ok(&["create-doc", "values"]);
    for (given, _) in VALUES {
        t.with_stdin(given.as_bytes())
            .ok(&["add-input", "1", "-", "--output", given]);
    }
    assert_eq!(t.ok(&["dump"]), expected);
    let u = TestStore::new();
    u.with_stdin(expected.as_bytes())
        .ok(&["load", "--keep-ids"]);
    assert_eq!(u.ok(&["dump"]), expected);
}

#[test]
fn pretty_printing_keeps_number_text() {
    let s = TestStore::new();
    s.ok(&["create-doc", ""]);
    s.ok(&[
        "add-input",
        "1",
        "{\"x\": [1.0, -3.25, 123456789012345678901234567890]}",
    ]);
    assert_eq!(
        s.ok(&["get", "1", "--node", "1", "--input", "--pretty"]),
        "{\n  \"x\": [\n    1.0,\n    -3.25,\n    123456789012345678901234567890\n  ]\n}\n"
    );
}

#[test]
fn invalid_json_values_are_refused() {
    let s = TestStore::new();
    s.ok(&["create-doc", ""]);
    let before = s.snapshot();
    for bad in [
        "{bad",
        "[1,]",
        "01",
        "NaN",
        "'single'",
        "1 2",
        "",
        "{\"a\":1}}",
    ] {
        let (code, err) = s.fails(&["add-input", "1", bad]);
        assert_eq!(code, 4, "{bad:?}: {err}");
        assert!(
            err.starts_with("stratum: input value: invalid JSON value"),
            "{bad:?}: {err}"
        );
    }
    let (code, err) = s.fails(&["add-input", "1", "1", "--output", "[["]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("--output"), "{err}");
    let (code, err) = s
        .with_stdin(b"\xff\xfe")
        .fails(&["set-output", "1", "1", "-"]);
    assert_eq!(code, 4, "{err}");
    let deep = "[".repeat(200) + &"]".repeat(200);
    let (code, _) = s.fails(&["add-input", "1", &deep]);
    assert_eq!(code, 4);
    assert_eq!(s.snapshot(), before);
}

fn binary_body() -> Vec<u8> {
    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(b"\xff\xfe\x00\x80 not utf-8 \xc3\x28");
    body
}

#[test]
fn non_utf8_bodies_round_trip_byte_exact() {
    use std::os::unix::ffi::OsStrExt;
    let s = TestStore::new();
    let body = binary_body();
    // From stdin, from a file, and as the argument itself.
    assert_eq!(s.with_stdin(&body).ok(&["create-doc", "-"]), "1\n");
    let file = s.tmp().join("bin");
    std::fs::write(&file, &body).unwrap();
    assert_eq!(
        s.ok(&["create-doc", "--file", file.to_str().unwrap()]),
        "2\n"
    );
    // An argument cannot hold a NUL byte; every other byte goes through.
    let arg_body: Vec<u8> = body.iter().copied().filter(|&b| b != 0).collect();
    let mut cmd = s.command(&["create-doc"]);
    cmd.arg(std::ffi::OsStr::from_bytes(&arg_body));
    let (_, run) = TestStore::run_command(cmd, None);
    assert_eq!(
        (run.code, run.stdout.as_slice()),
        (0, &b"3\n"[..]),
        "{}",
        run.stderr
    );
    assert_eq!(s.ok_bytes(&["get", "3", "--body"]), arg_body);
    s.with_stdin(&body).ok(&["update-doc", "3", "-"]);
    for id in ["1", "2", "3"] {
        assert_eq!(s.ok_bytes(&["get", id, "--body"]), body, "doc {id}");
        let doc = json(s.ok(&["get", id]).trim());
        assert!(doc.get("body").is_none(), "{doc}");
        let b64 = doc["body_base64"].as_str().expect("body_base64");
        assert_eq!(decode_base64(b64), body);
    }
    // The JSON form loads back to the same bytes.
    let dump = s.ok(&["dump"]);
    let t = TestStore::new();
    t.with_stdin(dump.as_bytes()).ok(&["load", "--keep-ids"]);
    assert_eq!(t.ok_bytes(&["get", "2", "--body"]), body);
    assert_eq!(t.ok(&["dump"]), dump);
    // And so does body_base64 in apply.
    let line = format!(
        "{{\"op\":\"create-doc\",\"body_base64\":\"{}\"}}\n",
        json(s.ok(&["get", "1"]).trim())["body_base64"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        t.with_stdin(line.as_bytes()).ok(&["apply"]),
        "{\"line\":1,\"op\":\"create-doc\",\"doc\":4}\n"
    );
    assert_eq!(t.ok_bytes(&["get", "4", "--body"]), body);
}

#[test]
fn utf8_bodies_stay_text_in_json() {
    let s = TestStore::new();
    let body = "<p>\"quoted\" \\ tab\tnewline\n é ✓ \u{1}</p>";
    s.ok(&["create-doc", body]);
    let doc = json(s.ok(&["get", "1"]).trim());
    assert_eq!(doc["body"].as_str(), Some(body));
    assert_eq!(s.ok_bytes(&["get", "1", "--body"]), body.as_bytes());
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Every value, `null` included, is accepted as an input the same way by
/// `add-input`, `apply` and `load`, and reads back the same.
#[test]
fn add_input_apply_and_load_accept_the_same_values() {
    let by_command = TestStore::new();
    by_command.ok(&["create-doc", "values"]);
    for (given, _) in VALUES {
        by_command.ok(&["add-input", "1", given]);
    }
    // A JSON line cannot hold a raw line feed, so batch lines carry the
    // value with its insignificant whitespace turned into spaces.
    let one_line = |v: &str| v.replace(['\n', '\t'], " ");
    let mut ops = String::from("{\"op\":\"create-doc\",\"body\":\"values\"}\n");
    let mut inputs = Vec::new();
    for (given, _) in VALUES {
        ops.push_str(&format!(
            "{{\"op\":\"add-input\",\"doc\":\"$1\",\"input\":{}}}\n",
            one_line(given)
        ));
        inputs.push(format!("{{\"input\":{}}}", one_line(given)));
    }
    let by_apply = TestStore::new();
    by_apply.with_stdin(ops.as_bytes()).ok(&["apply"]);
    let by_load = TestStore::new();
    let doc = format!(
        "{{\"body\":\"values\",\"inputs\":[{}]}}\n",
        inputs.join(",")
    );
    assert_eq!(by_load.with_stdin(doc.as_bytes()).ok(&["load"]), "1\n");
    let expected = by_command.ok(&["dump"]);
    assert!(expected.contains("\"input\":null"), "{expected}");
    assert_eq!(by_apply.ok(&["dump"]), expected);
    assert_eq!(by_load.ok(&["dump"]), expected);
}
