"""Cost follows the work: a call through the module makes the system calls
of that one operation and no more (no reopen, no extra lock or stat per
call), at any store size. Counted with strace, which does not vary."""

import collections
import shutil
import subprocess
import sys

import pytest

import stratum

CHILD = """
import sys, stratum
path, op, n, docs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with stratum.open(path, write=(op not in ("get", "key", "list-id", "list-key"))) as s:
    if op == "get":
        for k in range(n):
            s.get(k % docs + 1)
    elif op == "key":
        for k in range(n):
            s.get(f"key {k % docs + 1}")
    elif op == "list-id":
        for k in range(n):
            s.list(ids=k % docs + 1)
    elif op == "list-key":
        for k in range(n):
            s.list(key=f"key {k % docs + 1}")
    elif op == "add":
        for k in range(n):
            s.add_input(k % docs + 1, [k, "x"], output=k)
    else:
        with s.batch():
            for k in range(n):
                s.add_input(k % docs + 1, [k, "x"], output=k)
"""


def syscalls(path, op, n, docs):
    strace = shutil.which("strace")
    assert strace, "strace is needed (.ci/run installs it)"
    out = path.parent / f"strace-{op}-{n}"
    subprocess.run(
        [strace, "-f", "-c", "-o", str(out), sys.executable, "-c", CHILD, str(path), op, str(n), str(docs)],
        check=True,
    )
    counts = collections.Counter()
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts


def make_store(path, docs, keys=False):
    with stratum.open(path, sync=False) as s, s.batch():
        for i in range(docs):
            d = s.create_doc(f"body {i}", key=f"key {i + 1}" if keys else None)
            for j in range(3):
                s.add_input(d, [i, j], output=j)


@pytest.mark.parametrize("docs", [100, 2000])
def test_each_get_reads_its_records_and_nothing_else(tmp_path, docs):
    path = tmp_path / "s"
    make_store(path, docs)
    base = syscalls(path, "get", 100, docs)
    more = syscalls(path, "get", 300, docs)
    # One positioned read per record of the document (the document record
    # and its three inputs), whatever the store's size.
    assert more - base == collections.Counter({"pread64": 800})


@pytest.mark.parametrize("compacted", [False, True], ids=["active", "sealed"])
@pytest.mark.parametrize("docs", [100, 2000])
def test_a_get_by_key_costs_a_get_by_id_and_one_more_read(tmp_path, docs, compacted):
    path = tmp_path / "s"
    make_store(path, docs, keys=True)
    if compacted:
        # Sealed into a segment with its index file, as a store grows to be.
        with stratum.open(path) as s:
            s.compact()
    # The calls go round the first 50 documents, so the index blocks they
    # need are all read (and cached) in the first 100 calls: what is left is
    # the cost of each call.
    by_id = syscalls(path, "get", 300, 50) - syscalls(path, "get", 100, 50)
    by_key = syscalls(path, "key", 300, 50) - syscalls(path, "key", 100, 50)
    # The key's document record is read once to check the key; the rest is
    # what a get by id does, whatever the store's size.
    assert by_key - by_id == collections.Counter({"pread64": 200})
    assert by_id - by_key == collections.Counter()


@pytest.mark.parametrize("docs", [100, 2000])
def test_a_selection_by_key_or_id_costs_a_get(tmp_path, docs):
    path = tmp_path / "s"
    make_store(path, docs, keys=True)
    with stratum.open(path) as s:
        s.compact()
    cost = lambda op: syscalls(path, op, 300, 50) - syscalls(path, op, 100, 50)
    # list(key=...) and list(ids=N) look the document up as get does,
    # whatever the store's size, rather than read the store.
    by_key, by_id = cost("key"), cost("get")
    assert by_key["pread64"] == by_id["pread64"] + 200
    assert cost("list-key") == by_key
    assert cost("list-id") == by_id


def test_each_durable_add_input_is_one_write_and_one_fsync(tmp_path):
    path = tmp_path / "s"
    make_store(path, 100)
    base = syscalls(path, "add", 50, 100)
    more = syscalls(path, "add", 150, 100)
    assert more - base == collections.Counter({"pwrite64": 100, "fdatasync": 100})


def test_a_batch_syncs_once_however_many_writes(tmp_path):
    path = tmp_path / "s"
    make_store(path, 100)
    small = syscalls(path, "batch", 10, 100)
    large = syscalls(path, "batch", 1000, 100)
    # The batch's records, then its commit record: two fsyncs, and the
    # writes buffered into a few large ones.
    assert small["fdatasync"] == large["fdatasync"] == 2
    assert large["pwrite64"] == small["pwrite64"] == 2
