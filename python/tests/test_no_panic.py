"""No Rust panic reaches Python: hostile ids, and every single-byte
corruption of a small store, end in a stratum.Error or a correct answer,
never in pyo3's PanicException (a BaseException) or a crash."""

import shutil

import pytest

import stratum


def test_hostile_ids(store):
    doc = store.create_doc(b"x")
    store.add_input(doc, 1)
    for bad in (0, 2**53, 2**53 - 1, 2**64 - 1):
        with pytest.raises(stratum.NotFound):
            store.get(bad)
        with pytest.raises(stratum.NotFound):
            store.get_node(doc, bad)
        with pytest.raises(stratum.NotFound):
            store.add_input(bad, 1)
        with pytest.raises(stratum.NotFound):
            store.set_output(doc, bad, 1)
    for out_of_range in (-1, 2**64):
        with pytest.raises(OverflowError):
            store.get(out_of_range)
    assert store.get(doc).inputs[0].input == 1


def test_every_flipped_byte_is_an_error_or_an_answer(data, tmp_path):
    with stratum.open(data) as s:
        doc = s.create_doc(b"<p>body</p>", category="c", version="v")
        n = s.add_input(doc, {"a": [1, 2.5, "x"]}, output=[3])
        s.set_output(doc, n, {"b": None})
        s.add_input(doc, "second")
        s.delete_input(doc, s.add_input(doc, "gone"))
    seg = (data / "active.seg").read_bytes()
    work = tmp_path / "flipped"
    outcomes = {"answer": 0, "error": 0}
    for at in range(len(seg)):
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(data, work)
        damaged = bytearray(seg)
        damaged[at] ^= 0x5A
        (work / "active.seg").write_bytes(bytes(damaged))
        try:
            with stratum.open(work, write=False) as r:
                for d in r.docs():
                    d.to_json()
                r.stats()
                r.verify()
            outcomes["answer"] += 1
        except stratum.Error:
            outcomes["error"] += 1
        # Write mode recovers (a torn tail is cut off) and then writes.
        try:
            with stratum.open(work) as w:
                w.add_input(w.create_doc(b"after"), 1)
                w.verify()
        except stratum.Error:
            pass
        # Anything else (PanicException is a BaseException) fails the test.
    assert outcomes["error"] > 0 and sum(outcomes.values()) == len(seg)
