"""The notebook checker (tools/check_notebooks.py) and the Colab tool (tools/add_colab_setup.py).

- every notebook passes the checker: stored executed, clean outputs, the skeleton;
- each rule catches what it is for, on a small synthetic notebook, and leaves
  the look-alikes a course legitimately prints alone (a small module, a dict, LaTeX);
- the Colab tool refuses without the project's own ``[project.urls] Repository`` and
  installs the exact pins when it has one.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))




checker = load_tool("check_notebooks")
colab = load_tool("add_colab_setup")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_passes_the_checker(path):
    findings = checker.check(path, checker.repository_url())
    assert not findings, f"{path.name}:\n" + "\n".join(map(str, findings))


# ------------------------------------------------------------------ a synthetic notebook
def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _display(data, kind="display_data"):
    extra = {"execution_count": None} if kind == "execute_result" else {}
    return nbformat.v4.new_output(kind, data=data, **extra)


def _notebook(extra_cells=()):
    """A notebook that follows the skeleton and stores one clean run; ``extra_cells``
    (``(kind, source, outputs)``) go into section 1."""
    cells = [
        ("markdown", "# 05 · Title\n\n**What you will learn**\n- x\n\n**Prerequisites:** 04."
                     "\n\n**Runtime:** 1 min.", None),
        ("code", "from course_lib.notebook import setup_notebook\n\ninfo = setup_notebook(seed=42)",
         [_stream("profile=quick  device=cpu\n")]),
        ("markdown", "## 1. Idea\n\nThe score is $\\frac{a}{b}$, printed with `f\"{acc:.3f}\"`.",
         None),
        *extra_cells,
        ("markdown", "## Summary\n\n- done\n\n## Exercises\n\n1. Try it.", None),
        ("code", "print(2)", [_stream("2\n")]),
        ("markdown", "## References\n\n- a paper", None),
    ]
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3",
                                                           "display_name": "Python 3"}})
    count = 0
    for kind, text, outputs in cells:
        if kind == "code":
            count += 1
            cell = nbformat.v4.new_code_cell(text, execution_count=count, outputs=outputs or [])
        else:
            cell = nbformat.v4.new_markdown_cell(text)
        nb.cells.append(cell)
    nb.cells[-2].metadata["tags"] = ["solution"]
    return nb


def _findings(tmp_path, nb, repository=None, name="05_title.ipynb"):
    path = tmp_path / name
    nbformat.write(nb, path)
    return checker.check(path, repository)


def _rules(findings):
    return {f.rule for f in findings}


def test_a_clean_notebook_has_no_findings(tmp_path):
    assert _findings(tmp_path, _notebook()) == []


def test_metadata_and_untagged_solutions(tmp_path):
    nb = _notebook()
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[1].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    nb.cells[-2].metadata["tags"] = []  # the solution lost its tag
    excerpts = "\n".join(map(str, _findings(tmp_path, nb)))
    for expected in ("metadata: notebook metadata 'widgets'", "1: metadata: stray metadata "
                     "'execution'", "exercises: code in the Exercises section without"):
        assert expected in excerpts


def test_skeleton_parts_and_setup_cell(tmp_path):
    nb = _notebook()
    nb.cells[0].source = nb.cells[0].source.replace("**Runtime:** 1 min.", "")
    nb.cells[1].source = "from course_lib import settings\nsettings.setup_notebook(seed=42)"
    nb.cells[-3].source = nb.cells[-3].source.replace("## Summary", "## Recap")
    excerpts = "\n".join(map(str, _findings(tmp_path, nb)))
    assert "the header has no Runtime line" in excerpts
    assert "1: skeleton: the first code cell must be the setup cell" in excerpts
    assert "no '## Summary' section" in excerpts
    assert "title number 05 does not match" in "\n".join(
        map(str, _findings(tmp_path, _notebook(), name="06_other.ipynb")))


def test_a_notebook_is_stored_executed_in_one_run_without_errors(tmp_path):
    nb = _notebook([("code", "x = 1", [])])
    nb.cells[3].execution_count = None  # never run
    assert {(f.cell, f.rule) for f in _findings(tmp_path, nb)} >= {(3, "not-executed")}
    nb.cells[3].execution_count = 7
    assert (3, "execution-order") in {(f.cell, f.rule) for f in _findings(tmp_path, nb)}
    nb.cells[3].execution_count = 2
    nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="bad",
                                                  traceback=[])]
    found = _findings(tmp_path, nb)
    assert [str(f) for f in found] == ["3: error-output: ValueError: bad"]
    nb.cells[3].outputs = [_stream("Traceback (most recent call last):\n  ...\n", "stderr")]
    assert _rules(_findings(tmp_path, nb)) == {"error-output"}


@pytest.mark.parametrize("text", [
    "Reading the rows: ANALYSIS", "would have lost LOST_TEXT.", "The reader RESULT_TEXT",
    "Most mistakes ERROR_TEXT", "about RUNTIME on 2 cores", "EPOCHS = EPOCHS_VALUE",
    "TODO: say why", "FIXME", "accuracy {acc:.3f} against {baseline}", "share {:.0%}",
])
def test_placeholders_and_unformatted_templates_in_markdown(tmp_path, text):
    found = _findings(tmp_path, _notebook([("markdown", text, None)]))
    assert found and _rules(found) <= {"placeholder", "template"}
    assert all(f.cell == 3 for f in found)


def test_placeholders_and_templates_in_outputs(tmp_path):
    nb = _notebook([("code", "show()", [_display({"text/markdown": "Rows: ANALYSIS",
                                                  "text/plain": "<Markdown>"})]),
                    ("code", "print('{acc:.3f}')", [_stream("accuracy {acc:.3f}\n")])])
    assert {(f.cell, f.rule) for f in _findings(tmp_path, nb)} == {(3, "placeholder"),
                                                                   (4, "template")}


def test_code_math_dicts_and_sets_are_not_templates(tmp_path):
    nb = _notebook([
        ("markdown", "Mean pooling: $\\bar{h} = \\frac{1}{n}\\sum_i h_i$ and `{name}` in code.\n"
                     "```python\nprint(f\"{acc:.3f}\")\n```", None),
        ("code", "print(d)", [_stream("{'a': 1, 'b': [2, 3]} {1, 2} {}\n")]),
    ])
    assert _findings(tmp_path, nb) == []


@pytest.mark.parametrize("line", [
    "finance: bundled: /work/main/data/finance/finance_sample.csv -> train 420",
    "saved to /root/.cache/huggingface/x", "(stored in /tmp/course08-o6v5ikk_/trials.jsonl)",
    "/home/ana/course/notebooks/runs", "/opt/venv/lib/python3.11/site-packages/torch/x.py:12",
])
def test_machine_paths_in_outputs(tmp_path, line):
    nb = _notebook([("code", "run()", [_stream(line + "\n")])])
    assert [(f.cell, f.rule) for f in _findings(tmp_path, nb)] == [(3, "machine-path")]


def test_relative_paths_and_urls_are_fine(tmp_path):
    nb = _notebook([("code", "run()", [_stream(
        "-> runs/12_production/model/, data/finance/finance_sample.csv, "
        "https://example.org/home/page, ~/tmp/notes\n")])])
    assert _findings(tmp_path, nb) == []


def _bert_repr(layers=6):
    layer = ("      (0-{n}): {k} x BertLayer(\n        (attention): BertAttention(\n"
             "          (self): BertSdpaSelfAttention(\n"
             "            (query): Linear(in_features=384, out_features=384, bias=True)\n"
             "            (key): Linear(in_features=384, out_features=384, bias=True)\n"
             "            (value): Linear(in_features=384, out_features=384, bias=True)\n"
             "            (dropout): Dropout(p=0.1, inplace=False)\n          )\n")
    return ("BertForSequenceClassification(\n  (bert): BertModel(\n"
            "    (embeddings): BertEmbeddings(\n"
            "      (word_embeddings): Embedding(30522, 384, padding_idx=0)\n"
            "      (position_embeddings): Embedding(512, 384)\n"
            "      (token_type_embeddings): Embedding(2, 384)\n"
            "      (LayerNorm): LayerNorm((384,), eps=1e-12, elementwise_affine=True)\n"
            "      (dropout): Dropout(p=0.1, inplace=False)\n    )\n"
            "    (encoder): BertEncoder(\n      (layer): ModuleList(\n"
            + layer.format(n=layers - 1, k=layers) * 3
            + "  )\n  (classifier): Linear(in_features=384, out_features=3, bias=True)\n)\n")


def test_a_whole_model_repr_is_flagged_one_small_module_is_not(tmp_path):
    nb = _notebook([("code", "model", [_display({"text/plain": _bert_repr()}, "execute_result")])])
    found = _findings(tmp_path, nb)
    assert [(f.cell, f.rule) for f in found] == [(3, "model-repr")]
    assert "BertForSequenceClassification(" in found[0].excerpt
    small = ("AdaptedOutput(\n  (dense): Linear(in_features=384, out_features=384, bias=True)\n"
             "  (adapter): BottleneckAdapter(\n    (down): Linear(384, 24)\n  )\n)\n")
    assert _findings(tmp_path, _notebook([("code", "print(x)", [_stream(small)])])) == []


@pytest.mark.parametrize("text", [
    "Map:   0%|          | 0/420 [00:00<?, ? examples/s]\n",
    "100%|██████████| 27/27 [00:03<00:00,  8.1it/s]\n",
    "epoch 1  12.3 it/s]\n",
    "step 10\rstep 20\n",
])
def test_progress_bar_residue(tmp_path, text):
    nb = _notebook([("code", "train()", [_stream(text, "stderr")])])
    assert [(f.cell, f.rule) for f in _findings(tmp_path, nb)] == [(3, "progress-bar")]


def test_repeated_noise_is_one_line_per_cell_and_rule(tmp_path):
    bars = "".join(f"Map: {p}%|  | {p}/100\n" for p in range(0, 100, 10))
    found = _findings(tmp_path, _notebook([("code", "tok()", [_stream(bars, "stderr")])]))
    assert len(found) == 1 and found[0].excerpt.endswith("(+9 more)")


WIDGET = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                       "version_minor": 0},
          "text/plain": "VBox(children=(Text(value='Sales rose'),))"}


def test_a_widget_needs_a_static_fallback_in_its_cell(tmp_path):
    alone = _notebook([("code", "explorer()", [_display(WIDGET, "execute_result")])])
    found = _findings(tmp_path, alone)
    assert [(f.cell, f.rule) for f in found] == [(3, "widget-without-fallback")]
    assert "VBox(children=" in found[0].excerpt
    for fallback in ([_stream("12 tokens: [CLS] sales rose ...\n")],
                     [_display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]):
        nb = _notebook([("code", "explorer()", [*fallback, _display(WIDGET, "execute_result")])])
        assert _findings(tmp_path, nb) == []
    bundle = {**WIDGET, "text/html": "<pre>12 tokens</pre>"}  # fallback in the same output
    nb = _notebook([("code", "explorer()", [_display(bundle, "execute_result")])])
    assert _findings(tmp_path, nb) == []


def test_skipped_sections_and_warnings(tmp_path):
    nb = _notebook([
        ("code", "fill()", [_stream("no masked-language-model head: skipping fill-mask.\n")]),
        ("code", "noise()", [_stream("skipped: this needs the real Financial PhraseBank\n")]),
        ("code", "ddp()", [_stream("[rank1]:[W1123 00:51:02 reducer.cpp:1529] Warning: "
                                   "find_unused_parameters=True\n", "stderr")]),
        ("code", "old()", [_stream("/x.py:3: FutureWarning: `foo` is deprecated\n", "stderr")]),
    ])
    assert [(f.cell, f.rule) for f in _findings(tmp_path, nb)] == [
        (3, "skipped"), (4, "skipped"), (5, "warning"), (6, "warning")]


def test_main_prints_one_line_per_finding_and_fails(tmp_path, capsys):
    nb = _notebook([("markdown", "Reading the rows: ANALYSIS", None)])
    bad, good = tmp_path / "05_title.ipynb", tmp_path / "sub" / "05_title.ipynb"
    nbformat.write(nb, bad)
    good.parent.mkdir()
    nbformat.write(_notebook(), good)
    assert checker.main([str(good)]) == 0
    assert capsys.readouterr().out == "1 notebook(s) clean\n"
    assert checker.main([str(bad), str(good)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{bad}:3: placeholder: Reading the rows: ANALYSIS"]


# ------------------------------------------------------------------ Colab
def _pyproject(tmp_path, url=None):
    path = tmp_path / "pyproject.toml"
    urls = f'\n[project.urls]\nRepository = "{url}"\n' if url else ""
    path.write_text(f'[project]\nname = "course_lib"\n{urls}\n[tool.ruff]\nline-length = 100\n')
    return path


def test_repository_url_comes_from_project_urls_only(tmp_path):
    assert checker.repository_url(_pyproject(tmp_path)) is None
    url = "https://github.com/owner/course"
    assert checker.repository_url(_pyproject(tmp_path, url + ".git")) == url
    assert colab.repository(_pyproject(tmp_path, url)) == url
    with pytest.raises(colab.NoRepository, match="no \\[project.urls\\] Repository"):
        colab.repository(_pyproject(tmp_path))
    with pytest.raises(colab.NoRepository, match="not a https://github.com/OWNER/NAME"):
        colab.repository(_pyproject(tmp_path, "https://gitlab.com/owner/course"))


def test_colab_tool_refuses_without_a_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(colab, "PYPROJECT", _pyproject(tmp_path))
    path = tmp_path / "05_title.ipynb"
    nbformat.write(_notebook(), path)
    before = path.read_text()
    assert colab.main([str(path)]) == 2
    assert "no [project.urls] Repository" in capsys.readouterr().err
    assert path.read_text() == before


def test_colab_cells_use_the_declared_repository_and_exact_pins(tmp_path, monkeypatch):
    url = "https://github.com/owner/course"
    monkeypatch.setattr(colab, "PYPROJECT", _pyproject(tmp_path, url))
    path = tmp_path / "05_title.ipynb"
    nbformat.write(_notebook(), path)
    assert colab.main([str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert "colab.research.google.com/github/owner/course/blob/main/notebooks/05_title.ipynb" \
        in nb.cells[0].source
    setup = nb.cells[2].source
    assert f'"{url}.git"' in setup and '"-r", "/content/course/requirements.txt"' in setup
    assert '"--no-deps", "-e", "/content/course"' in setup and "[quick]" not in setup
    compile(setup, "colab-setup", "exec")
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert checker.check(path, url) == []  # the checker accepts the declared repository
    assert "colab" in _rules(checker.check(path, "https://github.com/someone/else"))
    assert "colab" in _rules(checker.check(path, None))  # no repository: no Colab cell


def test_colab_cells_are_idempotent_and_removal_restores_the_notebook():
    original = _notebook()
    nb = nbformat.from_dict(original)
    assert colab.add_colab_cells(nb, "05_title.ipynb", "https://github.com/owner/course")
    assert not colab.add_colab_cells(nb, "05_title.ipynb", "https://github.com/owner/course")
    assert colab.add_colab_cells(nb, "05_title.ipynb", "https://github.com/other/course")
    assert len(nb.cells) == len(original.cells) + 2
    assert colab.remove_colab_cells(nb)
    assert not colab.remove_colab_cells(nb)
    assert nbformat.writes(nb) == nbformat.writes(original)  # counts moved back down
