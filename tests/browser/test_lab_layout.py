"""The Lab in JupyterLab at 1440, 1024 and 800 px, light and dark: nothing scrolls sideways.

Overflow is measured as ``scrollWidth > clientWidth`` on the Lab's boxes (and on
the output area that holds it), tab by tab, with the file browser open. Text
boxes and cells that end in an ellipsis on purpose are left out; buttons are
not (a button cut to "« fi…" is the defect). A screenshot of every tab at every
width and theme goes to ``test-output/browser/<test>/``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
WIDTHS = (1440, 1024, 800)
TABS = ("Console", "Memory", "Traffic", "Preset", "History")
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
THEME_SETTING = "lab/api/settings/@jupyterlab/apputils-extension:themes"

NOTEBOOK = [
    "from memgpt_lab import FixedClock\n"
    "from memgpt_lab.widgets import Lab, MemoryView\n"
    'lab = Lab(clock=FixedClock(), agent_id="layout")\n'
    'for text in ["My name is Ada", "Remember that my favourite colour is teal",'
    ' "What is my name?", "word " * 400]:\n'
    "    lab.console.send(text)\n"
    "lab",
    "MemoryView(lab.agent)  # on its own, as notebook 03 shows it",
]

#: The boxes inside ``root`` (and the output area around it) whose content is wider than they are.
OVERFLOW_JS = """
(root) => {
  const describe = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`
    + ` scrollWidth=${el.scrollWidth} clientWidth=${el.clientWidth}`
    + (el.textContent ? ` "${el.textContent.trim().slice(0, 40)}"` : '');
  const found = [];
  const output = root.closest('.jp-OutputArea-output');
  for (const el of [output, root, ...root.querySelectorAll('*')]) {
    if (!(el instanceof HTMLElement) || el.clientWidth === 0) continue;  // SVG, inline, hidden
    if (el.offsetParent === null) continue;
    if (['INPUT', 'SELECT', 'TEXTAREA', 'OPTION'].includes(el.tagName)) continue;
    const style = getComputedStyle(el);
    if (style.textOverflow === 'ellipsis' && el.tagName !== 'BUTTON') continue;
    if (el.scrollWidth > el.clientWidth + 1) found.push(describe(el));
  }
  return found;
}
"""


def _set_theme(jupyter_lab, theme: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"raw": json.dumps({"theme": theme})}).encode()
    request = urllib.request.Request(
        jupyter_lab.url + THEME_SETTING,
        data=body,
        method="PUT",
        headers={"Authorization": f"token {jupyter_lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 204)


@pytest.fixture(params=sorted(THEMES))
def theme(request: pytest.FixtureRequest, jupyter_lab) -> Iterator[str]:  # type: ignore[no-untyped-def]
    _set_theme(jupyter_lab, THEMES[request.param])
    try:
        yield request.param
    finally:
        _set_theme(jupyter_lab, THEMES["light"])  # the session's other tests expect light


def test_lab_has_no_horizontal_overflow(jupyter_lab, lab, theme: str) -> None:  # type: ignore[no-untyped-def]
    name = f"layout_{theme}.ipynb"
    jupyter_lab.write_notebook(name, NOTEBOOK)
    lab.open(name)
    lab.run_all()
    page = lab.page
    expect(page.locator("body")).to_have_attribute(
        "data-jp-theme-name", THEMES[theme], timeout=TIMEOUT_MS
    )
    root = page.locator(".mlab-lab")
    expect(root).to_be_visible(timeout=TIMEOUT_MS)
    for output in page.locator(".jp-OutputArea").all():
        expect(output).not_to_contain_text("Error displaying widget")
    alone = page.locator(".jp-OutputArea-output > .mlab-memory-view").last
    # The transcript keeps its newest entry in view (the first ones scrolled away).
    in_view = root.locator(".mlab-transcript").first.evaluate(
        """box => {
            const frame = box.getBoundingClientRect();
            const entries = box.querySelectorAll('.mlab-entry');
            const last = entries[entries.length - 1].getBoundingClientRect();
            const first = entries[0].getBoundingClientRect();
            return [last.bottom <= frame.bottom + 1 && last.top >= frame.top - 1,
                    first.top < frame.top];
        }"""
    )
    assert in_view == [True, True]
    problems: list[str] = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        for title in TABS:
            root.locator(".lm-TabBar-tab", has_text=title).click()
            expect(root.locator(".lm-TabBar-tab.lm-mod-current")).to_contain_text(title)
            page.wait_for_timeout(200)  # let the tab lay out before measuring
            root.scroll_into_view_if_needed()
            lab.screenshot(f"{theme}-{width}-{title.lower()}")
            problems += [f"{width}px {title}: {p}" for p in root.evaluate(OVERFLOW_JS)]
        alone.scroll_into_view_if_needed()
        lab.screenshot(f"{theme}-{width}-memory-view-alone")
        problems += [f"{width}px MemoryView: {p}" for p in alone.evaluate(OVERFLOW_JS)]
    assert not problems, "\n".join(problems)
    # The dark theme reaches the widgets: the transcript's background is dark, its text light.
    colours = root.locator(".mlab-transcript").first.evaluate(
        "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )

    def brightness(css: str) -> float:
        parts = [float(p) for p in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        return sum(parts) / 3

    background, text = (brightness(c) for c in colours)
    if theme == "dark":
        assert background < 100 < text, colours
    else:
        assert background > 150 > text, colours
