"""Keys, metadata and real null outputs (issue 11) through the module: each
parameter works, reads back as the CLI shows it, and each refusal raises
its class with the CLI's message and leaves the store exactly as it was."""

import json

import pytest

import stratum
from conftest import snapshot


def test_a_key_names_the_document_in_every_method(store):
    doc = store.create_doc(b"<p>sum</p>", key="two-sum")
    assert store.find_key("two-sum") == doc and store.find_key("nope") is None
    n1 = store.add_input("two-sum", [2, 7], output=[0, 1])
    n2 = store.add_input("two-sum", [3, 3])
    store.set_output("two-sum", n2, [0, 1])
    store.clear_output("two-sum", n1)
    store.update_doc("two-sum", category="easy")
    d = store.get("two-sum")
    assert (d.id, d.key, d.category) == (doc, "two-sum", "easy")
    assert [(n.id, n.has_output) for n in d.inputs] == [(n1, False), (n2, True)]
    assert store.get_node("two-sum", n2).output == [0, 1]
    assert store.get_expected_output("two-sum", n2) == [0, 1]
    assert store.get_problem_html("two-sum") == "<p>sum</p>"
    store.delete_input("two-sum", n1)
    assert [n.id for n in store.get(doc).inputs] == [n2]
    store.delete_doc("two-sum")
    assert store.find_key("two-sum") is None
    # The key is free again; the id is not reused.
    again = store.create_doc(b"", key="two-sum")
    assert again == doc + 1 and store.get("two-sum").id == again


def test_a_str_is_always_a_key_and_an_int_always_an_id(store):
    store.create_doc(b"one")
    two = store.create_doc(b"two", key="1")
    assert store.get(1).body == b"one"
    assert store.get("1").id == two


def test_keys_meta_and_nulls_read_back_as_the_cli_prints_them(store, cli):
    doc = store.create_doc(
        b"<p>x</p>", category="c", key="HumanEval/42", meta={"tags": ["dp"], "level": 1.0}
    )
    store.add_input(doc, [1], output=stratum.NULL, meta={"label": "edge", "w": stratum.Json("1.50")})
    store.add_input(doc, [2])
    store.add_input(doc, [3], output=3)
    want = store.get(doc).to_json()
    assert want == (
        '{"id":1,"key":"HumanEval/42","category":"c","version":null,'
        '"meta":{"tags":["dp"],"level":1.0},"body":"<p>x</p>","inputs":['
        '{"node":1,"input":[1],"meta":{"label":"edge","w":1.50},"output":null,"has_output":true},'
        '{"node":2,"input":[2],"output":null},'
        '{"node":3,"input":[3],"output":3}]}'
    )
    d = store.get("HumanEval/42")
    assert d.meta == {"tags": ["dp"], "level": 1.0}
    assert d.inputs[0].meta == {"label": "edge", "w": 1.5} and d.inputs[1].meta is None
    raw = store.get(doc, raw=True)
    assert raw.meta == stratum.Json('{"tags":["dp"],"level":1.0}')
    assert raw.inputs[0].meta.text == '{"label":"edge","w":1.50}'
    assert repr(d).startswith("Document(id=1, key='HumanEval/42', category='c'")
    store.close()
    assert cli.ok("get", "key:HumanEval/42").decode() == want + "\n"
    assert cli.ok("get", "1", "--node", "1").decode() == d.inputs[0].to_json() + "\n"


def test_the_clis_keys_meta_and_nulls_read_back_in_python(cli, data):
    cli.ok("create-doc", "--key", "k", "--meta", '{"a":1.0}', "body")
    cli.ok("add-input", "key:k", "1", "--output", "null")
    cli.ok("add-input", "key:k", "2")
    cli.ok("update-input", "key:k", "2", "--meta", '{"b":[]}')
    with stratum.open(data, write=False) as r:
        d = r.get("k")
        assert d.meta == {"a": 1.0}
        a, b = d.inputs
        assert a.output is None and a.has_output
        assert b.output is None and not b.has_output and b.meta == {"b": []}
        assert r.get_node("k", 1, raw=True).output == stratum.NULL


