"""stratum: documents with ordered chains of inputs and expected outputs, in a
log-structured store on local disk, used in-process (no server, no
subprocess). The same engine as the ``stratum`` command line, on the same
stores.

    import stratum

    with stratum.open("data") as store:
        doc = store.create_doc("<p>Add two numbers.</p>", category="easy")
        node = store.add_input(doc, [1, 2], output=3)
        store.get(doc).inputs[0].output        # 3

Values are JSON, in and out: dict (str keys), list (or tuple), str, int of
any size, float, bool and None. The stored text is kept exactly: a float
``1.0`` is stored as ``1.0`` and read back as a float, ``stratum.Json("1.50")``
stores that text unchanged, and ``raw=True`` reads return each value as a
``stratum.Json`` holding the stored text (``Document.to_json()`` prints the
line ``stratum get`` prints). Bodies are ``bytes`` or ``str`` (UTF-8) in, and
``bytes`` out (``Document.text`` decodes them).

Keys: a document may have a unique name, its key (1 to 1024 bytes of
UTF-8): ``create_doc(..., key="two-sum")``. Every method that takes a
document takes its id (an ``int``) or its key (a ``str``):
``store.get("two-sum")``, ``store.add_input("two-sum", [1, 2], 3)``. An
unknown key raises ``NotFound``, as an unknown id does; ``find_key(key)``
returns the id or ``None``. A deleted document's key is free again.

Metadata: ``meta=`` takes a dict (or a ``stratum.Json`` holding an object),
kept in its exact text, on ``create_doc``, ``update_doc`` and ``add_input``;
``update_input(doc, node, meta=...)`` replaces a node's. ``Document.meta`` and
``Node.meta`` read it back. ``meta_patch=`` on ``update_doc`` and
``update_input`` merges a dict into the meta instead (a JSON merge patch, RFC
7386: a member set to ``None`` is removed, dicts merge, and the members it does
not name keep their exact text): ``store.update_doc("two-sum",
meta_patch={"difficulty": "hard", "draft": None})``.

Selection: ``list()`` and ``docs()`` take the filters of ``stratum list`` and
``stratum dump``, each one given must hold: ``category``, ``key`` (looked up,
as fast as a get), ``key_prefix``, ``meta`` (a dict of top-level fields and the
values they must have, compared as exact text, so ``stratum.Json("1.0")`` or
``1.0`` is not ``1``), ``ids`` (an id, or a ``range``; a narrow one is looked up
id by id) and ``missing_output`` (a node without an expected output):
``store.docs(key_prefix="HumanEval/", missing_output=True)``.

Regenerating: ``load(docs, on_conflict="replace")`` replaces the document that
holds a key already, keeping its id and the ids of its nodes whose input is
unchanged, and writes nothing for what is already equal, so loading the same
fixtures again leaves the store as it was; ``"skip"`` leaves that document
alone; ``"fail"`` (the default) refuses the whole load.

Clearing: in ``update_doc`` and ``update_input`` a field left ``None`` is
kept, so a field is removed by passing ``stratum.CLEAR``:
``store.update_doc(doc, category=stratum.CLEAR, key=stratum.CLEAR)``,
``store.update_input(doc, node, meta=stratum.CLEAR)``.

Outputs: ``None`` means "no expected output", as it always has. The JSON
value null is a real output, distinct from none: store it as
``stratum.NULL`` (the same as ``stratum.Json("null")``). A node whose output
is null reads back with ``output`` ``None`` and ``has_output`` True (a
``raw=True`` read gives ``stratum.NULL``); a node without one has
``has_output`` False. ``clear_output(doc, node)`` removes an output. In
``load``, a node's ``"output": stratum.NULL`` is a real null, as
``"has_output": True`` beside ``"output": None`` is.

Locks: a handle holds the store's lock from ``open`` until ``close`` (or the
end of its ``with`` block). A write handle's lock is exclusive: while it is
open, every other process waits for it -- the CLI's writers *and* readers,
up to their ``--lock-timeout`` (then they exit 5). A read handle
(``write=False``) shares its lock with other readers and keeps writers out.
Keep write handles short-lived when other programs use the store.
``lock_timeout`` is how long ``open`` waits for another process's lock
before it raises ``stratum.Locked``.

Threads: a handle can be shared between threads (they take turns), and the
interpreter lock is released around every call into the store, so threads
with a handle each (readers, or a writer and other Python work) run at once.
Processes: open a handle in each process; one inherited across ``fork`` shares
its lock and files with the parent.

Errors: ``stratum.Error`` and its subclasses ``NotFound`` (also a
``LookupError``), ``InvalidInput`` (``ValueError``), ``Locked``
(``TimeoutError``), ``Corrupt`` and ``IOError`` (``OSError``) have the
meanings of the CLI's exit codes 3 to 7 and carry the message the CLI prints.
A refused call leaves the store as it was.
"""

import logging as _logging
import os as _os

from . import _stratum
from ._stratum import (
    CLEAR,
    NULL,
    Batch,
    Clear,
    Corrupt,
    DocIter,
    Document,
    Error,
    InvalidInput,
    IOError,
    Json,
    Locked,
    Node,
    NotFound,
    Store,
)

# IOError is left out so that `from stratum import *` cannot shadow the
# built-in name; use `stratum.IOError`.
__all__ = [
    "CLEAR",
    "NULL",
    "Batch",
    "Clear",
    "Corrupt",
    "DocIter",
    "Document",
    "Error",
    "InvalidInput",
    "Json",
    "Locked",
    "Node",
    "NotFound",
    "Store",
    "open",
]

_log = _logging.getLogger("stratum")


# The original gRPC client's names, as thin aliases with its arguments, so
# its scripts run unchanged after `lse = stratum.open("data")`.
def _get_problem_html(self: Store, doc: "int | str") -> str:
    """The document's body as ``str`` (``get(doc).text``)."""
    return self.get(doc).text


def _get_all_test_cases(self: Store, doc: "int | str") -> "list[Node]":
    """The document's nodes as a list (``list(get(doc).inputs)``)."""
    return list(self.get(doc).inputs)


def _get_expected_output(self: Store, doc: "int | str", node: int) -> object:
    """A node's expected output, or ``None`` (``get_node(doc, node).output``;
    ``has_output`` tells a null output from none)."""
    return self.get_node(doc, node).output


for _name, _method in {
    "create_problem": Store.create_doc,
    "add_test_case": Store.add_input,
    "set_expected_output": Store.set_output,
    "get_problem_html": _get_problem_html,
    "get_all_test_cases": _get_all_test_cases,
    "get_expected_output": _get_expected_output,
}.items():
    setattr(Store, _name, _method)


def open(
    path: "str | _os.PathLike[str]",
    write: bool = True,
    sync: bool = True,
    lock_timeout: float = 10.0,
) -> Store:
    """Open the store in directory ``path`` and return a ``Store`` handle.

    ``write=True`` takes the exclusive lock and creates the store if there is
    none (a torn tail left by a crash is repaired, and reported through the
    ``stratum`` logger and ``Store.notices``); ``write=False`` takes the
    shared lock, creates nothing and raises ``NotFound`` when there is no
    store. ``sync=False`` skips fsync: writes survive a killed process but
    not a power loss (the CLI's ``--no-sync``). ``lock_timeout`` is in
    seconds. Use the handle as a context manager, or call ``close()``.
    """
    store = _stratum.open(
        _os.fspath(path), write=write, sync=sync, lock_timeout=lock_timeout
    )
    for notice in store.notices:
        _log.warning("note: %s", notice)
    return store
