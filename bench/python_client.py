#!/usr/bin/env python3
"""Per-call cost from Python: the stratum module, the subprocess client, and
Python's sqlite3 module, side by side in one run.

    pip install ./python                         # the module, once
    python3 bench/python_client.py               # prints the table
    python3 bench/python_client.py --write-md    # also rewrites its section of docs/BENCHMARKS.md

One store and one sqlite3 database hold the same generated documents (an
HTML body of a few hundred bytes and a few small JSON inputs with outputs
each). Each case times single calls with time.perf_counter_ns and reports
the median:

- get: one whole document into Python values, by a random id. The module's
  `Store.get`; `stratum get ID` run as a subprocess and its line parsed with
  json.loads (the way a script without the module calls stratum); and
  sqlite3's two SELECTs (the document, then its nodes by primary key) with
  json.loads of each stored value. The module and sqlite3 are timed call by
  call in alternation, so machine noise falls on both alike.
- get, raw: the same without making Python values (the module's
  `get(raw=True)`, sqlite3's rows of text).
- add_input, durable: one input appended and fsynced (the module with
  sync=True, `stratum add-input`, sqlite3 INSERT + COMMIT in WAL mode with
  synchronous=FULL); and the same without fsync (sync=False,
  synchronous=OFF).
- bulk: every input of a dataset of the benchmark's size in one atomic
  batch (`with store.batch()`, one call per document and input, against
  one sqlite3 transaction of INSERTs), and the same in one `Store.load`
  call.

Python standard library plus the installed module. Exit status 1 when the
module and sqlite3 return different documents, else 0: the benchmark
reports, it does not judge.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "python"
MD_PATH = ROOT / "docs" / "BENCHMARKS.md"
MD_BEGIN = "<!-- bench/python_client.py: begin -->"
MD_END = "<!-- bench/python_client.py: end -->"

try:
    import stratum
except ImportError:
    sys.exit("python_client.py: the stratum module is not installed (pip install ./python)")

SCHEMA = (
    "CREATE TABLE docs(id INTEGER PRIMARY KEY, category TEXT, version TEXT, body BLOB);"
    "CREATE TABLE nodes(doc_id INTEGER, node_id INTEGER, input TEXT, output TEXT,"
    " PRIMARY KEY(doc_id, node_id)) WITHOUT ROWID;"
)


def workload(docs: int, seed: int):
    """Documents like the original client's: an HTML body and a few cases."""
    rng = random.Random(seed)
    out = []
    for i in range(docs):
        body = f"<h1>Problem {i}</h1><p>" + " ".join(
            rng.choice(["sum", "array", "target", "indices", "return", "given", "café"])
            for _ in range(rng.randint(30, 60))
        ) + "</p>"
        cases = []
        for _ in range(rng.randint(3, 8)):
            nums = [rng.randint(-1000, 1000) for _ in range(rng.randint(2, 8))]
            kind = rng.randrange(3)
            if kind == 0:
                cases.append((nums, [0, len(nums) - 1]))
            elif kind == 1:
                cases.append(({"n": rng.randint(1, 99), "mode": "fast", "w": rng.random()}, rng.randint(0, 9)))
            else:
                cases.append(("s" * rng.randint(1, 20), True))
        out.append((body, rng.choice(["easy", "medium", "hard"]), "1.0", cases))
    return out


def text(v) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def fill(store_dir: Path, db_path: Path, data) -> None:
    with stratum.open(store_dir, sync=False) as s, s.batch():
        for body, cat, ver, cases in data:
            doc = s.create_doc(body, category=cat, version=ver)
            for value, expected in cases:
                s.add_input(doc, value, output=expected)
    db = sqlite3.connect(db_path)
    db.executescript("PRAGMA journal_mode=WAL;" + SCHEMA)
    with db:
        for i, (body, cat, ver, cases) in enumerate(data, start=1):
            db.execute("INSERT INTO docs VALUES (?,?,?,?)", (i, cat, ver, body.encode()))
            db.executemany(
                "INSERT INTO nodes VALUES (?,?,?,?)",
                [(i, n, text(v), text(o)) for n, (v, o) in enumerate(cases, start=1)],
            )
    db.close()


def sqlite_get(db, doc_id: int, parse: bool):
    row = db.execute("SELECT category, version, body FROM docs WHERE id=?", (doc_id,)).fetchone()
    nodes = db.execute(
        "SELECT node_id, input, output FROM nodes WHERE doc_id=? ORDER BY node_id", (doc_id,)
    ).fetchall()
    if parse:
        nodes = [(n, json.loads(i), None if o is None else json.loads(o)) for n, i, o in nodes]
    return row, nodes


