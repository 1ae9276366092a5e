"""The public surface: ``memgpt_lab.__all__`` is complete, sorted, lazy and light to import."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import memgpt_lab
from memgpt_lab.errors import LabError

# What a user of the agent core needs from the top level (the list).
REQUIRED = {
    "Agent",
    "AgentConfig",
    "ArchivalMemory",
    "ChatModel",
    "CollectingInterface",
    "ContextWindowExceededError",
    "CoreMemory",
    "DEFAULT_PRESET",
    "FixedClock",
    "LLMError",
    "LabError",
    "MemoryLimitError",
    "MultiInterface",
    "PresetError",
    "PrintingInterface",
    "RecallMemory",
    "ReplayModel",
    "Rule",
    "ScriptedModel",
    "Turn",
    "UnknownNameError",
    "create_agent_from_config",
    "create_agent_from_preset",
    "get_human_text",
    "get_model",
    "get_persona_text",
    "list_humans",
    "list_personas",
    "list_presets",
    "load_preset",
    "register_function",
    "save_preset",
    "system",
    "use_preset",
}


def test_all_is_sorted_and_unique() -> None:
    assert memgpt_lab.__all__ == sorted(memgpt_lab.__all__)
    assert len(set(memgpt_lab.__all__)) == len(memgpt_lab.__all__)


def test_all_is_the_export_table() -> None:
    assert set(memgpt_lab.__all__) == {*memgpt_lab._EXPORTS, "__version__", "system"}
    assert dir(memgpt_lab) == memgpt_lab.__all__


def test_required_names_are_exported() -> None:
    assert set(memgpt_lab.__all__) >= REQUIRED, sorted(REQUIRED - set(memgpt_lab.__all__))


@pytest.mark.parametrize("name", sorted(memgpt_lab._EXPORTS))
def test_every_export_resolves_to_its_definition(name: str) -> None:
    module = importlib.import_module(memgpt_lab._EXPORTS[name])
    assert getattr(memgpt_lab, name) is getattr(module, name)
    assert name in getattr(module, "__all__", [name])


def test_system_is_the_module() -> None:
    assert memgpt_lab.system is importlib.import_module("memgpt_lab.system")
    assert isinstance(memgpt_lab.__version__, str)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        memgpt_lab.Nope  # noqa: B018


def test_every_error_in_the_reexported_modules_is_exported() -> None:
    modules = {importlib.import_module(m) for m in set(memgpt_lab._EXPORTS.values())}
    errors = {
        name
        for module in modules
        for name in getattr(module, "__all__", [])
        if inspect.isclass(getattr(module, name)) and issubclass(getattr(module, name), LabError)
    }
    assert errors
    assert errors <= set(memgpt_lab.__all__), sorted(errors - set(memgpt_lab.__all__))


def test_type_checking_imports_match_the_export_table() -> None:
    """IDEs and mypy read the TYPE_CHECKING block; it must show the same names."""
    tree = ast.parse(Path(memgpt_lab.__file__).read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    imported: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    expected = {name: f"{module}.{name}" for name, module in memgpt_lab._EXPORTS.items()}
    expected["system"] = "memgpt_lab.system"
    assert imported == expected


HEAVY = ("ipywidgets", "websockets", "yaml", "jupyter", "jupyterlab", "jupyter_client", "IPython")

PROBE = """
import json, sys
import memgpt_lab
first = sorted(sys.modules)
{after}
print(json.dumps([first, sorted(sys.modules)]))
"""


def imported_modules(after: str = "") -> tuple[list[str], list[str]]:
    code = PROBE.format(after=after)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    first, second = json.loads(out)
    return first, second


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY or m.startswith("jupyter")]


def test_import_is_light_in_a_fresh_interpreter() -> None:
    first, after_core = imported_modules(
        "memgpt_lab.Agent; memgpt_lab.ScriptedModel; memgpt_lab.CollectingInterface"
    )
    assert heavy(first) == []
    assert [m for m in first if m.startswith("memgpt_lab.")] == []
    # the agent core itself needs none of them either
    assert heavy(after_core) == []
    assert "memgpt_lab.agent" in after_core


def test_presets_bring_yaml_only_when_used() -> None:
    _, modules = imported_modules("memgpt_lab.create_agent_from_preset")
    assert "yaml" in modules
    assert "websockets" not in modules and "ipywidgets" not in modules
