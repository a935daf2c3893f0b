"""The type stubs name what the compiled module has, and nothing more."""

import ast
import pathlib

import stratum
from stratum import _stratum

STUB = pathlib.Path(stratum.__file__).with_name("_stratum.pyi")


def test_every_stubbed_name_exists_and_every_public_one_is_stubbed():
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stubbed[node.name] = {
                f.name for f in node.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("__")
            }
        elif isinstance(node, ast.FunctionDef):
            stubbed[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            # A module constant (CLEAR, NULL): its annotation names its class.
            stubbed[node.target.id] = set()
            assert isinstance(getattr(_stratum, node.target.id), getattr(_stratum, node.annotation.id))
    public = {n for n in dir(_stratum) if not n.startswith("_")}
    assert set(stubbed) == public
    for name, members in stubbed.items():
        obj = getattr(_stratum, name)
        for m in members:
            assert hasattr(obj, m), f"{name}.{m}"
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            runtime = {m for m in dir(obj) if not m.startswith("_")}
            assert runtime == members, name
