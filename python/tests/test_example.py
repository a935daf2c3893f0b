"""The original gRPC client's example runs unchanged against the module once
`lse = stratum.open("data")` stands in for `LseClient("localhost:50051")`."""

import json

import stratum


def test_the_original_clients_example_runs_unchanged(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    lse = stratum.open("data")
    # -- the example, verbatim --
    doc_id = lse.create_problem("<h1>My document</h1>", category="tutorial", version="1.0")
    node1 = lse.add_test_case(doc_id, [2, 7, 11, 15])
    node2 = lse.add_test_case(doc_id, "some string")
    node3 = lse.add_test_case(doc_id, {"key": "value"})
    lse.set_expected_output(doc_id, node1, [0, 1])
    doc   = lse.get_problem_html(doc_id)
    nodes = lse.get_all_test_cases(doc_id)
    out   = lse.get_expected_output(doc_id, node1)
    # -- end of the example --
    assert (doc_id, node1, node2, node3) == (1, 1, 2, 3)
    assert doc == "<h1>My document</h1>"
    assert [(n.id, n.input, n.output) for n in nodes] == [
        (1, [2, 7, 11, 15], [0, 1]),
        (2, "some string", None),
        (3, {"key": "value"}, None),
    ]
    assert out == [0, 1]
    assert lse.get_expected_output(doc_id, node2) is None
    lse.close()

    # The same store, read by the CLI.
    got = json.loads(cli.ok("get", "1"))
    assert got == {
        "id": 1,
        "category": "tutorial",
        "version": "1.0",
        "body": "<h1>My document</h1>",
        "inputs": [
            {"node": 1, "input": [2, 7, 11, 15], "output": [0, 1]},
            {"node": 2, "input": "some string", "output": None},
            {"node": 3, "input": {"key": "value"}, "output": None},
        ],
    }


def test_the_aliases_are_the_methods_they_name(store):
    doc = store.create_problem(b"<p>x</p>", category="c", version="v")
    assert store.get(doc).category == "c"
    node = store.add_test_case(doc, 1, output=2)
    assert store.get_expected_output(doc, node) == 2
    store.set_expected_output(doc, node, 3)
    assert store.get_node(doc, node).output == 3
    assert store.get_all_test_cases(doc) == list(store.get(doc).inputs)
    assert store.get_problem_html(doc) == store.get(doc).text == "<p>x</p>"
