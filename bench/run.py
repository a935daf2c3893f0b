#!/usr/bin/env python3
"""Side-by-side benchmark of the `stratum` CLI and the `sqlite3` CLI.

One command runs it from a clean clone (it builds the release binary first):

    python3 bench/run.py              # full run: 100,000 documents, scaling to 1,000,000
    python3 bench/run.py --quick      # smoke run of a few seconds
    python3 bench/run.py --write-md   # also rewrite docs/BENCHMARKS.md

The workload is generated deterministically from a seed and cached under
bench/work/ (gitignored). Every timed case runs both tools in the same run,
alternating which goes first, and reports medians and the ratio
stratum / sqlite3. Page caches cannot be dropped without privileges, so all
figures are warm-cache. The benchmark reports; it never fails on a ratio.
It exits non-zero only when a command fails or the two tools disagree on
the data they return.

Python standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
MD_PATH = ROOT / "docs" / "BENCHMARKS.md"

# Bump when the generator's output changes, so cached workloads are rebuilt.
GEN_VERSION = 2

CATEGORIES = ["easy", "medium", "hard", "expert", "archived"]
VERSIONS = ["1", "1.1", "2", "2.0.1", "3-beta", "2024.06", "v7"]
KINDS = ["int", "double", "string", "int_list", "string_list", "string_map"]

WORDS = (
    "array sum input output value node graph tree path edge weight query "
    "string number integer prime modulo sort search binary heap stack queue "
    "matrix vector range window prefix suffix palindrome anagram cycle bridge "
    "flow cut match interval segment bit mask greedy dynamic memo recursion "
    "order index hash map set list pair tuple key count limit bound given "
    "return print read line test case example note constraint each every "
    "café naïve größe 数据 テスト"
).split()

SCHEMA_SQL = (
    "PRAGMA journal_mode=WAL;\n"
    "CREATE TABLE docs(id INTEGER PRIMARY KEY, category, version, body);\n"
    "CREATE TABLE nodes(doc_id, node_id, input, output, "
    "PRIMARY KEY(doc_id,node_id)) WITHOUT ROWID;\n"
)

# The schema's columns are untyped, so `nodes.doc_id` has no affinity while
# `docs.id` is an integer: a plain `n.doc_id=d.id` cannot use the primary key
# and scans every node for every document (seconds for 2,000 documents). The
# unary `+` drops the affinity of `d.id`, which lets sqlite search the primary
# key: this is the fastest form of the query, i.e. sqlite3's best showing.
DOC_SELECT = (
    "SELECT json_object('id',d.id,'category',d.category,'version',d.version,"
    "'body',d.body,'inputs',(SELECT json_group_array(json_object('node',n.node_id,"
    "'input',json(n.input),'output',json(n.output))) FROM nodes n "
    "WHERE n.doc_id=+d.id)) FROM docs d"
)

DUMP_JSON_SELECT = (
    "SELECT d.id, d.category, d.version, d.body, (SELECT json_group_array("
    "json_object('node',n.node_id,'input',json(n.input),'output',json(n.output))) "
    "FROM nodes n WHERE n.doc_id=+d.id) AS inputs FROM docs d ORDER BY d.id"
)


class BenchError(Exception):
    """A command failed, or the two tools disagree on the data."""


# ---------------------------------------------------------------- generator


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def make_paragraph_pool(rng: random.Random, count: int = 3000) -> list[str]:
    """HTML fragments of 60-400 bytes; bodies are built from these for speed."""
    pool = []
    for _ in range(count):
        kind = rng.randrange(6)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 45)))
        if kind == 0:
            frag = f"<h2 id=\"s{rng.randrange(1000)}\">{words[:60]}</h2>"
        elif kind == 1:
            frag = f"<pre><code class=\"lang-py\">x = [{rng.randrange(100)}, " \
                   f"{rng.randrange(100)}]\nprint(sum(x)) # {words[:40]}</code></pre>"
        elif kind == 2:
            items = "".join(
                f"<li>{rng.choice(WORDS)} &lt;= {rng.randrange(10**6)}</li>"
                for _ in range(rng.randint(2, 6))
            )
            frag = f"<ul>{items}</ul>"
        else:
            frag = f"<p>{words} <em>{rng.choice(WORDS)}</em> \"{rng.choice(WORDS)}\".</p>"
        pool.append(frag + "\n")
    return pool


def make_body(rng: random.Random, pool: list[str]) -> str:
    head, tail = "<article class=\"problem\">\n", "</article>\n"
    target = rng.randint(512, 3072) - len(head) - len(tail)
    parts, size = [], 0
    while size < target:
        frag = rng.choice(pool)
        if size + len(frag) > 3072 - len(head) - len(tail):
            frag = f"<p>{'x' * max(1, target - size - 8)}</p>\n"
        parts.append(frag)
        size += len(frag)
    return head + "".join(parts) + tail


def make_value(rng: random.Random, kind: str):
    if kind == "int":
        return rng.choice([rng.randint(-100, 100), rng.randint(-(10**12), 10**12)])
    if kind == "double":
        return round(rng.uniform(-1e4, 1e4), rng.randint(1, 6))
    if kind == "string":
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.1:
            text += ' "quoted"\n\ttab'
        return text
    if kind == "int_list":
        return [rng.randint(-(10**6), 10**6) for _ in range(rng.randint(0, 30))]
    if kind == "string_list":
        return [rng.choice(WORDS) for _ in range(rng.randint(0, 10))]
    return {f"{rng.choice(WORDS)}_{i}": rng.choice(WORDS) for i in range(rng.randint(1, 6))}


def doc_kinds(rng: random.Random, doc_id: int, inputs: int) -> list[str]:
    """All six kinds in every document when it has six inputs or more."""
    if inputs >= len(KINDS):
        kinds = KINDS[:]
        rng.shuffle(kinds)
        kinds += [rng.choice(KINDS) for _ in range(inputs - len(KINDS))]
        return kinds
    # Fewer inputs: rotate by id, so all six kinds appear across documents.
    return [KINDS[(doc_id + j) % len(KINDS)] for j in range(inputs)]


@dataclass
class Workload:
    docs: int
    inputs: int
    seed: int
    jsonl: Path
    sql: Path | None
    jsonl_bytes: int = 0

    @property
    def tag(self) -> str:
        return f"n{self.docs}-i{self.inputs}-s{self.seed}-g{GEN_VERSION}"


def workload(docs: int, inputs: int, seed: int, with_sql: bool, log) -> Workload:
    """Generates (or reuses) the JSON Lines workload and, when asked, the SQL load script."""
    w = Workload(docs, inputs, seed, Path(), None)
    w.jsonl = WORK / f"workload-{w.tag}.jsonl"
    w.sql = WORK / f"load-{w.tag}.sql" if with_sql else None
    if w.jsonl.exists() and (w.sql is None or w.sql.exists()):
        w.jsonl_bytes = w.jsonl.stat().st_size
        log(f"reusing {w.jsonl.relative_to(ROOT)} ({w.jsonl_bytes / 1e6:.0f} MB)")
        return w
    log(f"generating {docs:,} documents x {inputs} inputs (seed {seed}) ...")
    WORK.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = make_paragraph_pool(rng)
    tmp_jsonl = w.jsonl.with_suffix(".tmp")
    tmp_sql = w.sql.with_suffix(".tmp") if w.sql else None
    start = time.perf_counter()
    with open(tmp_jsonl, "w", encoding="utf-8", buffering=1 << 20) as jf, (
        open(tmp_sql or os.devnull, "w", encoding="utf-8", buffering=1 << 20)
    ) as sf:
        if tmp_sql:
            sf.write(SCHEMA_SQL)
            sf.write("BEGIN;\n")
        for doc_id in range(1, docs + 1):
            category = CATEGORIES[rng.randrange(len(CATEGORIES))]
            version = VERSIONS[rng.randrange(len(VERSIONS))]
            body = make_body(rng, pool)
            nodes = []
            for node_id, kind in enumerate(doc_kinds(rng, doc_id, inputs), start=1):
                value = dumps(make_value(rng, kind))
                output = dumps(make_value(rng, rng.choice(KINDS)))
                nodes.append((node_id, value, output))
            inputs_json = ",".join(
                f'{{"node":{n},"input":{v},"output":{o}}}' for n, v, o in nodes
            )
            jf.write(
                f'{{"id":{doc_id},"category":{dumps(category)},"version":{dumps(version)},'
                f'"body":{dumps(body)},"inputs":[{inputs_json}]}}\n'
            )
            if tmp_sql:
                sf.write(
                    f"INSERT INTO docs VALUES({doc_id},{sql_str(category)},"
                    f"{sql_str(version)},{sql_str(body)});\n"
                )
                if nodes:
                    rows = ",".join(
                        f"({doc_id},{n},{sql_str(v)},{sql_str(o)})" for n, v, o in nodes
                    )
                    sf.write(f"INSERT INTO nodes VALUES{rows};\n")
        if tmp_sql:
            sf.write("COMMIT;\n")
    if tmp_sql:
        tmp_sql.rename(w.sql)
    tmp_jsonl.rename(w.jsonl)
    w.jsonl_bytes = w.jsonl.stat().st_size
    log(f"  {w.jsonl_bytes / 1e6:.0f} MB of JSON Lines in {time.perf_counter() - start:.1f} s")
    return w


def half_outputs(w: Workload, with_sql: bool) -> tuple[Path, Path | None, int]:
    """New values for every node with (doc + node) even: exactly half when inputs is even.

    Written once as `apply` JSON Lines and as one SQL transaction of UPDATEs.
    """
    apply_path = WORK / f"apply-{w.tag}.jsonl"
    sql_path = WORK / f"update-{w.tag}.sql" if with_sql else None
    count = sum(
        1 for d in range(1, w.docs + 1) for n in range(1, w.inputs + 1) if (d + n) % 2 == 0
    )
    if apply_path.exists() and (sql_path is None or sql_path.exists()):
        return apply_path, sql_path, count
    rng = random.Random(w.seed + 1)
    tmp_a = apply_path.with_suffix(".tmp")
    tmp_s = sql_path.with_suffix(".tmp") if sql_path else None
    with open(tmp_a, "w", encoding="utf-8", buffering=1 << 20) as af, (
        open(tmp_s or os.devnull, "w", encoding="utf-8", buffering=1 << 20)
    ) as sf:
        sf.write("BEGIN;\n")
        for d in range(1, w.docs + 1):
            for n in range(1, w.inputs + 1):
                if (d + n) % 2:
                    continue
                value = dumps(make_value(rng, rng.choice(KINDS)))
                af.write(f'{{"op":"set-output","doc":{d},"node":{n},"output":{value}}}\n')
                sf.write(
                    f"UPDATE nodes SET output={sql_str(value)} WHERE doc_id={d} AND node_id={n};\n"
                )
        sf.write("COMMIT;\n")
    if tmp_s:
        tmp_s.rename(sql_path)
    tmp_a.rename(apply_path)
    return apply_path, sql_path, count


# ---------------------------------------------------------------- running


@dataclass
class Tools:
    stratum: str
    sqlite3: str
    gnu_time: str | None
    # The plain `cargo build --release` binary, when the one measured is
    # another build: `get` is also timed with it, for reference.
    stratum_default: str | None = None

    def st(self, store: Path, *args: str, sync: bool = True) -> list[str]:
        cmd = [self.stratum, "--dir", str(store)]
        if not sync:
            cmd.append("--no-sync")
        return cmd + list(args)

    def sq(self, db: Path, *sql: str, json_mode: bool = False) -> list[str]:
        mode = ["-json"] if json_mode else []
        return [self.sqlite3, "-batch", "-init", os.devnull, *mode, str(db), *sql]


def run(cmd: list[str], stdin: Path | None = None, stdout: Path | None = None,
        capture: bool = False) -> tuple[float, str]:
    """Runs one command; returns (wall seconds, captured stdout when asked)."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    if capture:
        fout = subprocess.PIPE
    elif stdout:
        fout = open(stdout, "wb")
    else:
        fout = subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                              close_fds=False)
        elapsed = time.perf_counter() - start
    finally:
        if stdin:
            fin.close()
        if stdout and not capture:
            fout.close()
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        shown = " ".join(cmd)
        raise BenchError(f"command failed (exit {proc.returncode}): {shown}\n{err}")
    out = proc.stdout.decode(errors="replace") if capture else ""
    return elapsed, out