def timed(fn) -> int:
    t = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t


def median_us(samples) -> float:
    return statistics.median(samples) / 1000


def fmt_us(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    if us >= 100:
        return f"{us:.0f} µs"
    return f"{us:.1f} µs"


def run(args) -> int:
    if args.stratum:
        binary = args.stratum
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "stratum"], cwd=ROOT, check=True)
        binary = str(ROOT / "target" / "release" / "stratum")
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    store_dir, db_path = WORK / "store", WORK / "db.sqlite"
    data = workload(args.docs, args.seed)
    fill(store_dir, db_path, data)
    rng = random.Random(args.seed + 1)
    ids = [rng.randint(1, args.docs) for _ in range(args.calls)]
    load_start = os.getloadavg()[0]
    results = []  # (case, module µs, subprocess µs or None, sqlite3 µs, calls)
    failures = 0

    # get: the module and sqlite3 alternate call by call.
    store = stratum.open(store_dir, write=False)
    db = sqlite3.connect(db_path)
    for doc_id in ids[:200]:  # warm both
        store.get(doc_id)
        sqlite_get(db, doc_id, True)
    for raw in (False, True):
        mod, sql = [], []
        for doc_id in ids:
            got = []
            mod.append(timed(lambda: got.append(store.get(doc_id, raw=raw))))
            sql.append(timed(lambda: got.append(sqlite_get(db, doc_id, not raw))))
            if not raw:
                d, (row, nodes) = got
                if (d.category, d.version, d.body) != row or [(n.id, n.input, n.output) for n in d.inputs] != nodes:
                    failures += 1
        results.append(("get, raw" if raw else "get", median_us(mod), None, median_us(sql), len(ids)))
    store.close()

    # get through a subprocess per call (the store is free: no handle open).
    sub = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    for doc_id in ids[: args.subprocess_calls]:
        cmd = [binary, "--dir", str(store_dir), "get", str(doc_id)]
        sub.append(timed(lambda: json.loads(subprocess.run(cmd, capture_output=True, check=True, env=env).stdout)))
    case, m, _, s, n = results[0]
    results[0] = (case, m, median_us(sub), s, n)

    # add_input, durable and not: module and sqlite3 alternate.
    for sync in (True, False):
        calls = args.durable_calls if sync else args.calls
        store = stratum.open(store_dir, sync=sync)
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("PRAGMA synchronous=" + ("FULL" if sync else "OFF"))
        mod, sql = [], []
        for k, doc_id in enumerate(ids[:calls]):
            value = [k, doc_id, "case"]
            mod.append(timed(lambda: store.add_input(doc_id, value, output=k)))

            def sqlite_add():
                db.execute("BEGIN")
                (n,) = db.execute("SELECT coalesce(max(node_id),0)+1 FROM nodes WHERE doc_id=?", (doc_id,)).fetchone()
                db.execute("INSERT INTO nodes VALUES (?,?,?,?)", (doc_id, n, text(value), text(k)))
                db.execute("COMMIT")

            sql.append(timed(sqlite_add))
        store.close()
        db.close()
        sub_us = None
        if sync:
            sub = []
            for k, doc_id in enumerate(ids[: args.subprocess_calls]):
                cmd = [binary, "--dir", str(store_dir), "add-input", str(doc_id), text([k, "sub"]), "--output", str(k)]
                sub.append(timed(lambda: subprocess.run(cmd, capture_output=True, check=True, env=env)))
            sub_us = median_us(sub)
        results.append(
            ("add_input, durable" if sync else "add_input, no fsync", median_us(mod), sub_us, median_us(sql), calls)
        )

    # bulk: the whole dataset's inputs in one atomic batch, into empty stores.
    bulk_store, bulk_db = WORK / "bulk-store", WORK / "bulk.sqlite"
    cases = sum(len(c) for *_, c in data)
    mod, sql = [], []
    for rep in range(args.reps):
        shutil.rmtree(bulk_store, ignore_errors=True)
        bulk_db.unlink(missing_ok=True)
        t = time.perf_counter_ns()
        with stratum.open(bulk_store) as s, s.batch():
            for body, cat, ver, cs in data:
                doc = s.create_doc(body, category=cat, version=ver)
                for value, expected in cs:
                    s.add_input(doc, value, output=expected)
        mod.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        db = sqlite3.connect(bulk_db)
        db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" + SCHEMA)
        with db:
            for i, (body, cat, ver, cs) in enumerate(data, start=1):
                db.execute("INSERT INTO docs VALUES (?,?,?,?)", (i, cat, ver, body.encode()))
                for n, (v, o) in enumerate(cs, start=1):
                    db.execute("INSERT INTO nodes VALUES (?,?,?,?)", (i, n, text(v), text(o)))
        db.close()
        sql.append(time.perf_counter_ns() - t)
    results.append((f"bulk: {args.docs:,} documents, {cases:,} inputs, one batch", median_us(mod), None, median_us(sql), args.reps))
    # The same data through `Store.load`, one call for the whole dataset.
    docs_shape = [
        {"category": cat, "version": ver, "body": body, "inputs": [{"input": v, "output": o} for v, o in cs]}
        for body, cat, ver, cs in data
    ]
    mod = []
    for rep in range(args.reps):
        shutil.rmtree(bulk_store, ignore_errors=True)
        t = time.perf_counter_ns()
        with stratum.open(bulk_store) as s:
            s.load(docs_shape)
        mod.append(time.perf_counter_ns() - t)
    results.append(("bulk: the same through `Store.load` (one call)", median_us(mod), None, median_us(sql), args.reps))

    print_report(args, results, cases, load_start, failures)
    return 1 if failures else 0


