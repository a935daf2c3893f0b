"""The handle's methods, end to end on a real store."""

import json

import pytest

import stratum
from conftest import snapshot


def test_create_add_set_get_round_trip(store):
    doc = store.create_doc("<p>Add two numbers.</p>", category="easy", version="v1")
    n1 = store.add_input(doc, [1, 2], output=3)
    n2 = store.add_input(doc, {"a": "b"})
    store.set_output(doc, n2, "ok")
    d = store.get(doc)
    assert (d.id, d.category, d.version, d.body) == (doc, "easy", "v1", b"<p>Add two numbers.</p>")
    assert [(n.id, n.input, n.output) for n in d.inputs] == [(n1, [1, 2], 3), (n2, {"a": "b"}, "ok")]
    assert store.get_node(doc, n1).input == [1, 2]
    assert d.to_json() == (
        '{"id":1,"category":"easy","version":"v1","body":"<p>Add two numbers.</p>",'
        '"inputs":[{"node":1,"input":[1,2],"output":3},{"node":2,"input":{"a":"b"},"output":"ok"}]}'
    )
    assert store.get(doc) == d
    assert store.get_node(doc, n1) == d.inputs[0]
    assert store.get_node(doc, n1) != d.inputs[1]


def test_update_doc_replaces_only_what_it_is_given(store):
    doc = store.create_doc(b"old", category="c", version="v1")
    store.add_input(doc, 1)
    store.update_doc(doc, version="v2")
    d = store.get(doc)
    assert (d.body, d.category, d.version, len(d.inputs)) == (b"old", "c", "v2", 1)
    store.update_doc(doc, body="new", category="k")
    d = store.get(doc)
    assert (d.body, d.category, d.version, len(d.inputs)) == (b"new", "k", "v2", 1)


def test_deletes_and_ids_never_reused(store):
    a = store.create_doc(b"a")
    b = store.create_doc(b"b")
    n1 = store.add_input(a, 1)
    n2 = store.add_input(a, 2)
    store.delete_input(a, n1)
    assert [n.id for n in store.get(a).inputs] == [n2]
    assert store.add_input(a, 3) == n2 + 1
    store.delete_doc(b)
    with pytest.raises(stratum.NotFound):
        store.get(b)
    assert store.create_doc(b"c") == b + 1


def test_docs_iterates_in_id_order_and_tolerates_writes(store):
    ids = [store.create_doc(f"doc {i}") for i in range(5)]
    it = store.docs()
    first = next(it)
    assert first.id == ids[0]
    store.delete_doc(ids[2])  # deleted before it is reached: skipped
    store.create_doc(b"late")  # created after the ids were taken: not visited
    store.set_output(ids[0], store.add_input(ids[0], 1), 2)
    rest = [d.id for d in it]
    assert rest == [ids[1], ids[3], ids[4]]
    assert [d.body for d in store.docs()] == [b"doc 0", b"doc 1", b"doc 3", b"doc 4", b"late"]
    raw = next(store.docs(raw=True))
    assert raw.inputs[0].input == stratum.Json("1")


def test_list_mirrors_the_cli(store, cli):
    a = store.create_doc(b"abc", category="x")
    store.add_input(a, 1, output=2)
    store.add_input(a, 3)
    store.create_doc(b"", version="v", key="two")
    rows = store.list()
    assert rows == [
        {"id": 1, "key": None, "category": "x", "version": None, "inputs": 2, "outputs": 1, "body_bytes": 3},
        {"id": 2, "key": "two", "category": None, "version": "v", "inputs": 0, "outputs": 0, "body_bytes": 0},
    ]
    assert store.list(category="x") == rows[:1]
    store.close()
    assert [json.loads(l) for l in cli.ok("list", "--json").splitlines()] == rows


def test_batch_commits_together(store, data):
    with store.batch():
        assert store.in_batch
        doc = store.create_doc(b"in a batch")
        node = store.add_input(doc, [1])
        # Reads inside the batch see its writes.
        assert store.get(doc).inputs[0].id == node
        store.set_output(doc, node, 2)
    assert not store.in_batch
    assert store.get_node(doc, node).output == 2
    store.close()
    with stratum.open(data, write=False) as r:
        assert r.get(doc).inputs[0].output == 2


def test_batch_rolls_back_on_an_exception_and_the_store_is_unchanged(store, data):
    store.create_doc(b"before")
    before = snapshot(data)
    with pytest.raises(RuntimeError, match="boom"):
        with store.batch():
            doc = store.create_doc(b"doomed")
            store.add_input(doc, 1)
            raise RuntimeError("boom")
    assert snapshot(data) == before
    with pytest.raises(stratum.NotFound):
        store.get(doc)
    # The handle is usable again, and the rolled-back id is free.
    assert store.create_doc(b"after") == doc


