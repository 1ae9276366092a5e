"""No secret is ever written: a sentinel key goes through every path that writes, and no file holds it.

The paths: a cassette recorded from a real (served) model, a preset saved with
its model, a recording of the agent's traffic, the agent's memory snapshot, and
the outputs of an executed notebook that uses the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from memgpt_lab.llm import Cassette, OpenAIChatModel
from memgpt_lab.llm.providers import ModelSpec
from memgpt_lab.llm.server import LLMServer
from memgpt_lab.presets import create_agent_from_preset, load_preset, save_preset
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.system import FixedClock
from memgpt_lab.ws.interface import SyncWebSocketInterface

SENTINEL = "sk-SENTINEL-7f3a9c2e51d84b06a1"
VARIABLE = "MEMGPT_LAB_TEST_SECRET"


def test_the_key_reaches_no_written_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(VARIABLE, SENTINEL)
    with LLMServer(api_key=SENTINEL) as server:
        spec = ModelSpec("openai-compatible", "scripted", server.base_url, VARIABLE)
        preset = load_preset("memgpt_chat")
        preset.model = spec
        save_preset(preset, tmp_path / "preset.yaml")

        recording = Recording()
        cassette = Cassette(tmp_path / "cassette.jsonl", spec.build(), mode="all")
        with SyncWebSocketInterface() as interface:
            interface.register_client(MockWebSocket(recording))
            agent = create_agent_from_preset(
                load_preset(str(tmp_path / "preset.yaml")), None, cassette, clock=FixedClock()
            )
            for text in ("hello", "my name is Ada", "remember that the key is secret"):
                assert agent.turn(text).replies  # the key worked: the server refuses any other
            interface.flush()
        recording.to_jsonl(tmp_path / "traffic.jsonl")
        (tmp_path / "snapshot.json").write_text(json.dumps(agent.memory_snapshot()))
        (tmp_path / "repr.txt").write_text(f"{agent!r}\n{agent.model!r}\n{spec.build()!r}")

        notebook = nbformat.v4.new_notebook()
        notebook.cells = [
            nbformat.v4.new_code_cell(
                "from memgpt_lab.llm import OpenAIChatModel\n"
                f"model = OpenAIChatModel('scripted', base_url={server.base_url!r}, api_key_env={VARIABLE!r})\n"
                "model"
            ),
            nbformat.v4.new_code_cell("model.list_models()"),
            nbformat.v4.new_code_cell("vars(model).keys()"),
        ]
        NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
        nbformat.write(notebook, tmp_path / "used_the_key.ipynb")
    assert "'scripted'" in (tmp_path / "used_the_key.ipynb").read_text()  # the notebook ran

    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {
        "preset.yaml",
        "cassette.jsonl",
        "traffic.jsonl",
        "snapshot.json",
        "used_the_key.ipynb",
    }
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert SENTINEL not in text, f"{path.name} holds the key"
        assert SENTINEL[:12] not in text, f"{path.name} holds part of the key"
    assert VARIABLE in (tmp_path / "preset.yaml").read_text()  # where the key is, not what it is


def test_an_api_key_argument_is_never_in_repr_or_pickles() -> None:
    import pickle

    model = OpenAIChatModel("gpt-4o-mini", api_key=SENTINEL)
    assert SENTINEL not in repr(model)
    assert model.key_source == "the api_key argument"
    # a pickled copy keeps the key (it must work elsewhere) but never shows it
    assert SENTINEL not in repr(pickle.loads(pickle.dumps(model)))