def table(args, results) -> list[str]:
    lines = [
        "| case | module | subprocess client | sqlite3 module | subprocess / module | module / sqlite3 | calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, m, sub, s, n in results:
        lines.append(
            f"| {case} | {fmt_us(m)} | {fmt_us(sub) if sub else '—'} | {fmt_us(s)} | "
            f"{f'{sub / m:.0f}×' if sub else '—'} | {m / s:.2f} | {n:,} |"
        )
    return lines


def print_report(args, results, cases, load_start, failures) -> None:
    lines = [
        MD_BEGIN,
        "## From Python: the module, the subprocess client and sqlite3",
        "",
        "Generated by `bench/python_client.py` (its own section: `bench/run.py --write-md` rewrites the rest of this file).",
        "",
        f"Workload: {args.docs:,} documents of a few hundred bytes of HTML with 3–8 small JSON inputs "
        f"each ({cases:,} inputs, all with outputs), seed {args.seed}; ids drawn at random. Medians of "
        f"single calls timed with `time.perf_counter_ns`; the module and sqlite3 alternate call by call. "
        f"`get` makes Python values of every field (sqlite3: two SELECTs by primary key and `json.loads` "
        f"of each value); `get, raw` leaves the values as text. Durable writes fsync (module `sync=True`, "
        f"`stratum add-input`, sqlite3 WAL with `synchronous=FULL`); the bulk cases are one atomic batch "
        f"(a call per document and input, or one `load` call) against one transaction, {args.reps} repetitions. module / sqlite3 below 1 means the module is faster.",
        "",
        *table(args, results),
        "",
        f"Goals (issue 12): a small document's `get` in tens of microseconds: {fmt_us(results[0][1])}; "
        f"at least 50× cheaper than the subprocess call: {results[0][2] / results[0][1]:.0f}×; "
        f"no slower than sqlite3 in-process: module / sqlite3 = {results[0][1] / results[0][3]:.2f}.",
        "",
        f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"sqlite {sqlite3.sqlite_version}, load average {load_start:.2f} at start and {os.getloadavg()[0]:.2f} "
        f"at the end; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "```",
        "pip install ./python && python3 bench/python_client.py --write-md",
        "```",
        MD_END,
    ]
    if failures:
        lines.insert(-1, f"\n**{failures} documents differed between the module and sqlite3.**")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if args.write_md:
        md = MD_PATH.read_text(encoding="utf-8") if MD_PATH.exists() else ""
        if MD_BEGIN in md and MD_END in md:
            head, rest = md.split(MD_BEGIN, 1)
            tail = rest.split(MD_END, 1)[1].lstrip("\n")
            md = head + text_out + (("\n" + tail) if tail else "")
        else:
            md = md.rstrip("\n") + "\n\n" + text_out
        MD_PATH.write_text(md, encoding="utf-8")
        print(f"wrote {MD_PATH.relative_to(ROOT)}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000, help="documents in the store (default 2000)")
    ap.add_argument("--calls", type=int, default=5000, help="timed in-process calls per case (default 5000)")
    ap.add_argument("--subprocess-calls", type=int, default=200, help="timed subprocess calls (default 200)")
    ap.add_argument("--durable-calls", type=int, default=200, help="timed fsynced writes (default 200)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the bulk case (default 3)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stratum", help="the CLI binary (default: build target/release/stratum)")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    ap.add_argument("--write-md", action="store_true", help=f"rewrite this benchmark's section of {MD_PATH.relative_to(ROOT)}")
    args = ap.parse_args()
    if args.quick:
        args.docs, args.calls, args.subprocess_calls, args.durable_calls, args.reps = 200, 300, 20, 20, 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