def test_a_caught_error_inside_a_batch_does_not_end_it(store):
    with store.batch():
        doc = store.create_doc(b"x")
        with pytest.raises(stratum.NotFound):
            store.add_input(doc + 100, 1)
        store.add_input(doc, 1)
    assert len(store.get(doc).inputs) == 1


def test_batches_do_not_nest_and_maintenance_waits_for_the_end(store, tmp_path):
    with store.batch():
        with pytest.raises(stratum.InvalidInput, match="do not nest"):
            with store.batch():
                pass
        with pytest.raises(stratum.InvalidInput, match="inside a batch"):
            store.compact()
        with pytest.raises(stratum.InvalidInput, match="inside a batch"):
            store.verify()
        with pytest.raises(stratum.InvalidInput, match="inside a batch"):
            store.backup(tmp_path / "b")
        doc = store.create_doc(b"kept")
    assert store.get(doc).body == b"kept"


def test_a_large_batch_is_one_commit(store, data):
    with store.batch():
        doc = store.create_doc(b"many")
        for i in range(2000):
            store.add_input(doc, i, output=i * 2)
    d = store.get(doc)
    assert len(d.inputs) == 2000 and d.inputs[-1].output == 3998


def test_read_handles_refuse_writes_and_change_nothing(data):
    with stratum.open(data) as w:
        doc = w.create_doc(b"x")
    before = snapshot(data)
    with stratum.open(data, write=False) as r:
        assert not r.writable
        for call in (
            lambda: r.create_doc(b"y"),
            lambda: r.add_input(doc, 1),
            lambda: r.set_output(doc, 1, 1),
            lambda: r.clear_output(doc, 1),
            lambda: r.update_input(doc, 1, meta={"a": 1}),
            lambda: r.update_doc(doc, body=b"z"),
            lambda: r.update_doc(doc, key=stratum.CLEAR),
            lambda: r.delete_doc(doc),
            lambda: r.delete_input(doc, 1),
            lambda: r.compact(),
            lambda: r.batch(),
        ):
            with pytest.raises(stratum.Error, match="write=False"):
                call()
        assert r.get(doc).body == b"x"
    assert snapshot(data) == before


def test_a_closed_handle_refuses_everything(data):
    s = stratum.open(data)
    doc = s.create_doc(b"x")
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(stratum.Error, match="closed"):
        s.get(doc)
    with pytest.raises(stratum.Error, match="closed"):
        s.create_doc(b"y")
    with pytest.raises(stratum.Error, match="closed"):
        s.stats()


def test_context_manager_releases_the_lock(data):
    with stratum.open(data) as s:
        s.create_doc(b"x")
    assert s.closed
    # Exclusive again at once: the first handle let go of its lock.
    with stratum.open(data, lock_timeout=0) as s2:
        assert s2.get(1).body == b"x"


def test_stats_compact_verify_backup(store, tmp_path):
    doc = store.create_doc(b"x" * 100, category="c")
    node = store.add_input(doc, [1, 2, 3])
    for i in range(20):
        store.set_output(doc, node, i)
    stats = store.stats()
    assert stats["documents"] == 1 and stats["inputs"] == 1 and stats["outputs"] == 1
    assert stats["garbage_ratio"] > 0.3
    assert stats["last_compaction"] is None
    report = store.compact()
    assert report["documents"] == 1
    assert report["segments_before"] == 1
    after = store.stats()
    assert after["last_compaction"] is not None
    assert after["live_bytes"] == after["total_bytes"] - sum(s["dead_bytes"] for s in after["segments"])
    assert after["garbage_ratio"] < stats["garbage_ratio"]
    assert store.get_node(doc, node).output == 19

    # A write handle verifies too (it lets go of its lock meanwhile), and
    # keeps working afterwards.
    v = store.verify()
    assert v["ok"] and v["problems"] == [] and v["records"] > 0
    assert {f["name"] for f in v["files"]} >= {"active.seg"}
    store.add_input(doc, "after verify")

    dest = tmp_path / "copy"
    b = store.backup(dest)
    # An independent copy by default: nothing shared with the store.
    assert b["linked"] == 0 and b["copied"] > 0 and b["bytes"] > 0
    with stratum.open(dest, write=False) as copy:
        assert copy.get(doc) == store.get(doc)
        assert copy.verify()["ok"]
    with pytest.raises(stratum.InvalidInput, match="not empty"):
        store.backup(dest)


def test_stats_and_verify_have_the_clis_fields(store, cli):
    store.create_doc(b"x")
    ours_stats = store.stats()
    store.close()
    theirs = json.loads(cli.ok("stats", "--json"))
    assert ours_stats == theirs
    with stratum.open(cli.dir, write=False) as r:
        assert r.verify() == json.loads(cli.ok("verify", "--json"))


