"""A dataset written through the module reads back byte for byte through
the CLI, and one loaded by the CLI reads back byte for byte through the
module."""

import json

import stratum

# Values whose text a careless round trip would change.
TRICKY = [
    "1.0",
    "123e65",
    "-9999999999999999",
    "1E400",
    "0.1000",
    '"\\u00e9\\n\\ud83d\\ude00"',
    '"plain é 😀"',
    '{"b":1,"a":[1.50,{"z":null,"y":true}]}',
    "[]",
    "{}",
    '"\\/"',
]


def as_get_shape(doc):
    """A module Document as the plain JSON value `stratum get` describes."""
    return {
        "id": doc.id,
        "category": doc.category,
        "version": doc.version,
        "body": doc.text,
        "inputs": [{"node": n.id, "input": n.input, "output": n.output} for n in doc.inputs],
    }


def test_written_through_python_read_through_the_cli(data, cli):
    with stratum.open(data) as s:
        for i, text in enumerate(TRICKY):
            doc = s.create_doc(f"<p>problem {i} é</p>", category=f"cat{i % 3}", version="1.0")
            s.add_input(doc, stratum.Json(text), output=stratum.Json(text))
            s.add_input(doc, {"n": i, "x": i / 3, "big": 10**40, "s": "ü\t"}, output=[i, None, True])
            s.add_input(doc, "no output")
        binary = s.create_doc(b"\x00\xffbinary", category=None)
        s.add_input(binary, [1, 2])
        with s.batch():
            b = s.create_doc("in a batch")
            s.add_input(b, 1.0, output=2.0)
        expected = [d.to_json() for d in s.docs(raw=True)]
        plain = [as_get_shape(d) for d in s.docs() if d.id != binary]
    dumped = cli.ok("dump").decode().splitlines()
    assert dumped == expected
    for line in expected:
        doc_id = json.loads(line)["id"]
        assert cli.ok("get", str(doc_id)).decode() == line + "\n"
    # The plain Python values are what a JSON reader makes of the CLI's text.
    assert [json.loads(l) for l in dumped if json.loads(l)["id"] != binary] == plain
    assert cli.ok("get", str(binary), "--body") == b"\x00\xffbinary"
    assert cli.ok("get", "1", "--node", "1", "--output").decode() == TRICKY[0] + "\n"


def test_loaded_by_the_cli_read_through_python(tmp_path, data, cli):
    lines = []
    for i, text in enumerate(TRICKY, start=1):
        lines.append(
            '{"id":%d,"category":"c","version":null,"body":"<p>%d</p>","inputs":'
            '[{"node":1,"input":%s,"output":%s},{"node":2,"input":%s,"output":null}]}'
            % (i, i, text, text, text)
        )
    jsonl = tmp_path / "set.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cli.ok("load", str(jsonl))
    with stratum.open(data, write=False) as r:
        assert [d.to_json() for d in r.docs(raw=True)] == lines
        assert [d.inputs[0].input.text for d in r.docs(raw=True)] == TRICKY
        for i, text in enumerate(TRICKY, start=1):
            node = r.get_node(i, 1, raw=True)
            assert node.output.text == text
            assert node.to_json() == cli.ok("get", str(i), "--node", "1").decode().rstrip("\n")
        assert r.get(2).inputs[0].input == 1.23e67
        assert r.get(3).inputs[0].input == -9999999999999999
    # Python writes next to what the CLI loaded; the CLI's dump keeps both.
    with stratum.open(data) as w:
        doc = w.create_doc("added")
        w.add_input(doc, stratum.Json("2.50"))
    dumped = cli.ok("dump").decode().splitlines()
    assert dumped[: len(lines)] == lines
    assert dumped[-1] == '{"id":%d,"category":null,"version":null,"body":"added","inputs":[{"node":1,"input":2.50,"output":null}]}' % doc
