"""What the CLI's `load --on-conflict`, `--meta-patch` and the `list`/`dump`
filters do, the module does too, by the same rules in the library: each
compared with the CLI on the same data, byte for byte, and each refusal
raises its class and leaves the store exactly as it was."""

import json
import shutil

import pytest

import stratum
from conftest import Cli, snapshot

FIXTURES = [
    {
        "key": "two-sum",
        "category": "easy",
        "meta": {"tags": ["array"], "n": stratum.Json("1.0")},
        "body": "<p>Two sum</p>",
        "inputs": [
            {"input": [2, 7], "output": [0, 1]},
            {"input": [3, 3], "output": stratum.NULL, "meta": {"label": "pair"}},
            {"input": [1]},
        ],
    },
    {"key": "HumanEval/42", "body": "incr", "inputs": [{"input": stratum.Json("-9999999999999999"), "output": stratum.Json("123e65")}]},
    {"body": "no key", "inputs": [{"input": 1, "output": 2}]},
]

# One output changed, a node's meta dropped, an input changed from the third
# node on, and a node added.
REGENERATED = [
    dict(
        FIXTURES[0],
        inputs=[
            {"input": [2, 7], "output": [1, 0]},
            {"input": [3, 3], "output": stratum.NULL},
            {"input": [2]},
            {"input": [3], "output": stratum.Json("1.50")},
        ],
    ),
    FIXTURES[1],
]


def test_load_on_conflict_replace_and_skip_as_the_cli_does(store, cli, tmp_path):
    assert store.load(FIXTURES) == [1, 2, 3]
    store.close()
    before = snapshot(cli.dir)
    with stratum.open(cli.dir) as s:
        # The same fixtures again: the same ids, and not a byte written.
        assert s.load(FIXTURES[:2], on_conflict="replace") == [1, 2]
        assert s.load(FIXTURES[:2], on_conflict="skip") == [1, 2]
    assert snapshot(cli.dir) == before

    # A regenerated fixture through the module and through the CLI, each on
    # its own copy of the store, leave the same store.
    other = Cli(cli.binary, tmp_path / "other")
    shutil.copytree(cli.dir, other.dir)
    with stratum.open(cli.dir) as s:
        assert s.load(REGENERATED, on_conflict="replace") == [1, 2]
        d = s.get("two-sum")
        assert [(n.id, n.input, n.output, n.has_output) for n in d.inputs] == [
            (1, [2, 7], [1, 0], True),
            (2, [3, 3], None, True),
            (4, [2], None, False),
            (5, [3], 1.5, True),
        ]
        assert d.inputs[1].meta is None
    # The CLI is given the same documents in the get shape.
    with stratum.open(tmp_path / "scratch") as scratch:
        scratch.load(REGENERATED)
        text = "".join(scratch.get(i).to_json() + "\n" for i in (1, 2))
    assert other.ok("load", "--on-conflict", "replace", "-", stdin=text.encode()) == b"1\n2\n"
    assert cli.ok("dump") == other.ok("dump")


def test_a_taken_key_fails_the_whole_load_and_bad_policies_are_refused(store, cli):
    store.load(FIXTURES)
    before = snapshot(store.path)
    fresh = {"key": "fresh", "body": "x"}
    with pytest.raises(stratum.InvalidInput) as e:
        store.load([fresh, FIXTURES[1]])
    assert str(e.value) == 'document 2: key "HumanEval/42" is already used by document 2'
    with pytest.raises(stratum.InvalidInput) as e:
        store.load([fresh, FIXTURES[1]], on_conflict="fail")
    assert snapshot(store.path) == before
    with pytest.raises(stratum.InvalidInput, match="unknown conflict policy \"Replace\""):
        store.load([fresh], on_conflict="Replace")
    with pytest.raises(TypeError, match="on_conflict must be"):
        store.load([fresh], on_conflict=True)
    with pytest.raises(stratum.InvalidInput, match="do not go together"):
        store.load([dict(fresh, id=9)], keep_ids=True, on_conflict="skip")
    assert snapshot(store.path) == before
    assert store.find_key("fresh") is None
    taken = store.get(2).to_json()
    store.close()
    # The CLI refuses the same line with the same words.
    code, message = cli.fails("load", "-", stdin=(json.dumps(fresh) + "\n" + taken + "\n").encode())
    assert (code, message) == (4, 'line 2: key "HumanEval/42" is already used by document 2')
    assert snapshot(cli.dir) == before