def test_update_doc_sets_and_clears_each_field_with_clear(store, cli):
    doc = store.create_doc(b"x")
    store.update_doc(doc, key="k", category="c", version="v", meta={"m": 1})
    d = store.get("k")
    assert (d.key, d.category, d.version, d.meta) == ("k", "c", "v", {"m": 1})
    store.update_doc("k", meta=stratum.CLEAR, version=stratum.CLEAR)
    d = store.get("k")
    assert (d.key, d.category, d.version, d.meta) == ("k", "c", None, None)
    store.update_doc("k", key=stratum.CLEAR, category=stratum.CLEAR)
    d = store.get(doc)
    assert (d.key, d.category, d.version, d.meta, d.body) == (None, None, None, None, b"x")
    assert store.find_key("k") is None
    # Keeping its own key is not a conflict.
    store.update_doc(doc, key="k")
    store.update_doc(doc, key="k", body=b"y")
    assert store.get("k").body == b"y"
    assert repr(stratum.CLEAR) == "stratum.CLEAR"
    with pytest.raises(TypeError):
        stratum.Clear()
    store.close()
    assert json.loads(cli.ok("get", "key:k"))["body"] == "y"


def test_update_input_sets_replaces_and_clears_a_nodes_meta(store, cli):
    doc = store.create_doc(b"", key="k")
    node = store.add_input(doc, 1, meta={"a": 1})
    store.update_input(doc, node, meta={"b": stratum.Json("2.0")})
    assert store.get_node(doc, node, raw=True).meta.text == '{"b":2.0}'
    store.update_input("k", node, meta=stratum.CLEAR)
    assert store.get_node(doc, node).meta is None
    # The input and output are kept.
    store.set_output(doc, node, 5)
    store.update_input(doc, node, meta={"d": 4})
    n = store.get_node(doc, node)
    assert (n.input, n.output, n.meta) == (1, 5, {"d": 4})
    before = snapshot(store.path)
    with pytest.raises(stratum.InvalidInput, match="update_input needs meta"):
        store.update_input(doc, node)
    with pytest.raises(stratum.InvalidInput, match="update_input needs meta"):
        store.update_input(doc, node, meta=None)
    assert snapshot(store.path) == before
    store.close()
    assert cli.ok("get", "key:k", "--node", "1").decode() == n.to_json() + "\n"


def test_a_real_null_is_set_replaced_and_cleared(store):
    doc = store.create_doc(b"")
    node = store.add_input(doc, 1)
    assert not store.get_node(doc, node).has_output
    store.set_output(doc, node, stratum.NULL)
    assert store.get_node(doc, node).has_output
    assert store.list()[0]["outputs"] == 1
    store.set_output(doc, node, 0)
    assert store.get_node(doc, node).output == 0
    store.clear_output(doc, node)
    assert not store.get_node(doc, node).has_output
    # Clearing an output that is not there changes nothing visible.
    store.clear_output(doc, node)
    assert store.get_node(doc, node).to_json() == '{"node":1,"input":1,"output":null}'
    # null inside a value is a value like any other.
    store.set_output(doc, node, [None, {"x": None}])
    assert store.get_node(doc, node).output == [None, {"x": None}]


def test_load_takes_keys_meta_and_real_nulls(store, cli):
    nodes = [
        {"input": 1, "output": stratum.NULL, "meta": {"label": "null answer"}},
        {"input": 2, "output": None, "has_output": True},
        {"input": 3, "output": None},
        {"input": 4},
    ]
    given = {"key": "p1", "meta": {"topics": ["math"]}, "body": "<p>one</p>", "inputs": nodes}
    ids = store.load([given, {"key": "p2", "body": "two"}])
    # The caller's dicts are left as they were.
    assert "has_output" not in nodes[0] and len(given["inputs"]) == 4
    d = store.get("p1")
    assert ids == [d.id, store.find_key("p2")]
    assert d.meta == {"topics": ["math"]} and d.inputs[0].meta == {"label": "null answer"}
    assert [n.has_output for n in d.inputs] == [True, True, False, False]
    lines = store.get("p1").to_json() + "\n" + store.get("p2").to_json() + "\n"
    store.close()
    assert cli.ok("dump").decode() == lines