def peak_rss_kib(tools: Tools, cmd: list[str], stdin: Path | None = None) -> tuple[float, int]:
    """Runs `cmd` under GNU time -v; returns (wall seconds, peak RSS in KiB)."""
    if not tools.gnu_time:
        elapsed, _ = run(cmd, stdin=stdin)
        return elapsed, -1
    report = WORK / "time-v.txt"
    elapsed, _ = run([tools.gnu_time, "-v", "-o", str(report), *cmd], stdin=stdin)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
    if not match:
        raise BenchError(f"no peak RSS in GNU time output for {' '.join(cmd)}")
    return elapsed, int(match.group(1))


def timed_wchar(cmd: list[str]) -> tuple[float, int]:
    """Runs `cmd`; returns (wall seconds, bytes it passed to write calls).

    The count is the `wchar` of /proc/PID/io of a shell that ran `cmd` and
    reaped it (a reaped child's counts are added to its parent's): every
    byte handed to write, pwrite and the like, which is what a command
    writes whatever the page cache then does with it.
    """
    script = '"$@" >/dev/null 2>&1; s=$?; cat /proc/$$/io; exit $s'
    start = time.perf_counter()
    proc = subprocess.run(["sh", "-c", script, "sh", *cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}")
    match = re.search(r"^wchar: (\d+)$", proc.stdout.decode(), re.M)
    if not match:
        raise BenchError("no wchar in /proc/PID/io")
    return elapsed, int(match.group(1))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def db_bytes(db: Path) -> int:
    total = db.stat().st_size
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        total += wal.stat().st_size
    return total


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.unlink()


def copy_db(src: Path, dst: Path) -> None:
    remove(dst)
    shutil.copyfile(src, dst)
    for suffix in ("-wal",):
        side = src.with_name(src.name + suffix)
        if side.exists():
            shutil.copyfile(side, dst.with_name(dst.name + suffix))


def copy_store(src: Path, dst: Path) -> None:
    remove(dst)
    shutil.copytree(src, dst)


def settle() -> None:
    """Writes back what is dirty (a fresh copy, the other side's VACUUM)
    before a timed run: left dirty, its hundreds of MB are flushed during
    that run, and an fsync there (compaction's, VACUUM's) waits for them by
    chance, and for the other tool's writes."""
    os.sync()


# ---------------------------------------------------------------- results


@dataclass
class Row:
    case: str
    stratum: list[float] = field(default_factory=list)
    sqlite: list[float] = field(default_factory=list)
    target: str = ""
    limit: float | None = None
    unit: str = "s"
    # A second condition of the target beyond the ratio (verify's GB/s), when there is one.
    also_holds: bool | None = None

    def med(self, xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    def ratio(self) -> float | None:
        a, b = self.med(self.stratum), self.med(self.sqlite)
        if a is None or b is None or b == 0:
            return None
        return a / b


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_rss(kib: int) -> str:
    return "n/a (no /usr/bin/time)" if kib < 0 else f"{kib / 1024:.1f} MiB"


def fmt_value(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    if unit == "s":
        return fmt_time(x)
    if unit == "bytes":
        return f"{x / 1e6:.1f} MB"
    if unit == "KiB":
        return f"{x / 1024:.1f} MiB"
    return f"{x:g} {unit}"


def results_table(rows: list[Row]) -> str:
    lines = [
        "| case | stratum median | sqlite3 median | ratio | target | holds | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.ratio()
        holds = "—"
        if ratio is not None and r.limit is not None:
            ok = ratio <= r.limit and r.also_holds is not False
            holds = "yes" if ok else "no"
        runs = f"{len(r.stratum)} / {len(r.sqlite)}"
        lines.append(
            f"| {r.case} | {fmt_value(r.med(r.stratum), r.unit)} | "
            f"{fmt_value(r.med(r.sqlite), r.unit)} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | {r.target} | {holds} | {runs} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- machine


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def machine_info(tools: Tools, built: bool) -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    WORK.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(WORK)
    fs, best = "unknown", -1
    try:
        # The mount whose path is the longest prefix of bench/work holds it.
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            point = parts[1]
            inside = str(WORK).startswith(point.rstrip("/") + "/") or str(WORK) == point
            if len(parts) > 3 and inside and len(point) > best:
                fs, best = f"{parts[2]} on {parts[0]}", len(point)
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml",
           "Cargo.lock"):
        commit += " (with uncommitted changes in src/)"
    if not built:
        commit += " (HEAD; the binary was not rebuilt by this run)"
    sqlite_version = subprocess.run([tools.sqlite3, "--version"], capture_output=True,
                                    text=True).stdout.split()[:2]
    return [
        ("CPU", cpu),
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("filesystem of bench/work", f"{fs}, {usage.free / 1e9:.0f} GB free"),
        ("stratum commit", commit),
        ("sqlite3", " ".join(sqlite_version)),
        ("python", platform.python_version()),
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]


# ---------------------------------------------------------------- the cases


@dataclass
class Config:
    docs: int
    inputs: int
    seed: int
    reps: int
    gets: int
    add_inputs: int
    scale: list[tuple[int, int]]
    quick: bool


def ordered(rep: int, *fs):
    """Rotates which tool runs first (for two: alternates)."""
    k = rep % len(fs)
    return fs[k:] + fs[:k]


def same_doc(st_json: str, sq_json: str) -> bool:
    return json.loads(st_json) == json.loads(sq_json)


def check_agreement(tools: Tools, store: Path, db: Path, ids: list[int]) -> None:
    for doc in ids:
        _, a = run(tools.st(store, "get", str(doc)), capture=True)
        _, b = run(tools.sq(db, f"{DOC_SELECT} WHERE d.id={doc}"), capture=True)
        if not same_doc(a, b):
            raise BenchError(
                f"stratum and sqlite3 disagree on document {doc}:\n"
                f"stratum: {a.strip()[:300]}\nsqlite3: {b.strip()[:300]}"
            )


def bench_main(cfg: Config, tools: Tools, log) -> tuple[list[Row], dict]:
    w = workload(cfg.docs, cfg.inputs, cfg.seed, True, log)
    apply_file, update_sql, half = half_outputs(w, True)
    runs = WORK / "runs"
    remove(runs)
    runs.mkdir(parents=True)
    store, db = runs / "stratum", runs / "sqlite.db"
    rows: list[Row] = []
    extra: dict = {"jsonl_bytes": w.jsonl_bytes, "half": half}

    # Bulk load: a fresh store and a fresh database each repetition.
    row = Row("bulk load of the whole workload (`load` vs one transaction of INSERTs)",
              target="≤ 0.15", limit=0.15)
    rss: dict[str, list[int]] = {"stratum load": [], "sqlite3 load": [],
                                 "stratum compact": [], "sqlite3 VACUUM": []}
    for rep in range(cfg.reps):
        log(f"load {rep + 1}/{cfg.reps}")
        remove(store)
        remove(db)

        def st_load():
            settle()
            t, kib = peak_rss_kib(tools, tools.st(store, "load", str(w.jsonl)))
            row.stratum.append(t)
            rss["stratum load"].append(kib)

        def sq_load():
            settle()
            t, kib = peak_rss_kib(tools, tools.sq(db), stdin=w.sql)
            row.sqlite.append(t)
            rss["sqlite3 load"].append(kib)

        for f in ordered(rep, st_load, sq_load):
            f()
    rows.append(row)
    extra["load_median"] = statistics.median(row.stratum)

    rng = random.Random(cfg.seed + 2)
    check_agreement(tools, store, db, sorted({1, cfg.docs, *rng.sample(range(1, cfg.docs + 1), 5)}))

    # One document per invocation.
    ids = [rng.randint(1, cfg.docs) for _ in range(cfg.gets)]
    row = Row(f"one document per invocation, {len(ids)} random ids (`get` vs SELECT json_object)",
              target="≤ 0.5", limit=0.5)
    log(f"get x {len(ids)}")
    default = Row(f"the same `get`s with the default build (`cargo build --release`: "
                  f"dynamically linked) vs the same SELECTs", target="(reference)")
    for i, doc in enumerate(ids):
        a = lambda: row.stratum.append(run(tools.st(store, "get", str(doc)))[0])  # noqa: E731
        b = lambda: row.sqlite.append(  # noqa: E731
            run(tools.sq(db, f"{DOC_SELECT} WHERE d.id={doc}"))[0])
        fs = [a, b]
        if tools.stratum_default:
            cmd = [tools.stratum_default, *tools.st(store, "get", str(doc))[1:]]
            fs.append(lambda: default.stratum.append(run(cmd)[0]))  # noqa: E731
        for f in ordered(i, *fs):
            f()
    rows.append(row)
    if tools.stratum_default:
        default.sqlite = row.sqlite
        rows.append(default)

    # What a process costs before it does any work: the floor under `get`.
    row = Row("process start alone, no store opened (`stratum --version` vs `sqlite3 :memory: 'SELECT 1'`)")
    log(f"start-up x {len(ids)}")
    for i in range(len(ids)):
        a = lambda: row.stratum.append(run([tools.stratum, "--version"])[0])  # noqa: E731
        b = lambda: row.sqlite.append(run(tools.sq(Path(":memory:"), "SELECT 1"))[0])  # noqa: E731
        for f in ordered(i, a, b):
            f()
    rows.append(row)

    # One durable input per invocation.
    row = Row("one durable input per invocation (`add-input` vs one INSERT)",
              target="≤ 1.0", limit=1.0)
    log(f"add-input x {cfg.add_inputs}")
    for i in range(cfg.add_inputs):
        doc = rng.randint(1, cfg.docs)
        value = dumps(make_value(rng, KINDS[i % len(KINDS)]))
        output = dumps(make_value(rng, rng.choice(KINDS)))
        sql = (
            f"INSERT INTO nodes VALUES({doc},(SELECT coalesce(max(node_id),0)+1 FROM nodes "
            f"WHERE doc_id={doc}),{sql_str(value)},{sql_str(output)}) RETURNING node_id"
        )
        a = lambda: row.stratum.append(  # noqa: E731
            run(tools.st(store, "add-input", str(doc), value, "--output", output))[0])
        b = lambda: row.sqlite.append(run(tools.sq(db, sql))[0])  # noqa: E731
        for f in ordered(i, a, b):
            f()
    rows.append(row)

    # Whole-store counts: `stats` reads the manifest's counters.
    row = Row("whole-store counts (`stats --json` vs SELECT count(*) of docs, nodes, outputs)",
              target="(reference)")
    count_sql = ("SELECT (SELECT count(*) FROM docs), (SELECT count(*) FROM nodes), "
                 "(SELECT count(*) FROM nodes WHERE output IS NOT NULL)")
    for i in range(max(cfg.reps, 5)):
        a = lambda: row.stratum.append(run(tools.st(store, "stats", "--json"))[0])  # noqa: E731
        b = lambda: row.sqlite.append(run(tools.sq(db, count_sql))[0])  # noqa: E731
        for f in ordered(i, a, b):
            f()
    rows.append(row)

    # Rewrite half the outputs, then reclaim the space; on fresh copies each repetition.
    apply_row = Row(f"rewrite half the outputs ({half:,}) in one invocation "
                    "(`apply` vs one UPDATE transaction)", target="≤ 0.5", limit=0.5)
    # A rewritten output leaves its old value inside the input record that
    # held it, which only a full rewrite reclaims: `compact --full`.
    compact_row = Row("then reclaim the space (`compact --full` vs VACUUM)", target="≤ 0.5",
                      limit=0.5)
    st_work, sq_work = runs / "stratum-rw", runs / "sqlite-rw.db"
    pre_compact = {}
    for rep in range(cfg.reps):
        log(f"apply + compact {rep + 1}/{cfg.reps}")
        copy_store(store, st_work)
        copy_db(db, sq_work)

        def st_side():
            settle()
            apply_row.stratum.append(run(tools.st(st_work, "apply", str(apply_file)))[0])
            pre_compact["stratum"] = dir_bytes(st_work)
            t, kib = peak_rss_kib(tools, tools.st(st_work, "compact", "--full"))
            compact_row.stratum.append(t)
            rss["stratum compact"].append(kib)

        def sq_side():
            settle()
            apply_row.sqlite.append(run(tools.sq(sq_work), stdin=update_sql)[0])
            pre_compact["sqlite3"] = db_bytes(sq_work)
            t, kib = peak_rss_kib(tools, tools.sq(sq_work, "VACUUM"))
            compact_row.sqlite.append(t)
            rss["sqlite3 VACUUM"].append(kib)

        for f in ordered(rep, st_side, sq_side):
            f()
    rows += [apply_row, compact_row]
    extra["pre_compact"] = pre_compact
    extra["rss"] = {k: max(v) for k, v in rss.items() if v}

    # Every document out as JSON, from the compacted store and database.
    dump_row = Row("every document out as JSON (`dump` vs `sqlite3 -json` of the join)",
                   target="≤ 1.0", limit=1.0)
    lines_row = Row("every document out as JSON Lines (`dump` vs one json_object per row)",
                    target="(reference)")
    for rep in range(cfg.reps):
        log(f"dump {rep + 1}/{cfg.reps}")
        a = lambda: dump_row.stratum.append(run(tools.st(st_work, "dump"))[0])  # noqa: E731
        b = lambda: dump_row.sqlite.append(  # noqa: E731
            run(tools.sq(sq_work, DUMP_JSON_SELECT, json_mode=True))[0])
        c = lambda: lines_row.sqlite.append(  # noqa: E731
            run(tools.sq(sq_work, f"{DOC_SELECT} ORDER BY d.id"))[0])
        for f in (a, b, c) if rep % 2 == 0 else (c, b, a):
            f()
    lines_row.stratum = dump_row.stratum
    rows += [dump_row, lines_row]

    # Full integrity check.
    st_bytes = dir_bytes(st_work)
    verify_row = Row("full integrity check (`verify` vs PRAGMA integrity_check)",
                     target="≤ 1.0, and ≥ 1 GB/s", limit=1.0)
    # verify is cheap and, using both cores, the most exposed to other load.
    verify_reps = max(cfg.reps, 5)
    for rep in range(verify_reps):
        log(f"verify {rep + 1}/{verify_reps}")
        a = lambda: verify_row.stratum.append(run(tools.st(st_work, "verify"))[0])  # noqa: E731
        b = lambda: verify_row.sqlite.append(  # noqa: E731
            run(tools.sq(sq_work, "PRAGMA integrity_check"))[0])
        for f in ordered(rep, a, b):
            f()
    gbps = st_bytes / statistics.median(verify_row.stratum) / 1e9
    verify_row.case += f"; stratum reads {gbps:.2f} GB/s"
    verify_row.also_holds = gbps >= 1.0
    rows.append(verify_row)

    size_row = Row("bytes on disk after compaction (store dir vs db + wal)", target="≤ 1.0",
                   limit=1.0, unit="bytes")
    size_row.stratum = [float(st_bytes)]
    extra["index_bytes"] = sum(p.stat().st_size for p in st_work.glob("*.idx"))
    size_row.sqlite = [float(db_bytes(sq_work))]
    rows.append(size_row)
    rows += bench_selection(cfg, tools, log, st_work, sq_work)
    extra["sweep"] = bench_garbage(cfg, tools, log, store, db)
    extra["store"], extra["db"] = store, db
    return rows, extra


GARBAGE_LEVELS = (0.0, 0.01, 0.10, 0.50)


@dataclass
class SweepPoint:
    share: float
    deleted: int
    garbage_ratio: float = 0.0
    compact: list[tuple[float, int]] = field(default_factory=list)
    vacuum: list[tuple[float, int]] = field(default_factory=list)
    incremental: list[tuple[float, int]] = field(default_factory=list)


def bench_garbage(cfg: Config, tools: Tools, log, store: Path, db: Path) -> list[SweepPoint]:
    """Garbage sweep: delete a share of the documents (random ids, the same in
    both), then reclaim the space: stratum's `compact` (selective) against
    sqlite3's `VACUUM` and, on a copy made with auto_vacuum=INCREMENTAL before
    the deletes, `PRAGMA incremental_vacuum`. Time and bytes written (wchar)."""
    runs = WORK / "runs"
    st_w, sq_w, sq_i = runs / "sweep-st", runs / "sweep.db", runs / "sweep-inc.db"
    base_inc = runs / "sweep-base-inc.db"
    copy_db(db, base_inc)
    run(tools.sq(base_inc, "PRAGMA auto_vacuum=INCREMENTAL", "VACUUM"))
    rng = random.Random(cfg.seed + 4)
    points = []
    reps = min(cfg.reps, 2)
    for share in GARBAGE_LEVELS:
        victims = sorted(rng.sample(range(1, cfg.docs + 1), round(share * cfg.docs)))
        p = SweepPoint(share, len(victims))
        ops, sql = runs / "sweep-ops.jsonl", runs / "sweep.sql"
        with open(ops, "w") as of, open(sql, "w") as sf:
            sf.write("BEGIN;\n")
            for d in victims:
                of.write(f'{{"op":"delete-doc","doc":{d}}}\n')
                sf.write(f"DELETE FROM nodes WHERE doc_id={d};\nDELETE FROM docs WHERE id={d};\n")
            sf.write("COMMIT;\n")
        for rep in range(reps):
            log(f"garbage sweep {share:.0%}: {rep + 1}/{reps}")
            copy_store(store, st_w)
            copy_db(db, sq_w)
            copy_db(base_inc, sq_i)
            if victims:
                run(tools.st(st_w, "apply", str(ops)))
                run(tools.sq(sq_w), stdin=sql)
                run(tools.sq(sq_i), stdin=sql)
            p.garbage_ratio = json.loads(run(tools.st(st_w, "stats", "--json"),
                                             capture=True)[1])["garbage_ratio"]
            a = lambda: p.compact.append(timed_wchar(tools.st(st_w, "compact")))  # noqa: E731
            b = lambda: p.vacuum.append(timed_wchar(tools.sq(sq_w, "VACUUM")))  # noqa: E731
            c = lambda: p.incremental.append(  # noqa: E731
                timed_wchar(tools.sq(sq_i, "PRAGMA incremental_vacuum")))
            for f in (a, b, c) if rep % 2 == 0 else (c, b, a):
                settle()
                f()
        points.append(p)
    for path in (st_w, sq_w, sq_i, base_inc):
        remove(path)
    return points


def sweep_table(points: list[SweepPoint]) -> str:
    def med(xs: list[tuple[float, int]]) -> tuple[float, int]:
        return (statistics.median(x[0] for x in xs), int(statistics.median(x[1] for x in xs)))

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "—"

    lines = [
        "| documents deleted | `stats` garbage ratio | `compact` | written | `VACUUM` | written "
        "| `incremental_vacuum` | written | time ratio vs VACUUM | vs incremental |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        (ct, cb), (vt, vb), (it, ib) = med(p.compact), med(p.vacuum), med(p.incremental)
        lines.append(
            f"| {p.share:.0%} ({p.deleted:,}) | {p.garbage_ratio:.3f} | {fmt_time(ct)} | "
            f"{cb / 1e6:.2f} MB | {fmt_time(vt)} | {vb / 1e6:.2f} MB | {fmt_time(it)} | "
            f"{ib / 1e6:.2f} MB | {ratio(ct, vt)} | {ratio(ct, it)} |"
        )
    return "\n".join(lines)


def without_key_meta(doc: dict) -> dict:
    """A document in the `get` shape without its "key" and "meta"."""
    return {k: v for k, v in doc.items() if k not in ("key", "meta")}


def bench_selection(cfg: Config, tools: Tools, log, store: Path, db: Path) -> list[Row]:
    """Dataset questions answered by stratum's selection flags and by the sqlite3
    query a user would write (json functions), on the same data.

    Every 50th document first gets one input without an expected output (in
    both), so that "which documents lack an answer" has answers.
    """
    rng = random.Random(cfg.seed + 3)
    missing = list(range(1, cfg.docs + 1, 50))
    ops = WORK / "runs" / "missing.jsonl"
    sql = WORK / "runs" / "missing.sql"
    with open(ops, "w", encoding="utf-8") as of, open(sql, "w", encoding="utf-8") as sf:
        sf.write("BEGIN;\n")
        for doc in missing:
            value = dumps(make_value(rng, rng.choice(KINDS)))
            of.write(f'{{"op":"add-input","doc":{doc},"input":{value}}}\n')
            sf.write(
                f"INSERT INTO nodes VALUES({doc},(SELECT max(node_id)+1 FROM nodes "
                f"WHERE doc_id={doc}),{sql_str(value)},NULL);\n"
            )
        sf.write("COMMIT;\n")
    run(tools.st(store, "apply", str(ops)))
    run(tools.sq(db), stdin=sql)

    # Every document gets a key (a problem's name) and a meta object, in
    # both: one apply batch, and an indexed `name` column beside a JSON
    # `meta` column (sqlite3's best form of "look up by name").
    ops = WORK / "runs" / "keys.jsonl"
    with open(ops, "w", encoding="utf-8") as of:
        for doc in range(1, cfg.docs + 1):
            of.write(f'{{"op":"update-doc","doc":{doc},"key":"p-{doc:07d}",'
                     f'"meta":{{"level":{doc % 5},"tags":["t{doc % 7}"]}}}}\n')
    run(tools.st(store, "apply", str(ops)))
    run(tools.sq(db, "ALTER TABLE docs ADD COLUMN name; ALTER TABLE docs ADD COLUMN meta; "
                 "UPDATE docs SET name=printf('p-%07d',id), "
                 "meta=json_object('level',id%5,'tags',json_array('t'||(id%7))); "
                 "CREATE UNIQUE INDEX docs_name ON docs(name);"))
    key_doc = rng.randint(1, cfg.docs)
    prefix = f"p-{cfg.docs // 2 // 100:05d}"

    cases = [
        (
            "one document by key "
            "(`get key:NAME` vs DOC_SELECT … WHERE name=, on an indexed column)",
            ["get", f"key:p-{key_doc:07d}"],
            f"{DOC_SELECT} WHERE d.name='p-{key_doc:07d}'",
            lambda st, sq: [json.loads(l)["id"] for l in st] == [json.loads(l)["id"] for l in sq],
        ),
        (
            "one document by id, for comparison (`get ID` vs DOC_SELECT … WHERE id=)",
            ["get", str(key_doc)],
            f"{DOC_SELECT} WHERE d.id={key_doc}",
            lambda st, sq: [json.loads(l)["id"] for l in st] == [json.loads(l)["id"] for l in sq],
        ),
        (
            "documents by key prefix, 100 of them "
            "(`list --key-prefix P --json` vs WHERE name LIKE 'P%')",
            ["list", "--key-prefix", prefix, "--json"],
            f"SELECT json_object('id',id) FROM docs WHERE name LIKE '{prefix}%' ORDER BY id",
            lambda st, sq: [json.loads(l)["id"] for l in st] == [json.loads(l)["id"] for l in sq],
        ),
        (
            "documents by a meta field "
            "(`list --meta level=3 --json` vs WHERE json_extract(meta,'$.level')=3)",
            ["list", "--meta", "level=3", "--json"],
            "SELECT json_object('id',id) FROM docs WHERE json_extract(meta,'$.level')=3 "
            "ORDER BY id",
            lambda st, sq: [json.loads(l)["id"] for l in st] == [json.loads(l)["id"] for l in sq],
        ),
        (
            "documents with an input lacking its expected output "
            "(`list --missing-output --json` vs SELECT DISTINCT … WHERE output IS NULL)",
            ["list", "--missing-output", "--json"],
            "SELECT json_object('id',doc_id) FROM (SELECT DISTINCT doc_id FROM nodes "
            "WHERE output IS NULL ORDER BY doc_id)",
            lambda st, sq: [json.loads(l)["id"] for l in st] == [json.loads(l)["id"] for l in sq],
        ),
        (
            "documents, inputs and outputs per category "
            "(`stats --by category --json` vs GROUP BY)",
            ["stats", "--by", "category", "--json"],
            # Per-document subqueries search the primary key (see DOC_SELECT);
            # a join against a grouped subquery scans it once per document.
            "SELECT json_object('category',category,'documents',count(*),'inputs',sum(n),"
            "'outputs',sum(o)) FROM (SELECT d.category category, (SELECT count(*) FROM nodes "
            "n WHERE n.doc_id=+d.id) n, (SELECT count(output) FROM nodes n WHERE "
            "n.doc_id=+d.id) o FROM docs d) GROUP BY category ORDER BY category",
            lambda st, sq: [json.loads(l) for l in st] == [json.loads(l) for l in sq],
        ),
        (
            "one category's node outputs, projected "
            "(`dump --category easy --fields id,inputs.node,inputs.output` vs json_object … WHERE)",
            ["dump", "--category", "easy", "--fields", "id,inputs.node,inputs.output"],
            "SELECT json_object('id',d.id,'inputs',(SELECT json_group_array(json_object("
            "'node',n.node_id,'output',json(n.output))) FROM nodes n WHERE n.doc_id=+d.id)) "
            "FROM docs d WHERE d.category='easy' ORDER BY d.id",
            lambda st, sq: [json.loads(l) for l in st] == [json.loads(l) for l in sq],
        ),
        (
            "an id range of 100 documents (`dump --id A..B` vs DOC_SELECT … BETWEEN)",
            ["dump", "--id", f"{cfg.docs // 2}..{cfg.docs // 2 + 99}"],
            f"{DOC_SELECT} WHERE d.id BETWEEN {cfg.docs // 2} AND {cfg.docs // 2 + 99} "
            "ORDER BY d.id",
            # DOC_SELECT leaves out the name and meta columns added above.
            lambda st, sq: [without_key_meta(json.loads(l)) for l in st]
            == [json.loads(l) for l in sq],
        ),
    ]
    rows = []
    for name, st_args, query, agree in cases:
        log(f"selection: {st_args[0]} {' '.join(st_args[1:3])}")
        _, st_out = run(tools.st(store, *st_args), capture=True)
        _, sq_out = run(tools.sq(db, query), capture=True)
        if not agree(st_out.splitlines(), sq_out.splitlines()):
            raise BenchError(f"stratum and sqlite3 disagree on: {name}\n"
                             f"stratum: {st_out[:300]}\nsqlite3: {sq_out[:300]}")
        row = Row(name, target="≤ 1.0", limit=1.0)
        for rep in range(cfg.reps):
            a = lambda: row.stratum.append(run(tools.st(store, *st_args))[0])  # noqa: E731
            b = lambda: row.sqlite.append(run(tools.sq(db, query))[0])  # noqa: E731
            for f in ordered(rep, a, b):
                f()
        rows.append(row)
    return rows


@dataclass
class SegmentCase:
    name: str
    one: list[float] = field(default_factory=list)
    many: list[float] = field(default_factory=list)


def bench_segments(cfg: Config, tools: Tools, log) -> tuple[int, int, list[SegmentCase]]:
    """The same live data as one segment and as a sealed segment per write:
    what a store's history costs each command. Returns the
    document count, the sealed-segment count of the many-segment store and
    the cases (medians of stratum alone; sqlite3 has no such history)."""
    # Each document's two writes seal a segment each: about 1,000 members.
    docs = 100 if cfg.quick else 500
    rng = random.Random(cfg.seed + 5)
    pool = make_paragraph_pool(rng, 200)
    runs = WORK / "runs"
    one, many = runs / "segments-one", runs / "segments-many"
    remove(one)
    remove(many)
    lines = runs / "segments.jsonl"
    log(f"segments: {docs} documents as one segment and as {docs} sealed segments")
    with open(lines, "w", encoding="utf-8") as f:
        for i in range(1, docs + 1):
            # Over the smallest segment size, so that each document's
            # create-doc seals the segment before it: one member each.
            body = make_body(rng, pool)
            while len(body.encode()) <= 4096:
                body += make_body(rng, pool)
            value = dumps([i, make_value(rng, rng.choice(KINDS))])
            # Every document has a key, so that a key lookup shows beside
            # an id lookup (the key index keeps it flat, docs/FORMAT.md §7.8).
            key = f"s-{i:05d}"
            f.write(dumps({"key": key, "body": body, "category": CATEGORIES[i % 5],
                           "inputs": [{"input": json.loads(value), "output": i}]}) + "\n")
            _, out = run(tools.st(many, "--segment-size", "4096", "create-doc", body,
                                  "--key", key, "--category", CATEGORIES[i % 5], sync=False),
                         capture=True)
            run(tools.st(many, "--segment-size", "4096", "add-input", out.strip(), value,
                         "--output", str(i), sync=False))
    run(tools.st(one, "load", str(lines)))
    sealed = sum(1 for _ in many.glob("seg_*.seg"))
    if run(tools.st(one, "dump"), capture=True)[1] != run(tools.st(many, "dump"),
                                                         capture=True)[1]:
        raise BenchError("segments: the two stores disagree on their data")
    cases = [SegmentCase(f"`get ID` (one per id, {min(docs, cfg.gets)} ids)")]
    ids = [rng.randint(1, docs) for _ in range(min(docs, cfg.gets))]
    for i, doc in enumerate(ids):
        pair = (("one", one), ("many", many))
        for which, store in pair if i % 2 == 0 else reversed(pair):
            getattr(cases[0], which).append(run(tools.st(store, "get", str(doc)))[0])
    by_key = SegmentCase(f"`get key:NAME` (the same documents by key, {len(ids)} keys)")
    for i, doc in enumerate(ids):
        pair = (("one", one), ("many", many))
        for which, store in pair if i % 2 == 0 else reversed(pair):
            getattr(by_key, which).append(run(tools.st(store, "get", f"key:s-{doc:05d}"))[0])
    cases.append(by_key)
    for args in (["stats"], ["list"], ["dump"], ["verify"]):
        case = SegmentCase(f"`{' '.join(args)}`")
        for rep in range(max(cfg.reps, 3)):
            pair = (("one", one), ("many", many))
            for which, store in pair if rep % 2 == 0 else reversed(pair):
                getattr(case, which).append(run(tools.st(store, *args))[0])
        cases.append(case)
    return docs, sealed, cases


def segments_table(docs: int, sealed: int, cases: list[SegmentCase]) -> str:
    lines = [
        f"| command | 1 segment | {sealed:,} sealed segments | ratio |",
        "|---|---|---|---|",
    ]
    for c in cases:
        one, many = statistics.median(c.one), statistics.median(c.many)
        lines.append(f"| {c.name} | {fmt_time(one)} | {fmt_time(many)} | {many / one:.2f} |")
    return "\n".join(lines)


@dataclass
class ScalePoint:
    docs: int
    inputs: int
    store: Path
    apply_file: Path
    load_seconds: float
    load_rss_kib: int | None
    gets: list[float] = field(default_factory=list)
    get_rss_kib: int = 0
    compact_rss_kib: int = 0
    compact_seconds: float = 0.0
    store_bytes: int = 0
    # (seconds, peak RSS KiB) of one run each, before the apply + compact.
    add_input: tuple[float, int] = (0.0, 0)
    stats: tuple[float, int] = (0.0, 0)
    verify: tuple[float, int] = (0.0, 0)
    apply: tuple[float, int] = (0.0, 0)
    # At the largest size only: (seconds, peak RSS KiB) of every other command.
    every: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def get_median(self) -> float:
        return statistics.median(self.gets)


def bench_scale(cfg: Config, tools: Tools, log, main_store: Path, main_load: float,
                main_load_rss: int | None) -> list[ScalePoint]:
    """stratum alone at several sizes; the `get`s go round-robin over the sizes,
    so that noise from the rest of the machine hits every size alike."""
    points = []
    runs = WORK / "runs"
    for docs, inputs in cfg.scale:
        w = workload(docs, inputs, cfg.seed, False, log)
        apply_file, _, _ = half_outputs(w, False)
        if docs == cfg.docs and inputs == cfg.inputs:
            points.append(ScalePoint(docs, inputs, main_store, apply_file, main_load,
                                     main_load_rss))
            continue
        store = runs / f"scale-{w.tag}"
        log(f"scale: loading {docs:,} x {inputs}")
        remove(store)
        t, kib = peak_rss_kib(tools, tools.st(store, "load", str(w.jsonl)))
        points.append(ScalePoint(docs, inputs, store, apply_file, t, kib))
    rng = random.Random(cfg.seed + 3)
    log(f"scale: get x {cfg.gets} at each of {len(points)} sizes, round-robin")
    for i in range(cfg.gets):
        for p in points if i % 2 == 0 else reversed(points):
            doc = rng.randint(1, p.docs)
            p.gets.append(run(tools.st(p.store, "get", str(doc)))[0])
    for p in points:
        p.get_rss_kib = max(
            peak_rss_kib(tools, tools.st(p.store, "get", str(rng.randint(1, p.docs))))[1]
            for _ in range(5)
        )
    for p in points:
        log(f"scale: add-input, stats, verify at {p.docs:,} x {p.inputs}")
        p.add_input = peak_rss_kib(tools, tools.st(p.store, "add-input", str(p.docs // 2),
                                                   "[1, 2]", "--output", "3"))
        p.stats = peak_rss_kib(tools, tools.st(p.store, "stats"))
        p.verify = peak_rss_kib(tools, tools.st(p.store, "verify"))
        log(f"scale: apply + compact at {p.docs:,} x {p.inputs}")
        p.apply = peak_rss_kib(tools, tools.st(p.store, "apply", str(p.apply_file)))
        p.compact_seconds, p.compact_rss_kib = peak_rss_kib(
            tools, tools.st(p.store, "compact", "--full"))
        p.store_bytes = dir_bytes(p.store)
        if p is max(points, key=lambda q: q.docs):
            log(f"scale: every other command at {p.docs:,} x {p.inputs}")
            p.every = every_command(tools, p)
        if p.store != main_store:
            remove(p.store)
    return points


def every_command(tools: Tools, p: ScalePoint) -> dict[str, tuple[float, int]]:
    """One run of each command the growth table leaves out, on the largest
    store after its `compact --full`, each under GNU time: peak RSS is the
    figure (issue 8 asks for every command's at 1M documents)."""
    store, mid = p.store, str(p.docs // 3)
    copy = WORK / "runs" / "every-backup"
    remove(copy)
    st = lambda *a: tools.st(store, *a)  # noqa: E731
    cases = [
        ("`create-doc`", st("create-doc", "<p>one more</p>", "--category", "rss")),
        ("`get --node`", st("get", mid, "--node", "1")),
        ("`set-output`", st("set-output", mid, "1", "42")),
        ("`update-doc`", st("update-doc", mid, "--category", "rss")),
        ("`update-input`", st("update-input", mid, "1", "--meta", '{"rss":1}')),
        ("`delete-input`", st("delete-input", mid, "2")),
        ("`delete-doc`", st("delete-doc", str(p.docs // 4))),
        ("`list --json`", st("list", "--json")),
        ("`list --category rss`", st("list", "--category", "rss", "--json")),
        ("`dump`", st("dump")),
        ("`stats --by category`", st("stats", "--by", "category")),
        ("`backup`", st("backup", str(copy))),
        ("`diff` (against its backup)", st("diff", str(copy))),
        ("`repair` (nothing to repair)", st("repair")),
    ]
    out = {name: peak_rss_kib(tools, cmd) for name, cmd in cases}
    remove(copy)
    return out


def every_table(points: list[ScalePoint]) -> str:
    p = max(points, key=lambda q: q.docs)
    rows = [("`apply` (the half-outputs batch)", p.apply), *p.every.items()]
    lines = [
        f"Every other command once at {p.docs:,} × {p.inputs} (time, peak RSS; target ≤ 64 MiB):",
        "",
        "| command | time | peak RSS | ≤ 64 MiB |",
        "|---|---|---|---|",
    ]
    for name, (t, kib) in rows:
        ok = "not measured" if kib < 0 else "yes" if kib <= 64 * 1024 else "no"
        rss = fmt_rss(kib)
        lines.append(f"| {name} | {fmt_time(t)} | {rss} | {ok} |")
    return "\n".join(lines)


def scale_table(points: list[ScalePoint]) -> str:
    lines = [
        "| documents × inputs | `load` | `get` median | `add-input` | `stats` | `verify` "
        "| `compact --full` | store after compact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    both = lambda t, kib: f"{fmt_time(t)}, {fmt_rss(kib)}"  # noqa: E731
    for p in points:
        load_rss = "—" if p.load_rss_kib is None else fmt_rss(p.load_rss_kib)
        lines.append(
            f"| {p.docs:,} × {p.inputs} | {fmt_time(p.load_seconds)}, {load_rss} | "
            f"{fmt_time(p.get_median)} ({len(p.gets)} ids), {fmt_rss(p.get_rss_kib)} | "
            f"{both(*p.add_input)} | {both(*p.stats)} | {both(*p.verify)} | "
            f"{both(p.compact_seconds, p.compact_rss_kib)} | {p.store_bytes / 1e6:.0f} MB |"
        )
    return "\n".join(lines)


def scale_verdicts(points: list[ScalePoint]) -> list[str]:
    out = []
    by = {(p.docs, p.inputs): p for p in points}
    largest = max(points, key=lambda p: p.docs)
    base = min((p for p in points if p.inputs == largest.inputs), key=lambda p: p.docs)
    if base is not largest:
        r = largest.get_median / base.get_median
        out.append(
            f"`get` at {largest.docs:,} × {largest.inputs} / at {base.docs:,} × {base.inputs}: "
            f"{r:.2f} (target ≤ 2): {'holds' if r <= 2 else 'does not hold'}"
        )
    ten = by.get((10_000, 10))
    if ten and largest.inputs != 10:
        r = largest.get_median / ten.get_median
        out.append(
            f"`get` at {largest.docs:,} × {largest.inputs} / at 10,000 × 10 "
            f"(different document size, for reference): {r:.2f}"
        )
    rss = {
        "load": lambda p: -1 if p.load_rss_kib is None else p.load_rss_kib,
        "get": lambda p: p.get_rss_kib,
        "add-input": lambda p: p.add_input[1],
        "stats": lambda p: p.stats[1],
        "verify": lambda p: p.verify[1],
        "compact": lambda p: p.compact_rss_kib,
    }
    for name, of in rss.items():
        kib, small = of(largest), of(base)
        if kib < 0:
            out.append(f"peak RSS of `{name}`: not measured (no /usr/bin/time)")
            continue
        verdict = "holds" if kib <= 64 * 1024 else "does not hold"
        line = (f"peak RSS of `{name}` at {largest.docs:,} documents: {fmt_rss(kib)} "
                f"(target ≤ 64 MiB): {verdict}")
        if base is not largest:
            growth = kib / small
            flat = "flat" if growth <= 2 else "not flat"
            line += (f"; {growth:.2f}× its figure at {base.docs:,} × {base.inputs} "
                     f"({fmt_rss(small)}) for {largest.docs // base.docs}× the documents: "
                     f"{flat} (counted flat when at most 2×)")
        out.append(line)
    return out


# ---------------------------------------------------------------- main

# README's install for x86-64 Linux: glibc linked statically, which spares
# every invocation the dynamic loader, in the `dist` profile (optimized
# across crates). `--target` keeps the flag off clap's build-time macros,
# which cannot be linked statically; `--target-dir` keeps the build beside,
# not over, the one the tests use.
STATIC_TRIPLE = "x86_64-unknown-linux-gnu"
STATIC_RUSTFLAGS = "-C target-feature=+crt-static"
STATIC_BUILD = ["--target", STATIC_TRIPLE, "--target-dir", str(ROOT / "target" / "static")]
STATIC_EXE = ROOT / "target" / "static" / STATIC_TRIPLE / "dist" / "stratum"


def static_build_applies() -> bool:
    return (sys.platform == "linux" and platform.machine() == "x86_64"
            and platform.libc_ver()[0] == "glibc")


def cargo_build(profile: str, extra: list[str], env: dict[str, str] | None = None) -> int:
    cmd = ["cargo", "build", "--profile", profile, "--locked", "--quiet", "--bin", "stratum",
           *extra]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}).returncode



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, help="documents in the main workload (default 100000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run of seconds: 2,000 documents, 2 repetitions, no 1M point")
    ap.add_argument("--reps", type=int, help="repetitions of the costly cases (default 3)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-scale", action="store_true", help="skip the stratum-alone scaling runs")
    ap.add_argument("--write-md", action="store_true", help=f"write {MD_PATH.relative_to(ROOT)}")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--stratum", help="the binary to measure (default: build it, statically "
                    "linked on x86-64 Linux as README's install does)")
    ap.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3")
    ap.add_argument("--keep", action="store_true", help="keep the stores under bench/work/runs")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    docs = args.docs or (2_000 if args.quick else 100_000)
    if docs < 10:
        ap.error("--docs must be at least 10")
    if args.quick:
        scale = [(500, 10), (docs, 10)]
        cfg = Config(docs, 10, args.seed, args.reps or 2, 20, 10, scale, True)
    else:
        scale = [(10_000, 10), (docs, 10), (10_000, 2), (1_000_000, 2)]
        cfg = Config(docs, 10, args.seed, args.reps or 3, 200, 50, scale, False)
    if args.no_scale:
        cfg.scale = []
    cfg.scale = sorted(set(cfg.scale), key=lambda p: (p[1] != 10, p[0]))

    default_exe = str(ROOT / "target" / "release" / "stratum")
    build_name = "as given by --stratum" if args.stratum else "cargo build --release"
    if not args.no_build and not args.stratum:
        log("cargo build --release")
        if cargo_build("release", []) != 0:
            print("bench: cargo build --release failed", file=sys.stderr)
            return 1
        if static_build_applies():
            log(f"cargo build --profile dist --target {STATIC_TRIPLE} (glibc linked statically)")
            if cargo_build("dist", STATIC_BUILD, {"RUSTFLAGS": STATIC_RUSTFLAGS}) != 0:
                print("bench: the static build failed", file=sys.stderr)
                return 1
            args.stratum = str(STATIC_EXE)
            build_name = "glibc linked statically, `dist` profile: README's install for x86-64 Linux"
    args.stratum = args.stratum or default_exe
    for exe in (args.stratum, args.sqlite3):
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            print(f"bench: {exe} is not an executable file", file=sys.stderr)
            return 1
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    # Run a private copy, so that a cargo build elsewhere cannot swap the
    # binary in the middle of the run.
    (WORK / "bin").mkdir(parents=True, exist_ok=True)
    stratum = WORK / "bin" / "stratum"
    shutil.copy2(args.stratum, stratum)
    tools = Tools(str(stratum), os.path.abspath(args.sqlite3), gnu_time)
    if os.path.abspath(args.stratum) != default_exe and os.access(default_exe, os.X_OK):
        tools.stratum_default = str(WORK / "bin" / "stratum-default")
        shutil.copy2(default_exe, tools.stratum_default)
    started = time.perf_counter()
    machine = machine_info(tools, not args.no_build)
    machine.append(("stratum build", build_name))
    load_start = loadavg()
    try:
        rows, extra = bench_main(cfg, tools, log)
        points = (bench_scale(cfg, tools, log, extra["store"], extra["load_median"],
                              extra["rss"].get("stratum load"))
                  if cfg.scale else [])
        extra["segments"] = bench_segments(cfg, tools, log)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            remove(WORK / "runs")
    elapsed = time.perf_counter() - started
    machine.append(("load average (1 min), start / end", f"{load_start} / {loadavg()}"))

    command = "python3 bench/run.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a not in ("--no-build",)
    )
    report = render(cfg, rows, extra, points, machine, command, elapsed, gnu_time is not None)
    print(report)
    if args.write_md:
        MD_PATH.parent.mkdir(parents=True, exist_ok=True)
        MD_PATH.write_text(
            "# Benchmarks: stratum vs the sqlite3 CLI\n\n"
            "Generated by `bench/run.py`; do not edit by hand. See `bench/README.md` "
            "for what each case runs.\n\n" + report + python_section()
        )
        log(f"wrote {MD_PATH.relative_to(ROOT)}")
    return 0


def python_section() -> str:
    """The section `bench/python_client.py` writes into the same file, kept
    as it is: the two scripts measure different things and run apart."""
    begin, end = "<!-- bench/python_client.py: begin -->", "<!-- bench/python_client.py: end -->"
    text = MD_PATH.read_text() if MD_PATH.exists() else ""
    if begin not in text or end not in text:
        return ""
    return "\n" + text[text.index(begin):text.index(end) + len(end)] + "\n"


def render(cfg: Config, rows: list[Row], extra: dict, points: list[ScalePoint],
           machine: list[tuple[str, str]], command: str, elapsed: float, have_rss: bool) -> str:
    out = []
    out.append(f"## Side by side: {cfg.docs:,} documents × {cfg.inputs} inputs\n")
    out.append(
        f"Workload: {cfg.docs:,} documents (HTML bodies of 0.5–3 KB, 5 categories, a version, "
        f"{cfg.inputs} inputs each mixing ints, doubles, strings, lists of ints, lists of "
        f"strings and string maps, each with an output), {extra['jsonl_bytes'] / 1e6:.0f} MB "
        f"of JSON Lines, seed {cfg.seed}. Medians of {cfg.reps} repetitions for load, "
        f"apply + compact and dump, of {max(cfg.reps, 5)} for verify; of one invocation per "
        f"id for `get` and "
        f"`add-input`. Ratio = stratum / sqlite3 (lower is better for stratum). "
        f"Warm cache: OS caches are not dropped between runs, but dirty pages are "
        f"written back (`sync`) before each load, `apply` and compaction of either tool, "
        f"so neither pays for the writeback of the other's writes or of a fresh copy.\n"
    )
    out.append(results_table(rows))
    out.append("")
    pre = extra.get("pre_compact", {})
    if pre:
        out.append(
            "Before compaction: stratum store "
            + f"{pre.get('stratum', 0) / 1e6:.0f} MB, sqlite3 db + wal "
            + f"{pre.get('sqlite3', 0) / 1e6:.0f} MB."
        )
    if "index_bytes" in extra:
        out.append(
            f"After compaction the stratum store holds {extra['index_bytes'] / 1e6:.1f} MB "
            "of index files (`*.idx`) within its total."
        )
    rss = extra.get("rss", {})
    if rss and have_rss:
        out.append(
            f"Peak RSS at {cfg.docs:,} documents: "
            + ", ".join(f"{k} {fmt_rss(v)}" for k, v in rss.items())
            + "."
        )
    out.append("")
    sweep = extra.get("sweep")
    if sweep:
        out.append("## Garbage sweep: reclaiming space after deletes\n")
        out.append(
            "A share of the documents (random ids, the same in both) is deleted in one "
            "invocation, then the space is reclaimed: `compact` (selective: it merges only the "
            "segments at least 40% reclaimable) against `VACUUM`, and against "
            "`PRAGMA incremental_vacuum` on a database made `auto_vacuum=INCREMENTAL` before the "
            "deletes. \"written\" is the bytes the command passed to write calls (`wchar` of "
            f"/proc/PID/io). Medians of {min(cfg.reps, 2)} runs on fresh copies.\n"
        )
        out.append(sweep_table(sweep))
        out.append("")
    if points:
        out.append("## stratum alone: scaling\n")
        out.append(
            "Each cell is time, peak RSS (GNU time -v). `get` median over random ids, one "
            "invocation each, with the largest RSS of 5 `get`s; `add-input` (one durable "
            "input), `stats` and `verify` one run each; `compact --full` after an `apply` rewriting "
            "half the outputs; "
            "the `get`s go round-robin over the sizes so that machine noise hits each alike."
            + (" The 1,000,000-document point uses 2 inputs per document (not 10) to keep "
               "the workload near 2 GB; the 10,000 × 2 point is its like-for-like baseline."
               if any(p.docs >= 1_000_000 for p in points) else "")
            + "\n"
        )
        out.append(scale_table(points))
        out.append("")
        out.extend(f"- {v}" for v in scale_verdicts(points))
        out.append("")
        if max(points, key=lambda q: q.docs).every:
            out.append(every_table(points))
            out.append("")
    if "segments" in extra:
        docs, sealed, cases = extra["segments"]
        out.append("## stratum alone: history\n")
        out.append(
            f"The same {docs:,} keyed documents (one input and output each) in one segment, "
            f"written by one `load`, and in {sealed:,} sealed segments, written one "
            "`create-doc` and `add-input` at a time with `--segment-size 4096` and bodies "
            "over 4 KB, so that every write seals the segment before it. Both stores "
            "dump identically. Medians; ratio = many / one (1.00 means the history costs "
            "nothing).\n"
        )
        out.append(segments_table(docs, sealed, cases))
        out.append("")
    out.append("## Machine\n")
    out.append("| | |\n|---|---|")
    out.extend(f"| {k} | {v} |" for k, v in machine)
    out.append("")
    out.append("## Command\n")
    out.append(f"```\n{command}\n```\n")
    total = fmt_time(elapsed) if elapsed < 60 else f"{elapsed / 60:.1f} min"
    out.append(f"Total run time {total}.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
