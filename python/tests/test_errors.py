"""Every exception class: raised where the CLI would exit with its code,
carrying the message the CLI prints, and leaving the store exactly as it
was."""

import json
import re
import zlib

import pytest

import stratum
from conftest import snapshot


def test_the_class_tree():
    for cls, builtin in [
        (stratum.NotFound, LookupError),
        (stratum.InvalidInput, ValueError),
        (stratum.Locked, TimeoutError),
        (stratum.IOError, OSError),
        (stratum.Corrupt, Exception),
    ]:
        assert issubclass(cls, stratum.Error) and issubclass(cls, builtin)
        assert cls.__module__ == "stratum"
    assert issubclass(stratum.Error, Exception)
    assert not issubclass(stratum.Corrupt, OSError)


@pytest.fixture
def filled(data):
    with stratum.open(data) as s:
        doc = s.create_doc(b"<p>x</p>", category="c")
        s.add_input(doc, [1, 2], output=3)
    return data


def test_not_found_has_the_clis_message_and_changes_nothing(filled, cli):
    before = snapshot(filled)
    with stratum.open(filled) as s:
        cases = [
            (lambda: s.get(99), ("get", "99")),
            (lambda: s.get_node(1, 9), ("get", "1", "--node", "9")),
            (lambda: s.add_input(99, 1), ("add-input", "99", "1")),
            (lambda: s.set_output(1, 9, 1), ("set-output", "1", "9", "1")),
            (lambda: s.update_doc(99, version="v"), ("update-doc", "99", "--version", "v")),
            (lambda: s.delete_doc(99), ("delete-doc", "99")),
            (lambda: s.delete_input(1, 9), ("delete-input", "1", "9")),
        ]
        errors = []
        for call, _ in cases:
            with pytest.raises(stratum.NotFound) as e:
                call()
            errors.append(str(e.value))
    assert snapshot(filled) == before
    for msg, (_, args) in zip(errors, cases):
        assert cli.fails(*args) == (3, msg)
    assert errors[0] == "document 99 not found"
    assert errors[1] == "input node 9 not found in document 1"


def test_not_found_for_a_missing_store_creates_nothing(tmp_path, stratum_bin):
    from conftest import Cli

    missing = tmp_path / "nothing-here"
    with pytest.raises(stratum.NotFound) as e:
        stratum.open(missing, write=False)
    assert not missing.exists()
    # The same fact; the CLI adds a hint in its own terms.
    hint = " (a write command such as `stratum create-doc` creates one; or pass --dir)"
    assert Cli(stratum_bin, missing).fails("get", "1") == (3, str(e.value) + hint)


def test_invalid_input_changes_nothing(filled, cli):
    before = snapshot(filled)
    with stratum.open(filled) as s:
        with pytest.raises(stratum.InvalidInput) as bad_json:
            s.add_input(1, stratum.Json("[1,"))
        with pytest.raises(stratum.InvalidInput, match="pass stratum.NULL") as null_output:
            s.set_output(1, 1, None)
        with pytest.raises(stratum.InvalidInput, match="update_doc needs at least one"):
            s.update_doc(1)
        with pytest.raises(stratum.InvalidInput, match="exceeds the limit"):
            s.add_input(1, "x" * (64 << 20))
        with pytest.raises(stratum.InvalidInput, match="NaN"):
            s.set_output(1, 1, float("nan"))
        with pytest.raises(stratum.InvalidInput):
            stratum.Json("")
    assert snapshot(filled) == before
    assert "clear_output" in str(null_output.value)
    code, msg = cli.fails("add-input", "1", "[1,")
    assert code == 4
    # The CLI names the argument; the library's text follows it.
    assert msg.endswith(str(bad_json.value)), (msg, str(bad_json.value))


def test_locked_when_another_handle_or_process_holds_the_lock(filled, cli):
    before = snapshot(filled)
    with stratum.open(filled) as holder:
        with pytest.raises(stratum.Locked) as e:
            stratum.open(filled, lock_timeout=0.1)
        with pytest.raises(stratum.Locked):
            stratum.open(filled, write=False, lock_timeout=0)
        # A long-lived write handle keeps the CLI's writers and readers out.
        code, msg = cli.fails("--lock-timeout", "0.1", "add-input", "1", "5")
        assert code == 5
        assert cli.fails("--lock-timeout", "0.1", "get", "1")[0] == 5
        holder.get(1)
    # The same fact from both; only the CLI adds its own flag as the hint.
    pattern = r"the store is locked by another process \(.*LOCK held for over \d+\.\ds\)"
    assert re.fullmatch(pattern, str(e.value)), str(e.value)
    assert re.fullmatch(pattern + "; retry, or raise --lock-timeout", msg), msg
    assert snapshot(filled) == before