def test_on_conflict_inside_a_batch_is_part_of_the_batch(store):
    store.load(FIXTURES)
    before = snapshot(store.path)
    with pytest.raises(RuntimeError):
        with store.batch():
            store.load(REGENERATED, on_conflict="replace")
            assert store.get("two-sum").inputs[0].output == [1, 0]
            raise RuntimeError("roll back")
    assert store.get("two-sum").inputs[0].output == [0, 1]
    assert snapshot(store.path) == before


def test_meta_patch_keeps_exact_text_as_the_cli_does(store, cli, tmp_path):
    meta = stratum.Json('{"n":-9999999999999999,"tags":["a"],"s":"\\u00e9","x":1.0}')
    doc = store.create_doc(b"x", key="k", meta=meta)
    node = store.add_input(doc, 1, meta={"label": "edge"})
    store.close()
    other = Cli(cli.binary, tmp_path / "other")
    shutil.copytree(cli.dir, other.dir)

    patch = '{"tags":["b"],"x":null,"new":123e65,"o":{"a":1,"b":null}}'
    with stratum.open(cli.dir) as s:
        s.update_doc("k", version="v2", meta_patch=stratum.Json(patch))
        s.update_input("k", node, meta_patch={"label": None, "w": {"ms": 5}})
        d = s.get("k", raw=True)
        assert d.meta.text == '{"n":-9999999999999999,"tags":["b"],"s":"\\u00e9","new":123e65,"o":{"a":1}}'
        assert d.version == "v2"
        assert d.inputs[0].meta.text == '{"w":{"ms":5}}'
    other.ok("update-doc", "key:k", "--doc-version", "v2", "--meta-patch", patch)
    other.ok("update-input", "key:k", str(node), "--meta-patch", '{"label":null,"w":{"ms":5}}')
    assert cli.ok("dump") == other.ok("dump")
    # The version and the meta went in one record, as the CLI writes them.
    assert snapshot(cli.dir) == snapshot(other.dir)


def test_meta_patch_refusals_change_nothing(store):
    doc = store.create_doc(b"x", meta={"a": 1})
    node = store.add_input(doc, 1)
    store.update_doc(doc, meta_patch={})
    before = snapshot(store.path)
    with pytest.raises(stratum.InvalidInput, match="give either meta or meta_patch"):
        store.update_doc(doc, meta={"b": 1}, meta_patch={"c": 1})
    with pytest.raises(stratum.InvalidInput, match="give either meta or meta_patch"):
        store.update_input(doc, node, meta=stratum.CLEAR, meta_patch={"c": 1})
    with pytest.raises(stratum.InvalidInput, match=r"must be a JSON object \(RFC 7386"):
        store.update_doc(doc, meta_patch=[1])
    with pytest.raises(stratum.InvalidInput, match=r"must be a JSON object \(RFC 7386"):
        store.update_input(doc, node, meta_patch=3)
    with pytest.raises(stratum.InvalidInput, match="meta_patch cannot be stratum.CLEAR"):
        store.update_doc(doc, meta_patch=stratum.CLEAR)
    with pytest.raises(stratum.NotFound):
        store.update_doc(99, meta_patch={"a": 2})
    with pytest.raises(stratum.NotFound):
        store.update_input(doc, 99, meta_patch={"a": 2})
    with pytest.raises(stratum.InvalidInput, match="update_input needs meta or meta_patch"):
        store.update_input(doc, node)
    assert snapshot(store.path) == before
    assert store.get(doc, raw=True).meta.text == '{"a":1}'


@pytest.fixture
def dataset(data):
    with stratum.open(data, sync=False) as s, s.batch():
        for i in range(1, 61):
            d = s.create_doc(
                f"doc {i}",
                category=f"c{i % 3}",
                key=None if i % 7 == 0 else f"p/{i}",
                meta={"level": stratum.Json("1.0" if i % 2 == 0 else "1"), "i": i},
            )
            s.add_input(d, [i], output=stratum.NULL)
            if i % 5 == 0:
                s.add_input(d, [i, i])
        s.delete_doc(40)
    return data


