"""Python values in and out as JSON, with the stored text kept exactly."""

import json
import math
import zlib

import pytest

import stratum


def roundtrip(store, value):
    doc = store.create_doc(b"")
    node = store.add_input(doc, value, output=value)
    n = store.get_node(doc, node)
    return n.input, n.output, store.get_node(doc, node, raw=True).input.text


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-9999999999999999, "-9999999999999999"),
        (2**63, "9223372036854775808"),
        (-(2**200), str(-(2**200))),
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1.5e-7, "1.5e-07"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        ("", '""'),
        ("é 😀 \u0000 \n \"q\" \\", '"é 😀 \\u0000 \\n \\"q\\" \\\\"'),
        ([], "[]"),
        ({}, "{}"),
        ([1, [2, [3]]], "[1,[2,[3]]]"),
        ({"b": 1, "a": [True, None]}, '{"b":1,"a":[true,null]}'),
    ],
)
def test_values_round_trip_with_their_text(store, value, text):
    got_in, got_out, stored = roundtrip(store, value)
    assert stored == text
    assert got_in == value and type(got_in) is type(value)
    if value is not None:  # an output of None is "no output"
        assert got_out == value
    # The text is what json.dumps writes, but compact and not ASCII-escaped.
    assert json.loads(stored) == value
    assert stored == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_key_order_is_kept(store):
    value = {"z": 1, "a": 2, "m": {"y": 1, "b": 2}}
    got, _, text = roundtrip(store, value)
    assert list(got) == ["z", "a", "m"] and list(got["m"]) == ["y", "b"]
    assert text == '{"z":1,"a":2,"m":{"y":1,"b":2}}'


def test_ints_of_any_size_beyond_pythons_str_limit(store):
    big = 7 ** 20000  # about 16,900 digits: str() refuses it on Python 3.11+
    got, _, _ = roundtrip(store, [big, -big])
    assert got == [big, -big]


def test_floats_stay_floats_and_ints_stay_ints(store):
    got, _, text = roundtrip(store, [1, 1.0, 3.0, -9999999999999999, 123e65])
    assert text == "[1,1.0,3.0,-9999999999999999,1.23e+67]"
    assert [type(x) for x in got] == [int, float, float, int, float]


def test_tuples_are_arrays(store):
    got, _, text = roundtrip(store, (1, (2, "x")))
    assert got == [1, [2, "x"]] and text == '[1,[2,"x"]]'


def test_json_keeps_exact_text(store):
    doc = store.create_doc(b"")
    texts = ["1.0", "1.50", "123e65", "1E400", "-0", '"\\u00e9"', '{"b":1,"a":2}', "[1,2.50]"]
    nodes = [store.add_input(doc, stratum.Json(t), output=stratum.Json(t)) for t in texts]
    raw = store.get(doc, raw=True)
    assert [n.input.text for n in raw.inputs] == texts
    assert [n.output.text for n in raw.inputs] == texts
    plain = store.get(doc)
    assert [n.input for n in plain.inputs] == [1.0, 1.5, 1.23e67, math.inf, 0, "é", {"b": 1, "a": 2}, [1, 2.5]]
    # Inside a container too.
    n = store.add_input(doc, {"price": stratum.Json("10.00"), "list": [stratum.Json("1e2")]})
    assert store.get_node(doc, n, raw=True).input.text == '{"price":10.00,"list":[1e2]}'
    assert len(nodes) == len(texts)


def test_json_class(store):
    j = stratum.Json(' [1, 2.50 , {"a" : null}] ')
    assert j.text == '[1,2.50,{"a":null}]' and str(j) == j.text
    assert repr(j) == "Json('[1,2.50,{\"a\":null}]')"
    assert j == stratum.Json("[1,2.50,{\"a\":null}]") and j != stratum.Json("[1,2.5,{\"a\":null}]")
    assert hash(j) == hash(stratum.Json(j.text))
    assert j.value() == [1, 2.5, {"a": None}]
    assert stratum.Json.from_value({"x": 1.0}).text == '{"x":1.0}'
    assert (j == 1) is False


