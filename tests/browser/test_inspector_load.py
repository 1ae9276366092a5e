"""The TrafficInspector and the Timeline in JupyterLab while a server in the kernel is busy.

A LabServer runs in the kernel, its recording shown by a live TrafficInspector
and a live Timeline; ten MemGPT-style clients in a process of their own run
one-step turns as fast as it answers. The browser records what a person would
feel: animation frames per second while the widgets update, the longest
freeze, and how long the Timeline takes to show every frame once the load
stops. Those are figures, written to ``test-output/browser/<test>/figures.json``
(timing targets belong in ``make bench``); what is asserted is behaviour:
every frame reaches the Timeline, its SVG stays small, the inspector follows
with a full page, and the kernel's threads do not grow with the load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CLIENTS, TURNS = 10, 200

_SETUP = """\
import json, os, subprocess, sys, threading
from memgpt_lab.ws.server import LabServer
from memgpt_lab.widgets import Timeline, TrafficInspector

server = LabServer().start()
rec = server.recording
inspector = TrafficInspector(rec, page_size=50)
inspector"""
_TIMELINE = "timeline = Timeline(rec)\ntimeline"
_LOAD = f"""\
threads = [threading.active_count()]
widget_threads = [0]
new_threads = set()
done = threading.Event()
before = set(threading.enumerate())

def count_threads():
    while not done.wait(0.02):
        now = threading.enumerate()
        threads.append(len(now))
        # The widgets' threads: their scheduler, and any timer (the old design made one a frame).
        ours = [t for t in now if t.name == "memgpt-lab-widgets" or isinstance(t, threading.Timer)]
        widget_threads.append(len(ours))
        new_threads.update(t.name for t in now if t not in before)

threading.Thread(target=count_threads, daemon=True).start()
load = subprocess.Popen(
    [sys.executable, "-c",
     "import sys; from bench.bench_server import drive; "
     "print(drive(sys.argv[1], {CLIENTS}, {TURNS}, 5, int(sys.argv[2]))['turns'])",
     server.url, str(os.getpid())],
    cwd={str(ROOT)!r}, stdout=subprocess.PIPE, text=True)
turns = int(load.communicate(timeout=300)[0].split()[-1])
done.set()
print(json.dumps({{"frames": len(rec), "turns": turns,
                  "threads_before": threads[0], "threads_max": max(threads),
                  "widget_threads_max": max(widget_threads),
                  "new_threads": sorted(new_threads)}}))"""

# Animation frames and every change of the Timeline's frame count, in page time.
_WATCH = """() => {
    window.__mlab = {ticks: [], changes: []};
    const tick = (t) => { window.__mlab.ticks.push(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    new MutationObserver(() => {
        const svg = document.querySelector('.mlab-timeline-widget svg.mlab-timeline');
        if (svg) window.__mlab.changes.push([performance.now(), Number(svg.dataset.frames)]);
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def test_widgets_keep_up_with_a_busy_server(jupyter_lab, lab, screenshot_dir):
    jupyter_lab.write_notebook("load.ipynb", [_SETUP, _TIMELINE, _LOAD])
    lab.open("load.ipynb")
    page = lab.page
    page.evaluate(_WATCH)
    lab.run_all()
    result = json.loads(
        page.locator(".jp-OutputArea-output").filter(has_text="threads_max").inner_text()
    )
    frames = result["frames"]
    assert result["turns"] == CLIENTS * TURNS
    # Every frame reaches the Timeline (its last live redraw follows the load).
    svg = page.locator(".mlab-timeline-widget svg.mlab-timeline")
    expect(svg).to_have_attribute("data-frames", str(frames), timeout=30_000)
    caught_up = page.evaluate("() => performance.now()")
    watched = page.evaluate("() => window.__mlab")
    elements = page.evaluate(
        "() => document.querySelector('.mlab-timeline-widget svg').querySelectorAll('*').length"
    )
    svg_bytes = page.evaluate(
        "() => document.querySelector('.mlab-timeline-widget svg').outerHTML.length"
    )
    # The inspector follows with the newest full page.
    rows = page.locator(".mlab-inspector .mlab-inspector-row")
    expect(rows).to_have_count(50)
    expect(rows.last).to_have_attribute("data-seq", str(frames))
    expect(page.locator(".mlab-page-label")).to_contain_text(
        f"rows {frames - 49:,}–{frames:,} of {frames:,}"
    )
    assert elements < 5_000, elements
    # One widget thread for every widget: none per redraw or per frame.
    assert result["widget_threads_max"] == 1, result
    expect(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    lab.screenshot("after_load")

    changes = watched["changes"]
    assert changes, "the Timeline never redrew during the load"
    start, end = changes[0][0], changes[-1][0]
    ticks = [t for t in watched["ticks"] if start <= t <= end]
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    redraws = len({count for _, count in changes})
    figures = {
        "frames": frames,
        "turns": result["turns"],
        "seconds_of_live_updates": round((end - start) / 1000, 2),
        "fps_during_updates": round(len(ticks) / max((end - start) / 1000, 1e-3), 1),
        "longest_freeze_ms": round(max(gaps, default=0.0), 1),
        "timeline_redraws_seen": redraws,
        "timeline_svg_elements": elements,
        "timeline_svg_bytes": svg_bytes,
        "kernel_threads_before_and_max": [result["threads_before"], result["threads_max"]],
        "kernel_threads_started_during_load": result["new_threads"],
        "ms_from_last_redraw_to_check": round(caught_up - end, 1),
    }
    (screenshot_dir / "figures.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(json.dumps(figures))
