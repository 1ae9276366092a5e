"""The TrafficInspector rendered by JupyterLab in headless Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

_SETUP = """\
import json
from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import TrafficInspector

rec = Recording(clock=TickClock())
rec.record("in", json.dumps({"type": "user_message", "message": "hello", "agent_id": "a1"}))
rec.record("out", json.dumps({"type": "agent_response_start"}))
for kind, text in [
    ("internal_monologue", "the user says hello"),
    ("assistant_message", "Hi there!"),
    ("function_message", "send_message ran"),
]:
    rec.record("out", json.dumps(
        {"type": "agent_response", "message_type": kind, "message": text}))
rec.record("out", json.dumps({"type": "agent_response_end"}))
_ = rec.record("out", b"\\x00\\x01\\x02binary")
"""

_SHOW = "inspector = TrafficInspector(rec, page_size=20)\ninspector"

# Frames recorded on another thread after the widget is shown: live updates.
_LATER = """\
import threading
def more():
    for i in range(3):
        rec.record("in", json.dumps({"type": "user_message", "message": f"later {i}"}))
worker = threading.Thread(target=more)
worker.start()
worker.join()
"""


def test_inspector_renders_filters_and_selects(jupyter_lab, lab):
    jupyter_lab.write_notebook("inspector.ipynb", [_SETUP, _SHOW, _LATER])
    lab.open("inspector.ipynb")
    lab.run_all()
    page = lab.page

    rows = page.locator(".mlab-inspector .mlab-inspector-row")
    expect(rows).to_have_count(10)  # 7 at display time, 3 more from a thread
    expect(rows.last).to_have_attribute("data-seq", "10")
    lab.screenshot("rendered")
    notebook = page.locator(".jp-Notebook")
    expect(notebook).not_to_contain_text("Loading widget")
    expect(notebook).not_to_contain_text("Error displaying widget")
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    expect(rows.first).to_have_attribute("data-seq", "1")
    expect(page.locator(".mlab-page-label")).to_contain_text("rows 1–10 of 10")

    # The type dropdown is a <select> inside the widget with our class.
    page.locator(".mlab-filter-type select").select_option("agent_response")
    expect(rows).to_have_count(3)
    for message_type in ("internal_monologue", "assistant_message", "function_message"):
        expect(
            page.locator(f".mlab-inspector-row[data-message-type='{message_type}']")
        ).to_have_count(1)
    lab.screenshot("filtered")

    # A bad regex is explained in the widget, not raised as a traceback.
    page.locator(".mlab-filter-regex input").check()
    page.locator(".mlab-filter-text input").fill("hello(")
    page.locator(".mlab-filter-text input").press("Enter")
    expect(page.locator(".mlab-inspector-message")).to_contain_text("invalid regular expression")
    expect(page.locator(".jp-OutputArea-output pre:has-text('Traceback')")).to_have_count(0)

    # Clicking a row selects it: the detail pane shows its JSON, pretty-printed.
    page.locator(".mlab-filter-text input").fill("Hi th")
    page.locator(".mlab-filter-text input").press("Enter")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(rows.first).to_have_class(re.compile(r"\bmlab-selected\b"))
    detail = page.locator(".mlab-inspector-detail .mlab-detail")
    expect(detail).to_have_attribute("data-kind", "json")
    expect(detail).to_contain_text('"message": "Hi there!"')
    lab.screenshot("selected")
