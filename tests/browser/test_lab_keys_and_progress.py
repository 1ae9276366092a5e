"""The Lab's keyboard and progress in JupyterLab; a notebook's widgets after reopening it.

- Enter sends, Shift+Enter is a new line, Escape drops the pending step; Enter
  searches in the Memory tab.
- A slow model shows a spinner with the seconds elapsed, and Stop ends the
  chain after the step under way.
- Notebook 05 run, saved and reopened shows its TrafficInspector (its last cell
  used to close it: "Error displaying widget: model not found").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 30_000

KEYS_NOTEBOOK = [
    "import json\n"
    "import time\n"
    "from memgpt_lab import FixedClock\n"
    "from memgpt_lab.llm import ScriptedModel\n"
    "from memgpt_lab.widgets import Lab\n"
    "\n"
    "class Slow(ScriptedModel):\n"
    '    """Thinks for a second about anything said slowly."""\n'
    "    def chat(self, messages, functions):\n"
    '        if any("slowly" in json.dumps(m) for m in messages[-4:]):\n'
    "            time.sleep(1.0)\n"
    "        return super().chat(messages, functions)\n"
    "\n"
    'lab = Lab(clock=FixedClock(), agent_id="keys", model=Slow())\n'
    "lab",
]


def _run_lab(jupyter_lab, lab, name: str):  # type: ignore[no-untyped-def]
    """Run :data:`KEYS_NOTEBOOK` as ``name``; the Lab it shows, once visible."""
    jupyter_lab.write_notebook(name, KEYS_NOTEBOOK)
    lab.open(name)
    lab.run_all()
    root = lab.page.locator(".mlab-lab")
    expect(root).to_be_visible(timeout=TIMEOUT_MS)
    return root


def test_enter_sends_shift_enter_breaks_escape_cancels(jupyter_lab, lab) -> None:  # type: ignore[no-untyped-def]
    root = _run_lab(jupyter_lab, lab, "keys.ipynb")
    box = root.locator(".mlab-console-input textarea")
    entries = root.locator(".mlab-console .mlab-entry")
    expect(entries).to_have_count(0)

    box.click()
    box.type("Hello")
    box.press("Shift+Enter")  # a new line, nothing sent
    box.type("there")
    expect(box).to_have_value("Hello\nthere")
    expect(entries).to_have_count(0)
    box.press("Enter")
    expect(root.locator(".mlab-console .mlab-user").first).to_have_text(
        re.compile(r"you\s+Hello\s+there"), timeout=TIMEOUT_MS
    )
    expect(box).to_have_value("", timeout=TIMEOUT_MS)
    lab.screenshot("sent-with-enter")

    # Escape drops the pending heartbeat of a stepped message.
    box.fill("My name is Bob")
    root.locator("button.mlab-console-step").click()
    pending = root.locator(".mlab-console-pending")
    expect(pending).to_contain_text("heartbeat", timeout=TIMEOUT_MS)
    box.press("Escape")
    expect(pending).not_to_contain_text("heartbeat", timeout=TIMEOUT_MS)
    expect(root.locator(".mlab-console .mlab-alert").last).to_contain_text(
        "Dropped the pending heartbeat"
    )

    # Enter searches memory.
    root.locator(".lm-TabBar-tab", has_text="Memory").click()
    query = root.locator(".mlab-memory-query input")
    query.fill("Bob")
    query.press("Enter")
    expect(root.locator(".mlab-memory-results")).to_contain_text(
        "in recall memory", timeout=TIMEOUT_MS
    )
    expect(root.locator(".mlab-memory-results .mlab-result-recall").first).to_contain_text("Bob")
    expect(root.locator(".mlab-memory-chart svg")).to_be_visible()


def test_a_slow_turn_shows_progress_and_stop_ends_the_chain(jupyter_lab, lab) -> None:  # type: ignore[no-untyped-def]
    root = _run_lab(jupyter_lab, lab, "progress.ipynb")
    box = root.locator(".mlab-console-input textarea")
    box.fill("Remember that I speak slowly")
    box.press("Enter")
    busy = root.locator(".mlab-console-busy")
    expect(busy).to_have_class(re.compile("mlab-busy-on"), timeout=TIMEOUT_MS)
    expect(busy).to_contain_text(re.compile(r"Thinking… step 1 \d+\.\d s"))
    stop = root.locator("button.mlab-console-stop")
    expect(stop).to_be_visible()
    expect(root.locator("button.mlab-console-send")).to_be_disabled()
    lab.screenshot("thinking")
    stop.click()  # the kernel hears it while the model thinks: the turn runs in a thread
    expect(root.locator(".mlab-console .mlab-alert").last).to_contain_text(
        "Stopped after 1 step(s)", timeout=TIMEOUT_MS
    )
    expect(busy).not_to_have_class(re.compile("mlab-busy-on"), timeout=TIMEOUT_MS)
    expect(stop).to_be_hidden()
    expect(root.locator(".mlab-console-pending")).to_contain_text("heartbeat")
    expect(root.locator(".mlab-console .mlab-assistant")).to_have_count(0)
    # Step continues the chain where Stop left it.
    root.locator("button.mlab-console-step").click()
    expect(root.locator(".mlab-console .mlab-assistant").last).to_contain_text(
        "you speak slowly", timeout=TIMEOUT_MS
    )


def test_notebook_05_reopened_shows_its_inspector(jupyter_lab, lab) -> None:  # type: ignore[no-untyped-def]
    notebook = ROOT / "notebooks" / "05_live_server.ipynb"
    jupyter_lab.copy_notebook(notebook)
    lab.open(notebook.name)
    lab.run_all()
    page = lab.page
    expect(page.locator(".mlab-inspector-table").first).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("menuitem", name="File", exact=True).first.click()
    # the item's accessible name carries its shortcut ("Save Notebook Ctrl+S")
    page.get_by_role("menuitem", name=re.compile(r"^Save Notebook")).first.click()
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=TIMEOUT_MS)
    lab.open(notebook.name)  # reopened from disk, its kernel still running
    table = page.locator(".mlab-inspector-table").first
    table.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
    expect(table).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator(".mlab-inspector-row").first).to_be_attached(timeout=TIMEOUT_MS)
    for output in page.locator(".jp-OutputArea").all():
        expect(output).not_to_contain_text("Error displaying widget")
    lab.screenshot("reopened")
