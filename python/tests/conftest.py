"""Shared fixtures: a fresh store directory per test, and the `stratum`
binary built from this checkout (so a test can compare the module with the
CLI on the same store)."""

import os
import pathlib
import subprocess

import pytest

import stratum

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stratum_bin():
    """The CLI binary: $STRATUM_BIN, else target/release/stratum after a
    `cargo build --release` of this checkout (a no-op when it is current)."""
    given = os.environ.get("STRATUM_BIN")
    if given:
        return given
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "stratum"],
        cwd=ROOT,
        check=True,
    )
    return str(ROOT / "target" / "release" / "stratum")


class Cli:
    """Runs the binary on one store, as a script would."""

    def __init__(self, binary, directory):
        self.binary = binary
        self.dir = directory

    def run(self, *args, stdin=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
        return subprocess.run(
            [self.binary, "--dir", str(self.dir), *args],
            input=stdin,
            capture_output=True,
            env=env,
        )

    def ok(self, *args, stdin=None):
        r = self.run(*args, stdin=stdin)
        assert r.returncode == 0, (args, r.returncode, r.stderr.decode())
        return r.stdout

    def fails(self, *args, stdin=None):
        """(exit code, the message after `stratum: `) of a failing run."""
        r = self.run(*args, stdin=stdin)
        assert r.returncode != 0, (args, r.stdout)
        line = r.stderr.decode().strip()
        assert line.startswith("stratum: "), line
        return r.returncode, line[len("stratum: "):]


@pytest.fixture
def data(tmp_path):
    """A directory for a store (not created)."""
    return tmp_path / "data"


@pytest.fixture
def cli(stratum_bin, data):
    return Cli(stratum_bin, data)


@pytest.fixture
def store(data):
    """A write handle on a new store, closed after the test."""
    s = stratum.open(data)
    yield s
    s.close()


def snapshot(directory):
    """Every file under `directory` with its bytes: equal snapshots mean the
    store was left exactly as it was."""
    directory = pathlib.Path(directory)
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
