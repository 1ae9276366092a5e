"""Notebook 01 in JupyterLab: the Lab renders, its buttons drive the agent, traffic shows.

Set ``MEMGPT_LAB_UPDATE_DOCS=1`` to also save the Lab's screenshot as
``docs/lab.png`` (the README shows it); otherwise every screenshot goes to
``test-output/browser/<test>/`` only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
TIMEOUT_MS = 30_000
#: Frames the notebook's own cells record: one step (4), then one console turn (10).
FRAMES_AFTER_RUN = 14


def test_quickstart_lab_buttons_record_traffic(jupyter_lab, lab, screenshot_dir) -> None:  # type: ignore[no-untyped-def]
    jupyter_lab.copy_notebook(QUICKSTART)
    lab.open(QUICKSTART.name)
    lab.run_all()
    page = lab.page
    root = page.locator(".mlab-lab")
    expect(root).to_be_visible(timeout=TIMEOUT_MS)
    outputs = page.locator(".jp-OutputArea")
    expect(outputs.first).not_to_contain_text("Loading widget")
    for output in outputs.all():
        expect(output).not_to_contain_text("Error displaying widget")
        expect(output).not_to_contain_text("Loading widget")
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)

    def tab(title: str) -> None:
        root.locator(".lm-TabBar-tab", has_text=title).click()

    # The console shows the turn the notebook sent from code, each kind styled.
    entries = root.locator(".mlab-console .mlab-entry")
    expect(entries).to_have_count(9, timeout=TIMEOUT_MS)
    expect(root.locator(".mlab-console .mlab-assistant").first).to_contain_text(
        "Nice to meet you, Ada"
    )
    lab.screenshot("rendered")

    rows = root.locator(".mlab-inspector-row")
    tab("Traffic")
    expect(rows).to_have_count(FRAMES_AFTER_RUN, timeout=TIMEOUT_MS)

    # Send: a whole turn, recorded as a server would frame it (7 frames).
    tab("Console")
    root.locator(".mlab-console-input textarea").fill("Hello again")
    root.locator("button.mlab-console-send").click()
    expect(root.locator(".mlab-console .mlab-user").last).to_contain_text("Hello again")
    expect(root.locator(".mlab-console-input textarea")).to_have_value("")
    tab("Traffic")
    expect(rows).to_have_count(FRAMES_AFTER_RUN + 7, timeout=TIMEOUT_MS)

    # Step: one step of a heartbeat chain, then the pending heartbeat.
    tab("Console")
    root.locator(".mlab-console-input textarea").fill("My name is Bob")
    root.locator("button.mlab-console-step").click()
    expect(root.locator(".mlab-console-pending")).to_contain_text("heartbeat", timeout=TIMEOUT_MS)
    lab.screenshot("stepped")
    tab("Traffic")
    expect(rows).to_have_count(FRAMES_AFTER_RUN + 13, timeout=TIMEOUT_MS)
    tab("Console")
    root.locator("button.mlab-console-step").click()
    expect(root.locator(".mlab-console .mlab-heartbeat").last).to_be_visible(timeout=TIMEOUT_MS)
    expect(root.locator(".mlab-console .mlab-assistant").last).to_contain_text("Bob")
    expect(root.locator(".mlab-console-pending")).not_to_contain_text("heartbeat")
    lab.screenshot("console")
    if os.environ.get("MEMGPT_LAB_UPDATE_DOCS"):
        root.screenshot(path=str(screenshot_dir / "lab.png"))
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(screenshot_dir / "lab.png", ROOT / "docs" / "lab.png")

    tab("Traffic")
    expect(rows).to_have_count(FRAMES_AFTER_RUN + 19, timeout=TIMEOUT_MS)
    lab.screenshot("traffic")

    # A filter hides rows: only the client's three user messages stay.
    root.locator(".mlab-filter-type select").select_option("user_message")
    expect(rows).to_have_count(3, timeout=TIMEOUT_MS)
    for row in rows.all():
        expect(row).to_have_attribute("data-type", "user_message")
    lab.screenshot("filtered")

    # The memory tab shows what the agent wrote down.
    tab("Memory")
    expect(root.locator(".mlab-memory-human textarea")).to_have_value(
        "Name: Bob\nSomeone I have only just met. I know nothing else about them yet.",
        timeout=TIMEOUT_MS,
    )
