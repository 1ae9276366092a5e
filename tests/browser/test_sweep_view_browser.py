"""The SweepView rendered by JupyterLab in headless Chromium: filter, click a run, see it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

_SETUP = """\
import concurrent.futures
from memgpt_lab.sweep import Conversation, ConversationTurn, Expect, Sweep
from memgpt_lab.widgets import SweepView

conversations = [
    Conversation("greeting", (ConversationTurn("Hello, is anyone there?"),)),
    Conversation("fact", (ConversationTurn(
        "Remember that my favourite language is OCaml.",
        Expect(calls=("archival_memory_insert",)),
    ),)),
]
sweep = Sweep(conversations, presets=["memgpt_chat", "memgpt_minimal"])
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    result = sweep.run(pool, progress=False)
"""

_SHOW = "view = SweepView(result)\nview"


def test_sweep_view_filters_and_opens_a_run(jupyter_lab, lab):
    jupyter_lab.write_notebook("sweep_view.ipynb", [_SETUP, _SHOW])
    lab.open("sweep_view.ipynb")
    lab.run_all()
    page = lab.page

    rows = page.locator(".mlab-sweep-view .mlab-sweep-row")
    expect(rows).to_have_count(4)
    notebook = page.locator(".jp-Notebook")
    expect(notebook).not_to_contain_text("Error displaying widget")
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    expect(page.locator(".mlab-sweep-view svg .mlab-sweep-bar")).to_have_count(2)
    lab.screenshot("rendered")

    page.locator(".mlab-sweep-filter-status select").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("memgpt_minimal")

    rows.first.click()
    expect(rows.first).to_have_class(re.compile(r"\bmlab-selected\b"))
    detail = page.locator(".mlab-sweep-view .mlab-sweep-detail")
    expect(detail).to_contain_text("not called: archival_memory_insert")
    inspector_rows = page.locator(".mlab-sweep-view .mlab-inspector .mlab-inspector-row")
    expect(inspector_rows.first).to_have_attribute("data-type", "user_message")
    expect(inspector_rows.nth(3)).to_be_attached()  # waits for the rows, then checks
    lab.screenshot("opened")
