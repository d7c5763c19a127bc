"""tools/execute_notebooks.py: which headline records become the README's expected results."""

from __future__ import annotations

import json

from conftest import load_tool


def test_a_notebook_that_failed_after_recording_its_headline_is_not_an_expected_result(tmp_path):
    tool = load_tool("execute_notebooks")
    lines = tmp_path / "headlines.jsonl"
    records = [{"notebook": "10_case.ipynb", "seed": 42, "name": "macro-F1", "value": 0.5},
               {"notebook": "13_production.ipynb", "seed": 42, "name": "macro-F1", "value": 0.7}]
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"10_case.ipynb": {"macro-F1": {"42": 0.86}}}))

    tool.collect_headlines(lines, completed={"13_production.ipynb"}, results=results)

    data = json.loads(results.read_text())
    assert data["10_case.ipynb"] == {"macro-F1": {"42": 0.86}}  # the failed run left it alone
    assert data["13_production.ipynb"] == {"macro-F1": {"42": 0.7}}