# Each filter in both spellings: the module's keyword arguments and the
# CLI's flags.
FILTERS = [
    ({}, []),
    ({"category": "c1"}, ["--category", "c1"]),
    ({"key": "p/8"}, ["--key", "p/8"]),
    ({"key": "p/8", "category": "c0"}, ["--key", "p/8", "--category", "c0"]),
    ({"key": "nobody"}, ["--key", "nobody"]),
    ({"key_prefix": "p/1"}, ["--key-prefix", "p/1"]),
    ({"meta": {"level": stratum.Json("1.0")}}, ["--meta", "level=1.0"]),
    ({"meta": {"level": 1}, "category": "c0"}, ["--meta", "level=1", "--category", "c0"]),
    ({"meta": {"level": 1, "i": 9}}, ["--meta", "level=1", "--meta", "i=9"]),
    ({"meta": {"missing": 1}}, ["--meta", "missing=1"]),
    ({"missing_output": True}, ["--missing-output"]),
    ({"ids": range(30, 46), "missing_output": True}, ["--id", "30..45", "--missing-output"]),
    ({"ids": 12}, ["--id", "12"]),
    ({"ids": range(50, 10**30)}, ["--id", "50.."]),
    ({"ids": range(100, 200)}, ["--id", "100..199"]),
]


@pytest.mark.parametrize("kw,flags", FILTERS, ids=[" ".join(f) or "all" for _, f in FILTERS])
def test_list_and_docs_select_what_the_cli_selects(dataset, cli, kw, flags):
    cli_rows = [json.loads(l) for l in cli.ok("list", "--json", *flags).splitlines()]
    cli_lines = cli.ok("dump", *flags).decode()
    with stratum.open(dataset, write=False) as r:
        assert r.list(**kw) == cli_rows
        assert "".join(d.to_json() + "\n" for d in r.docs(**kw)) == cli_lines
    if kw:
        assert len(cli_rows) < 59


def test_the_filters_select_by_their_rules(dataset):
    with stratum.open(dataset, write=False) as r:
        ids = lambda **kw: [row["id"] for row in r.list(**kw)]
        assert ids(key_prefix="p/5") == [5, 50, 51, 52, 53, 54, 55, 57, 58, 59]
        # Exact text: 1.0 is not 1.
        assert ids(meta={"level": stratum.Json("1.0")}, ids=range(1, 9)) == [2, 4, 6, 8]
        assert ids(meta={"level": 1.0}, ids=range(1, 9)) == [2, 4, 6, 8]
        assert ids(meta={"level": 1}, ids=range(1, 9)) == [1, 3, 5, 7]
        # A real null output is an output.
        assert ids(missing_output=True) == [5, 10, 15, 20, 25, 30, 35, 45, 50, 55, 60]
        assert ids(ids=range(39, 42)) == [39, 41]
        assert ids(ids=range(5, 5)) == [] and ids(ids=0) == [] and ids(ids=range(-5, 2)) == [1]
        assert [d.id for d in r.docs(raw=True, key="p/9")] == [9]
        assert r.list("c1", key="p/4") == r.list(category="c1", key="p/4") != []


def test_bad_filters_are_refused_before_the_store_is_read(dataset):
    with stratum.open(dataset, write=False) as r:
        with pytest.raises(stratum.InvalidInput, match="step 1"):
            r.list(ids=range(1, 10, 2))
        with pytest.raises(TypeError, match="ids must be an int or a range"):
            r.list(ids="1..3")
        with pytest.raises(TypeError, match="ids must be an int or a range"):
            r.docs(ids=True)
        with pytest.raises(TypeError, match="meta must be a dict"):
            r.list(meta="level=1")
        with pytest.raises(TypeError, match="meta field names must be str"):
            r.docs(meta={1: 1})
        with pytest.raises(stratum.InvalidInput, match=r"meta\[\"x\"\]"):
            r.list(meta={"x": float("nan")})