def test_load_copies_keys_meta_and_nulls_from_another_store(store, tmp_path):
    doc = store.create_doc(b"b", key="k", meta={"a": 1})
    store.add_input(doc, 1, output=stratum.NULL, meta={"n": 1})
    store.add_input(doc, 2)
    with stratum.open(tmp_path / "copy") as copy:
        copy.load(store.docs())
        assert copy.get("k") == store.get("k")
        assert copy.get("k").to_json() == store.get(doc).to_json()


def test_keys_work_inside_a_batch(store):
    with store.batch():
        doc = store.create_doc(b"", key="k")
        store.add_input("k", 1, output=stratum.NULL)
        assert store.find_key("k") == doc
    assert store.get("k").inputs[0].has_output


# Refusals: the class, the CLI's message where the CLI has the same call,
# and a store left byte for byte as it was.


@pytest.fixture
def keyed(data):
    with stratum.open(data) as s:
        doc = s.create_doc(b"<p>x</p>", key="taken", meta={"m": 1})
        s.add_input(doc, [1], output=2, meta={"n": 1})
        s.create_doc(b"other", key="other")
    return data


def test_an_unknown_key_is_not_found_in_every_method(keyed, cli):
    before = snapshot(keyed)
    with stratum.open(keyed) as s:
        calls = [
            lambda: s.get("nope"),
            lambda: s.get_node("nope", 1),
            lambda: s.add_input("nope", 1),
            lambda: s.set_output("nope", 1, 1),
            lambda: s.clear_output("nope", 1),
            lambda: s.update_input("nope", 1, meta={"a": 1}),
            lambda: s.update_doc("nope", version="v"),
            lambda: s.delete_doc("nope"),
            lambda: s.delete_input("nope", 1),
            lambda: s.get_problem_html("nope"),
        ]
        messages = set()
        for call in calls:
            with pytest.raises(stratum.NotFound) as e:
                call()
            messages.add(str(e.value))
        with pytest.raises(stratum.NotFound):
            s.get("x" * 5000)
    assert snapshot(keyed) == before
    assert messages == {'no document has the key "nope"'}
    assert cli.fails("get", "key:nope") == (3, 'no document has the key "nope"')
    assert cli.fails("delete-doc", "key:nope") == (3, 'no document has the key "nope"')


@pytest.mark.parametrize(
    "call, cli_args",
    [
        (lambda s: s.create_doc(b"y", key="taken"), ("create-doc", "--key", "taken", "y")),
        (lambda s: s.update_doc("other", key="taken"), ("update-doc", "key:other", "--key", "taken")),
        (lambda s: s.create_doc(b"y", key="k" * 1025), ("create-doc", "--key", "k" * 1025, "y")),
        (lambda s: s.create_doc(b"y", key=""), ("create-doc", "--key", "", "y")),
        (lambda s: s.update_doc(1, key="k" * 1025), ("update-doc", "1", "--key", "k" * 1025)),
        (lambda s: s.create_doc(b"y", meta=[1]), ("create-doc", "--meta", "[1]", "y")),
        (lambda s: s.update_doc(1, meta="text"), ("update-doc", "1", "--meta", '"text"')),
        (lambda s: s.add_input(1, 5, meta=stratum.NULL), ("add-input", "1", "5", "--meta", "null")),
        (lambda s: s.update_input(1, 1, meta=3), ("update-input", "1", "1", "--meta", "3")),
    ],
    ids=[
        "taken key on create",
        "taken key on update",
        "too long key",
        "empty key",
        "too long key on update",
        "list meta",
        "str meta on update",
        "null node meta",
        "number node meta",
    ],
)
def test_a_refused_key_or_meta_is_invalid_input_with_the_clis_message(keyed, cli, call, cli_args):
    before = snapshot(keyed)
    with stratum.open(keyed) as s:
        with pytest.raises(stratum.InvalidInput) as e:
            call(s)
    assert snapshot(keyed) == before
    code, msg = cli.fails(*cli_args)
    assert code == 4
    # The CLI may name its flag first; the library's words follow.
    assert msg.endswith(str(e.value)), (msg, str(e.value))
    assert snapshot(keyed) == before