def test_sync_false_and_lock_timeout_are_checked(data):
    with stratum.open(data, sync=False) as s:
        doc = s.create_doc(b"fast")
    with stratum.open(data, write=False) as r:
        assert r.get(doc).body == b"fast"
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(stratum.InvalidInput, match="lock_timeout"):
            stratum.open(data, lock_timeout=bad)


def test_repr_and_path(store, data):
    assert store.path == data
    assert "write, open" in repr(store)
    doc = store.create_doc(b"abc", category="c")
    store.add_input(doc, [1], output=2.5)
    assert repr(store.get(doc)) == "Document(id=1, category='c', version=None, body=<3 bytes>, inputs=<1 nodes>)"
    assert repr(store.get_node(doc, 1)) == "Node(id=1, input=[1], output=2.5)"


def test_a_torn_tail_is_repaired_and_reported_as_the_cli_reports_it(data, tmp_path, caplog, stratum_bin):
    import logging
    import shutil
    import subprocess

    with stratum.open(data) as s:
        doc = s.create_doc(b"kept")
    with open(data / "active.seg", "ab") as f:
        f.write(b"\x01\x02\x03 half a record")
    twin = tmp_path / "twin"
    shutil.copytree(data, twin)
    with caplog.at_level(logging.WARNING, logger="stratum"):
        with stratum.open(data) as s:
            assert s.get(doc).body == b"kept"
            notices = s.notices
    assert len(notices) == 1 and "discarded 17 bytes of an incomplete write" in notices[0]
    assert [r.getMessage() for r in caplog.records] == [f"note: {notices[0]}"]
    # The CLI's first write on the twin reports the same repair.
    r = subprocess.run([stratum_bin, "--dir", str(twin), "add-input", str(doc), "1"], capture_output=True)
    assert r.returncode == 0
    assert r.stderr.decode() == f"stratum: note: {notices[0].replace(str(data), str(twin))}\n"


def test_load_stores_documents_in_the_get_shape_all_or_nothing(store, data, cli):
    ids = store.load(
        [
            {"category": "c", "body": "<p>one</p>", "inputs": [{"input": [1, 2], "output": 3}, {"input": "x"}]},
            {"body": b"\xff\x00", "version": "v", "inputs": [{"input": stratum.Json("1.50"), "output": None}]},
            {"body": b"utf-8 bytes"},
        ]
    )
    assert ids == [1, 2, 3]
    assert store.get(1).to_json() == (
        '{"id":1,"category":"c","version":null,"body":"<p>one</p>",'
        '"inputs":[{"node":1,"input":[1,2],"output":3},{"node":2,"input":"x","output":null}]}'
    )
    assert store.get(2).body == b"\xff\x00" and store.get(2, raw=True).inputs[0].input.text == "1.50"
    assert store.get(3).text == "utf-8 bytes"
    before = snapshot(data)
    with pytest.raises(stratum.InvalidInput) as e:
        store.load([{"body": "fine"}, {"body": "fine"}, {"body": "x", "colour": "red"}])
    assert snapshot(data) == before
    assert str(e.value).startswith('document 3: unknown field "colour" in a document')
    with pytest.raises(stratum.InvalidInput, match="document 2: a document is a dict"):
        store.load([{}, 7])
    # A failure while writing (an id taken, with keep_ids) rolls all back.
    with pytest.raises(stratum.InvalidInput, match="document 2: document id 1 is already used"):
        store.load([{"id": 90, "inputs": []}, {"id": 1, "inputs": []}], keep_ids=True)
    assert snapshot(data) == before
    assert store.create_doc(b"usable after") == 4
    store.close()
    # The CLI's load says the same of the same line.
    bad = data.parent / "bad.jsonl"
    bad.write_text('{"body":"fine"}\n{"body":"fine"}\n{"body":"x","colour":"red"}\n')
    code, msg = cli.fails("load", str(bad))
    assert code == 4 and msg.replace("line 3", "document 3") == str(e.value)


def test_load_copies_a_store_document_by_document(data, tmp_path):
    with stratum.open(data) as a:
        for i in range(5):
            d = a.create_doc(f"doc {i}", category="k")
            a.add_input(d, stratum.Json("1.0"), output={"i": i})
        a.delete_doc(2)
        src = [d.to_json() for d in a.docs()]
        with stratum.open(tmp_path / "copy") as b:
            assert b.load(a.docs(raw=True), keep_ids=True) == [1, 3, 4, 5]
            assert [d.to_json() for d in b.docs()] == src
            with b.batch():
                ids = b.load([a.get(1)])
                b.add_input(ids[0], 2)
            assert len(b.get(ids[0]).inputs) == 2
