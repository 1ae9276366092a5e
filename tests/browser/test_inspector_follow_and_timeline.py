"""Follow mode of the TrafficInspector and the Timeline, rendered by JupyterLab in Chromium.

The Python tests check the traits; these check what a person sees: the table
keeps the newest row in view while following, stops following when scrolled
up (and then stays put as frames arrive), and the Timeline draws every frame.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: Lanes of the timeline, in order of first appearance (see ``_SETUP``).
LANES = [
    "user_message",
    "agent_response_start",
    "internal_monologue",
    "function_message",
    "assistant_message",
    "agent_response_end",
]
FRAMES_PER_TURN = len(LANES)
FIRST_TURNS = 5  # 30 rows: more than the table's 360 px show, fewer than a page

_SETUP = (
    """\
import json
from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import Timeline, TrafficInspector

rec = Recording(clock=TickClock())

def turn(n):
    rec.record("in", json.dumps({"type": "user_message", "message": f"message {n}"}))
    rec.record("out", json.dumps({"type": "agent_response_start"}))
    for kind, text in [
        ("internal_monologue", f"thinking about {n}"),
        ("function_message", "send_message ran"),
        ("assistant_message", f"answer {n}"),
    ]:
        rec.record("out", json.dumps(
            {"type": "agent_response", "message_type": kind, "message": text}))
    rec.record("out", json.dumps({"type": "agent_response_end"}))