def test_output_none_is_no_output_and_stratum_null_is_the_json_value_null(store):
    doc = store.create_doc(b"")
    a = store.add_input(doc, 1, output=None)
    b = store.add_input(doc, 1, output=stratum.NULL)
    c = store.add_input(doc, 1, output=stratum.Json("null"))
    none, null, also_null = (store.get_node(doc, n) for n in (a, b, c))
    assert none.output is None and not none.has_output
    assert null.output is None and null.has_output and also_null.has_output
    assert store.get_node(doc, b, raw=True).output == stratum.NULL
    assert store.get_node(doc, a, raw=True).output is None
    assert none.to_json() == '{"node":1,"input":1,"output":null}'
    assert null.to_json() == '{"node":2,"input":1,"output":null,"has_output":true}'
    assert repr(null) == "Node(id=2, input=1, output=stratum.NULL)"
    assert stratum.NULL == stratum.Json("null") == stratum.Json.from_value(None)


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), "NaN and infinities"),
        (float("inf"), "NaN and infinities"),
        ({1: "a"}, "object keys must be str, not int"),
        ({"a": {(1, 2): 1}}, "object keys must be str, not tuple"),
        ({1, 2}, "a set is not a JSON value"),
        (b"bytes", "a bytes is not a JSON value"),
        (object(), "a object is not a JSON value"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_values_that_are_not_json_are_refused(store, value, message):
    doc = store.create_doc(b"")
    with pytest.raises(stratum.InvalidInput, match=message):
        store.add_input(doc, value)
    assert store.get(doc).inputs == ()


def test_nesting_is_capped_and_a_list_holding_itself_is_refused(store):
    doc = store.create_doc(b"")
    deep = []
    for _ in range(127):
        deep = [deep]
    store.add_input(doc, deep)  # 128 levels: the engine's limit
    with pytest.raises(stratum.InvalidInput, match="nested deeper than 128"):
        store.add_input(doc, [deep])
    loop = []
    loop.append(loop)
    with pytest.raises(stratum.InvalidInput, match="holds itself"):
        store.add_input(doc, {"a": loop})
    assert len(store.get(doc).inputs) == 1


def test_bodies_are_bytes_or_str(store):
    a = store.create_doc(b"\xff\x00\xfe")
    b = store.create_doc("héllo")
    c = store.create_doc(bytearray(b"ba"))
    d = store.create_doc()
    assert store.get(a).body == b"\xff\x00\xfe"
    assert store.get(b).body == "héllo".encode() and store.get(b).text == "héllo"
    assert store.get(c).body == b"ba" and store.get(d).body == b""
    with pytest.raises(UnicodeDecodeError):
        store.get(a).text
    with pytest.raises(UnicodeDecodeError):
        store.get_problem_html(a)
    with pytest.raises(stratum.InvalidInput, match="a body is bytes or str, not int"):
        store.create_doc(12)
    assert '"body_base64":"/wD+"' in store.get(a).to_json()


def test_a_lone_surrogate_an_earlier_build_stored_reads_back(store, cli):
    # Today's writers refuse lone surrogates; stores an earlier build wrote
    # may hold them. Write stand-in escapes, then patch them into lone
    # surrogates and give the record a valid checksum again.
    store.close()
    cli.ok("create-doc", "x")
    cli.ok("add-input", "1", '["\\u0041", "\\u0042x", "\\ud83d\\ude00"]')
    rec = next(
        json.loads(line)
        for line in cli.ok("dump", "--records").splitlines()
        if json.loads(line)["kind"] == "input-put"
    )
    path = cli.dir / "active.seg"
    data = bytearray(path.read_bytes())
    at, size = rec["offset"], rec["size"]
    r = data[at : at + size]
    r = r.replace(b"\\u0041", b"\\ud800").replace(b"\\u0042", b"\\udc00")
    r[:4] = zlib.crc32(bytes(r[4:])).to_bytes(4, "little")
    data[at : at + size] = r
    path.write_bytes(bytes(data))
    with stratum.open(cli.dir, write=False) as reader:
        assert reader.get(1).inputs[0].input == ["\ud800", "\udc00x", "😀"]
        assert reader.get(1, raw=True).inputs[0].input.text == '["\\ud800","\\udc00x","\\ud83d\\ude00"]'