def test_wrong_types_for_keys_and_fields_are_type_errors_and_change_nothing(keyed):
    before = snapshot(keyed)
    with stratum.open(keyed) as s:
        for call in (
            lambda: s.create_doc(b"y", key=5),
            lambda: s.update_doc(1, key=5),
            lambda: s.update_doc(1, category=b"c"),
            lambda: s.get(1.5),
            lambda: s.find_key(1),
        ):
            with pytest.raises(TypeError):
                call()
        with pytest.raises(stratum.InvalidInput, match="body"):
            s.update_doc(1, body=stratum.CLEAR)
        with pytest.raises(stratum.InvalidInput, match="pass stratum.NULL"):
            s.set_output("taken", 1, None)
    assert snapshot(keyed) == before


@pytest.mark.parametrize(
    "docs, message",
    [
        ([{"key": "taken", "body": "y"}], 'document 1: key "taken" is already used by document 1'),
        ([{"key": "new"}, {"key": "new"}], 'document 2: key "new" is already used by document 3'),
        ([{"key": "k" * 1025}], "document 1: a key must be 1 to 1024 bytes long (got 1025)"),
        ([{"body": "a"}, {"meta": [1]}], "document 2: meta must be a JSON object"),
        ([{"inputs": [{"input": 1, "meta": "m"}]}], "document 1: meta must be a JSON object"),
    ],
    ids=["taken key", "the same key twice", "too long key", "list meta", "str node meta"],
)
def test_load_refuses_a_bad_key_or_meta_and_writes_nothing(keyed, docs, message):
    before = snapshot(keyed)
    with stratum.open(keyed) as s:
        with pytest.raises(stratum.InvalidInput) as e:
            s.load(docs)
        assert str(e.value) == message
        assert s.find_key("new") is None
    assert snapshot(keyed) == before


def test_load_refusals_match_the_clis_load(keyed, cli):
    lines = b'{"body":"a"}\n{"key":"taken"}\n'
    with stratum.open(keyed) as s:
        with pytest.raises(stratum.InvalidInput) as e:
            s.load([json.loads(l) for l in lines.splitlines()])
    code, msg = cli.fails("load", stdin=lines)
    assert code == 4
    assert msg == str(e.value).replace("document 2", "line 2"), (msg, str(e.value))


def test_a_store_an_earlier_build_wrote_keeps_its_meaning(tmp_path):
    import shutil

    from conftest import ROOT

    fixtures = ROOT / "tests" / "fixtures" / "v1"
    copy = tmp_path / "plain"
    shutil.copytree(fixtures / "plain", copy)
    expected = (fixtures / "plain.expected.jsonl").read_text(encoding="utf-8").splitlines()
    with stratum.open(copy, write=False) as r:
        docs = list(r.docs())
        assert [d.to_json() for d in docs] == expected
        # Format 1 had no real nulls: an output of null there is no output.
        node = docs[1].inputs[0]
        assert node.output is None and not node.has_output and node.meta is None
        assert docs[0].key is None and docs[0].meta is None and docs[0].inputs[0].has_output


def _ordered(line):
    """A JSON line as nested pairs with numbers as their text: equal for the
    same key order and number text, whatever the string escapes."""
    return json.loads(line, object_pairs_hook=list, parse_float=str, parse_int=str)


def test_the_dataset_fixture_round_trips_through_python_load_and_the_cli(data, cli):
    from conftest import ROOT

    lines = (ROOT / "tests" / "fixtures" / "problems.jsonl").read_text(encoding="utf-8").splitlines()
    # Numbers as stratum.Json keep their text on the way in.
    docs = [json.loads(l, parse_float=stratum.Json, parse_int=stratum.Json) for l in lines]
    with stratum.open(data) as s:
        s.load(docs, keep_ids=True)
        nulls = sum(n.has_output and n.output is None for d in s.docs() for n in d.inputs)
        keys = [d.key for d in s.docs()]
    assert nulls > 0 and all(keys)
    dumped = cli.ok("dump").decode().splitlines()
    assert [_ordered(l) for l in dumped] == [_ordered(l) for l in lines]
