"""The README's Python example runs as written."""

import re

import stratum
from conftest import ROOT


def test_the_readme_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["d"].to_json() == (
        '{"id":1,"category":"easy","version":null,"body":"<p>Add two numbers.</p>",'
        '"inputs":[{"node":1,"input":[1,2],"output":3}]}'
    )
    assert scope["store"].closed and scope["r"].closed
    with stratum.open(tmp_path / "stratum-data", write=False) as r:
        assert r.get("two-sum").to_json() == (
            '{"id":2,"key":"two-sum","category":null,"version":null,"body":"<p>Two sum.</p>",'
            '"inputs":[{"node":1,"input":[3,3],"meta":{"label":"no pair"},"output":null,"has_output":true}]}'
        )
