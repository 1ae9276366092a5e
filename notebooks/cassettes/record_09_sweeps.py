"""Re-record notebooks/cassettes/09_sweeps.jsonl, the cassette-backed model of notebook 09.

Run from the repository's root::

    .venv/bin/python notebooks/cassettes/record_09_sweeps.py

It starts ``serve-llm`` (an OpenAI-compatible endpoint answering with the scripted
model, on loopback, with a context window of 2,000 tokens) and runs every run of the notebook's sweep through the real
OpenAI client, wrapped in a ``Cassette`` that records each request and answer
(``mode="all"``: the file is rewritten). With ``OPENAI_API_KEY`` set it records
``gpt-4o-mini`` instead. Re-record when the presets, prompts or functions change
(a replay then stops with ``CassetteMismatchError``), then re-execute the notebook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
CASSETTE = "cassettes/09_sweeps.jsonl"  # as the notebook names it, from notebooks/
PRESETS = ["memgpt_chat", "memgpt_minimal"]


def main() -> int:
    from memgpt_lab.llm import Cassette, OpenAIChatModel
    from memgpt_lab.llm.server import Faults, LLMServer
    from memgpt_lab.sweep import Sweep, execute_run

    os.chdir(NOTEBOOKS)  # the model string, and so the run ids, are the notebook's
    sweep = Sweep("sweeps/conversations.yaml", presets=PRESETS, models=[f"cassette:{CASSETTE}"])
    server = None
    if os.environ.get("OPENAI_API_KEY"):
        model = OpenAIChatModel("gpt-4o-mini")
    else:
        # a served model with a small context window: it refuses prompts over 2,000 tokens
        # (OpenAI's context_length_exceeded), so the agent summarises where the scripted
        # model, with the agent's 8,192, never has to
        server = LLMServer(faults=Faults(overflow_after=2000)).start()
        model = OpenAIChatModel("scripted", base_url=server.base_url, api_key="sk-local")
    try:
        tape = Cassette(CASSETTE, model=model, mode="all")
        for spec in sweep.specs():
            run = execute_run(spec, model=tape)  # a model's error is recorded and replayed too
            print(f"{run['run_id']}: {run['status']}")
        print(f"{tape.recorded} answers recorded in {NOTEBOOKS / CASSETTE}")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
