"""The README's promises: its tour runs, and its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_tour_runs_and_prints_the_send_message_step():
    tour = re.search(r"```python\n(.*?)```", README, re.DOTALL)
    assert tour is not None, "README has no python tour"
    result = subprocess.run(
        [sys.executable, "-c", tour.group(1)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    kinds = [line.split()[3] for line in result.stdout.splitlines()[1:]]
    assert kinds == [
        "internal_monologue",
        "function_message",
        "assistant_message",
        "function_message",
    ]


def test_every_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert result.returncode == 0, f"README example failed:\n{block}\n{result.stderr}"


def test_the_tour_is_ten_lines():
    tour = re.search(r"```python\n(.*?)```", README, re.DOTALL)
    assert tour is not None
    code_lines = [line for line in tour.group(1).splitlines() if line.strip()]
    assert len(code_lines) <= 11  # ten statements; the import wraps once


def test_readme_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, re.MULTILINE):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), (
            f"make {target} is not in the Makefile"
        )
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