def test_a_read_handle_shares_its_lock_with_readers_only(filled, cli):
    with stratum.open(filled, write=False) as r:
        assert cli.ok("get", "1").startswith(b'{"id":1')
        with stratum.open(filled, write=False, lock_timeout=0) as r2:
            assert r2.get(1) == r.get(1)
        assert cli.fails("--lock-timeout", "0", "add-input", "1", "5")[0] == 5
        with pytest.raises(stratum.Locked):
            stratum.open(filled, lock_timeout=0)


def test_corrupt_states_the_clis_fact_and_changes_nothing(filled, cli):
    seg = filled / "active.seg"
    raw = bytearray(seg.read_bytes())
    at = raw.index(b"<p>x")
    raw[at + 1] ^= 0x01
    seg.write_bytes(bytes(raw))
    before = snapshot(filled)
    for write in (False, True):
        with pytest.raises(stratum.Corrupt) as e:
            stratum.open(filled, write=write)
        assert snapshot(filled) == before
    assert "record checksum mismatch" in str(e.value)
    hint = " (run `stratum verify` for a full report, `stratum repair` to salvage)"
    assert cli.fails("get", "1") == (6, str(e.value) + hint)
    assert cli.fails("add-input", "1", "2") == (6, str(e.value) + hint)


def test_a_newer_format_version_is_corrupt_not_a_crash(filled, cli):
    seg = filled / "active.seg"
    raw = bytearray(seg.read_bytes())
    # docs/FORMAT.md §4: the version is bytes 8-9 of the 40-byte segment
    # header, whose CRC-32 over bytes [0, 36) is stored at 36.
    raw[8:10] = (3).to_bytes(2, "little")
    raw[36:40] = zlib.crc32(bytes(raw[:36])).to_bytes(4, "little")
    seg.write_bytes(bytes(raw))
    before = snapshot(filled)
    with pytest.raises(stratum.Corrupt, match="format version 3") as e:
        stratum.open(filled, write=False)
    assert snapshot(filled) == before
    code, msg = cli.fails("get", "1")
    assert (code, msg) == (6, str(e.value))


def test_io_error_has_the_clis_message_and_changes_nothing(filled, tmp_path, cli):
    before = snapshot(filled)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with stratum.open(filled, write=False) as s:
        with pytest.raises(stratum.IOError) as e:
            s.backup(blocker / "below")
    assert isinstance(e.value, OSError)
    assert "I/O error during" in str(e.value) and "Not a directory" in str(e.value)
    assert snapshot(filled) == before
    assert cli.fails("backup", str(blocker / "below")) == (7, str(e.value))
    # A store path that is a file.
    with pytest.raises(stratum.IOError) as e2:
        stratum.open(blocker)
    from conftest import Cli

    assert Cli(cli.binary, blocker).fails("create-doc", "x") == (7, str(e2.value))
    assert blocker.read_bytes() == b""


def test_errors_inside_a_batch_keep_their_class(store):
    with store.batch():
        with pytest.raises(stratum.NotFound):
            store.get(42)
        with pytest.raises(stratum.InvalidInput):
            store.add_input(42, float("inf"))


def test_damage_found_by_verify_is_in_the_report_as_the_cli_reports_it(filled, cli):
    with stratum.open(filled) as s:
        s.compact()
    idx = sorted(filled.glob("seg_*.idx"))[0]
    raw = bytearray(idx.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    idx.write_bytes(bytes(raw))
    before = snapshot(filled)
    with stratum.open(filled, write=False) as r:
        report = r.verify()
        # An index is a cache: reads still answer, from the segment.
        assert r.get(1).inputs[0].output == 3
    assert report["ok"] is False
    assert [p["file"] for p in report["problems"] if p["kind"] == "damage"] == [idx.name]
    assert snapshot(filled) == before
    r = cli.run("verify", "--json")
    assert r.returncode == 6
    assert json.loads(r.stdout) == report
