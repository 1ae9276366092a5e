"""The stored notebooks: numbered, valid, executed, with the widget state that renders them.

nbval (``pytest --nbval notebooks/``) re-runs them and compares outputs; these
checks cover what nbval does not: that a stored notebook renders on GitHub or
nbviewer (its widget state is saved, and every widget an output shows is in it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def load(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def test_notebooks_are_numbered_in_sequence() -> None:
    names = [p.name for p in PATHS]
    assert len(names) >= 4, names
    for name in names:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name), name
    numbers = [int(name[:2]) for name in names]
    # 01 first, each number once, in order; a number may be held for a notebook still to come
    assert numbers[0] == 1 and numbers == sorted(set(numbers)), names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_is_valid_and_executed(path: Path) -> None:
    notebook = load(path)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith(f"# {path.name[:2]} ")  # titled with its number
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "no code cells"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "not run top to bottom in one fresh kernel"
    assert any(cell.outputs for cell in code), "no outputs saved"
    for cell in code:
        for output in cell.outputs:
            assert output.output_type != "error", f"an error is saved: {output.get('ename')}"
            assert output.get("name") != "stderr", f"stderr is saved: {output.text[:200]}"


def shown_widgets(notebook: Any) -> list[str]:
    """The model ids of the widgets a notebook's saved outputs show."""
    return [
        output.data[WIDGET_VIEW]["model_id"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if WIDGET_VIEW in output.get("data", {})
    ]


#: The notebooks whose saved outputs show widgets (the lab's notebooks, nearly all of them).
WIDGET_PATHS = [path for path in PATHS if shown_widgets(load(path))]


def test_most_notebooks_show_widgets() -> None:
    assert len(WIDGET_PATHS) >= len(PATHS) - 1


@pytest.mark.parametrize("path", WIDGET_PATHS, ids=lambda p: p.name)
def test_notebook_stores_the_state_of_every_widget_it_shows(path: Path) -> None:
    notebook = load(path)
    shown = shown_widgets(notebook)
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE)
    assert state is not None, "no widget state: execute with store_widget_state"
    assert state["version_major"] == 2 and isinstance(state["version_minor"], int)
    models = state["state"]
    missing = [model_id for model_id in shown if model_id not in models]
    assert not missing, f"outputs show widgets with no saved state: {missing}"
    # The children of what is shown are saved too, or the view cannot be built.
    for model_id in shown:
        stack = [model_id]
        while stack:
            model = models[stack.pop()]
            for child in model["state"].get("children", []):
                child_id = child.removeprefix("IPY_MODEL_")
                assert child_id in models, f"{model_id} has a child with no saved state"
                stack.append(child_id)


_NAME = r"[A-Za-z_][\w.]*"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_never_closes_a_widget_it_shows(path: Path) -> None:
    # A closed widget is gone from the kernel: a notebook reopened while its kernel
    # runs shows "Error displaying widget: model not found" where it was.
    notebook = load(path)
    shown: set[str] = set()
    closed: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        closed.update(re.findall(rf"\b({_NAME})\.close\(\)", cell.source))
        if any(WIDGET_VIEW in output.get("data", {}) for output in cell.outputs):
            lines = cell.source.strip().splitlines()
            last = lines[-1].split("#")[0].strip() if lines else ""
            if re.fullmatch(_NAME, last):
                shown.add(last)
            shown.update(re.findall(rf"\bdisplay\(({_NAME})\)", cell.source))
    assert not shown & closed, f"closes widgets it shows: {sorted(shown & closed)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_uses_only_the_public_api(path: Path) -> None:
    # What a notebook teaches, readers copy: never `builder._persona_choice`.
    private = [
        found
        for cell in load(path).cells
        if cell.cell_type == "code"
        for found in re.findall(r"\b[A-Za-z_]\w*\._(?!_)\w+", cell.source)
    ]
    assert not private, f"private names used: {private}"
