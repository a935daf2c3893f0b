"""Locks and concurrency: readers at once in threads and in processes, one
handle shared by threads, and the interpreter lock released while the
engine works (here: while it waits for a lock)."""

import multiprocessing
import threading
import time

import pytest

import stratum


@pytest.fixture
def filled(data):
    with stratum.open(data) as s:
        with s.batch():
            for i in range(50):
                doc = s.create_doc(f"doc {i}")
                s.add_input(doc, [i, i + 1], output=2 * i + 1)
    return data


def test_threads_with_a_read_handle_each_read_at_once(filled):
    n = 8
    barrier = threading.Barrier(n, timeout=30)
    results, errors = [], []

    def reader():
        try:
            # lock_timeout=0: a shared lock that did not share would fail here.
            with stratum.open(filled, write=False, lock_timeout=0) as r:
                barrier.wait()  # every thread holds its handle now
                got = [r.get(doc).inputs[0].output for doc in range(1, 51) for _ in range(10)]
                results.append(got)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = [2 * (doc - 1) + 1 for doc in range(1, 51) for _ in range(10)]
    assert results == [expected] * n


def _process_reader(path, barrier, queue):
    try:
        with stratum.open(path, write=False, lock_timeout=0) as r:
            barrier.wait(timeout=60)
            queue.put(sum(r.get(doc).inputs[0].output for doc in range(1, 51)))
    except BaseException as e:  # noqa: BLE001 - sent to the parent
        queue.put(repr(e))


def test_processes_with_read_handles_read_at_once(filled):
    ctx = multiprocessing.get_context("spawn")
    n = 4
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    # The parent holds a read handle too, all along.
    with stratum.open(filled, write=False) as mine:
        procs = [ctx.Process(target=_process_reader, args=(str(filled), barrier, queue)) for _ in range(n)]
        for p in procs:
            p.start()
        got = [queue.get(timeout=120) for _ in range(n)]
        for p in procs:
            p.join(timeout=60)
        assert mine.get(1).inputs[0].output == 1
    assert got == [sum(2 * i + 1 for i in range(50))] * n
    assert [p.exitcode for p in procs] == [0] * n


def test_one_handle_shared_by_threads(data):
    with stratum.open(data, sync=False) as s:
        doc = s.create_doc(b"shared")
        errors = []

        def writer(k):
            try:
                for i in range(100):
                    s.add_input(doc, [k, i])
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        inputs = [n.input for n in s.get(doc).inputs]
        assert sorted(map(tuple, inputs)) == sorted((k, i) for k in range(4) for i in range(100))
        assert [n.id for n in s.get(doc).inputs] == list(range(1, 401))


def test_the_interpreter_runs_other_threads_while_a_call_waits(data):
    holder = stratum.open(data)
    outcome = {}
    started = threading.Event()

    def opener():
        started.set()
        try:
            outcome["store"] = stratum.open(data, lock_timeout=60)
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=opener)
    t.start()
    started.wait()
    # The other thread is inside `open`, waiting for the lock we hold. Had it
    # kept the interpreter lock, this loop could not run until it gave up.
    spins = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 0
    assert t.is_alive() and outcome == {}
    holder.close()
    t.join(timeout=60)
    assert "error" not in outcome
    with outcome["store"] as s:
        assert s.writable