"""
    + f"for n in range({FIRST_TURNS}):\n    turn(n)\n"
)

_SHOW_INSPECTOR = "inspector = TrafficInspector(rec, page_size=100)\ninspector"
_SHOW_TIMELINE = "timeline = Timeline(rec)\ntimeline"
# Run once by "Run All" and again by the test: each run is one more turn.
_LATER = f"turn(len(rec) // {FRAMES_PER_TURN})\nlen(rec)"

_SCROLLER = ".mlab-inspector .mlab-inspector-scroll"

# The newest row lies inside the scroller's visible box (and the box can scroll).
_NEWEST_IN_VIEW = """([selector, count]) => {
    const scroller = document.querySelector(selector);
    const rows = scroller ? scroller.querySelectorAll('.mlab-inspector-row') : [];
    if (rows.length !== count) return false;
    const box = scroller.getBoundingClientRect();
    const last = rows[rows.length - 1].getBoundingClientRect();
    return scroller.scrollHeight > scroller.clientHeight
        && last.top >= box.top - 1 && last.bottom <= box.bottom + 1;
}"""


def _scroll_state(page: Any) -> dict[str, float]:
    return page.eval_on_selector(
        _SCROLLER,
        "s => ({top: s.scrollTop, height: s.scrollHeight, client: s.clientHeight})",
    )


def _run_later_cell(lab: Any) -> None:
    """Run the last cell again (Run → Run Selected Cell and Do not Advance)."""
    cell = lab.page.locator(".jp-Notebook .jp-CodeCell").last
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    prompt.click()  # selects the cell, in command mode
    expect(cell).to_have_class(re.compile(r"\bjp-mod-selected\b"))
    # Not lab.click_menu: this item's accessible name ends with its shortcut.
    lab.page.get_by_role("menuitem", name="Run", exact=True).first.click()
    lab.page.get_by_role(
        "menuitem", name=re.compile(r"^Run Selected Cell and Do not Advance\b")
    ).click()
    lab.page.wait_for_function(
        """([before]) => {
            const prompts = document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt');
            const text = prompts[prompts.length - 1].textContent;
            return /\\[\\d+\\]/.test(text) && text.trim() !== before.trim();
        }""",
        arg=[before],
    )
    lab.wait_idle()


def _wait_newest_in_view(page: Any, rows: int) -> None:
    page.wait_for_function(_NEWEST_IN_VIEW, arg=[_SCROLLER, rows])


def test_timeline_draws_every_frame_in_its_lane(jupyter_lab, lab):
    jupyter_lab.write_notebook("timeline.ipynb", [_SETUP, _SHOW_INSPECTOR, _SHOW_TIMELINE, _LATER])
    lab.open("timeline.ipynb")
    lab.run_all()
    page = lab.page
    frames = (FIRST_TURNS + 1) * FRAMES_PER_TURN

    svg = page.locator(".mlab-timeline-widget svg.mlab-timeline")
    expect(svg).to_have_count(1)
    # The turn recorded after the widget was shown reaches it too (live redraw).
    expect(svg).to_have_attribute("data-frames", str(frames))
    expect(svg).to_have_attribute("data-lanes", str(len(LANES)))
    expect(svg.locator(".mlab-mark")).to_have_count(frames)
    for lane in LANES:
        expect(svg.locator(f".mlab-mark[data-lane='{lane}']")).to_have_count(FIRST_TURNS + 1)
    # Incoming frames are squares, outgoing ones circles.
    expect(svg.locator("rect.mlab-mark")).to_have_count(FIRST_TURNS + 1)
    expect(svg.locator("circle.mlab-mark")).to_have_count(frames - FIRST_TURNS - 1)
    expect(svg.locator("g.mlab-lane text")).to_have_text(LANES)
    expect(svg.locator(".mlab-turn")).to_have_count(FIRST_TURNS + 1)
    box = svg.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    lab.screenshot("timeline")


def test_inspector_opens_on_the_newest_row(jupyter_lab, lab):
    # No frames after the widget is shown: only its first drawing can scroll.
    jupyter_lab.write_notebook("opens.ipynb", [_SETUP, _SHOW_INSPECTOR])
    lab.open("opens.ipynb")
    lab.run_all()
    frames = FIRST_TURNS * FRAMES_PER_TURN
    expect(lab.page.locator(".mlab-inspector .mlab-follow input")).to_be_checked()
    _wait_newest_in_view(lab.page, frames)
    lab.screenshot("opened")


def test_follow_keeps_the_newest_row_in_view_until_the_user_scrolls_up(jupyter_lab, lab):
    jupyter_lab.write_notebook("follow.ipynb", [_SETUP, _SHOW_INSPECTOR, _SHOW_TIMELINE, _LATER])
    lab.open("follow.ipynb")
    lab.run_all()
    page = lab.page
    rows = page.locator(".mlab-inspector .mlab-inspector-row")
    follow = page.locator(".mlab-inspector .mlab-follow input")
    frames = (FIRST_TURNS + 1) * FRAMES_PER_TURN

    expect(follow).to_be_checked()
    expect(rows).to_have_count(frames)
    _wait_newest_in_view(page, frames)
    lab.screenshot("following")

    # Frames recorded later, from a cell: they appear and the view follows them.
    _run_later_cell(lab)
    frames += FRAMES_PER_TURN
    expect(rows).to_have_count(frames)
    expect(rows.last).to_have_attribute("data-seq", str(frames))
    _wait_newest_in_view(page, frames)
    expect(follow).to_be_checked()
    lab.screenshot("followed")

    # The user scrolls the table up: follow turns off, in Python too (the
    # checkbox is linked to the table's trait through the kernel).
    page.locator(_SCROLLER).hover()
    page.mouse.wheel(0, -300)
    expect(follow).not_to_be_checked()
    scrolled = _scroll_state(page)
    assert 0 < scrolled["top"] < scrolled["height"] - scrolled["client"] - 4, scrolled
    lab.screenshot("scrolled_up")

    # New frames arrive and are listed, but the view stays where the user put it.
    _run_later_cell(lab)
    frames += FRAMES_PER_TURN
    expect(rows).to_have_count(frames)
    expect(page.locator(".mlab-page-label")).to_contain_text(f"rows 1–{frames} of {frames}")
    after = _scroll_state(page)
    assert after["top"] == scrolled["top"], (scrolled, after)
    assert after["height"] > scrolled["height"], (scrolled, after)
    expect(follow).not_to_be_checked()
    lab.screenshot("not_followed")

    # Ticking follow again brings the newest row back into view.
    follow.check()
    _wait_newest_in_view(page, frames)
    lab.screenshot("follow_again")
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
