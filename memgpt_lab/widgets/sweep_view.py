"""SweepView: a sweep's runs as a filterable table, a pass-rate chart, and a run opened.

Typical use, as the last expression of a cell::

    SweepView(sweep.run())

The table shows one row per run (only the visible page goes to the browser);
the dropdowns and the search box filter it, and the chart of pass rates by
preset x model follows the filter. A click on a run shows its transcript,
turn by turn with each check's outcome, and its traffic in a
:class:`~memgpt_lab.widgets.inspector.TrafficInspector`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as widgets
import traitlets

from memgpt_lab.widgets._style import style_tag
from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.inspector import TrafficInspector

if TYPE_CHECKING:
    from memgpt_lab.sweep import SweepResult

__all__ = ["FILTER_COLUMNS", "SweepView", "pass_rate_svg", "run_row", "transcript_html"]

_ASSETS = Path(__file__).parent
#: The run columns the dropdowns filter on, in order.
FILTER_COLUMNS = ("preset", "model", "persona", "human", "conversation", "status")
_ALL = "\x00all"

_CSS = """
.mlab-sweep-table table { border-collapse: collapse; width: 100%; font-size: 12px; }
.mlab-sweep-table th, .mlab-sweep-table td {
  padding: 2px 6px; border-bottom: 1px solid var(--jp-border-color2, #ddd); text-align: left;
  white-space: nowrap; max-width: 260px; overflow: hidden; text-overflow: ellipsis;
}
.mlab-sweep-row { cursor: pointer; }
.mlab-sweep-row:hover { background: rgba(33, 150, 243, 0.08); }
.mlab-sweep-row.mlab-selected { background: rgba(33, 150, 243, 0.22); }
.mlab-sweep-failed .mlab-col-status { color: #c62828; font-weight: 600; }
.mlab-sweep-error .mlab-col-status { color: #fff; background: #c62828; }
.mlab-sweep-passed .mlab-col-status { color: #2e7d32; }
.mlab-sweep-empty { font-style: italic; color: var(--jp-ui-font-color2, #666); }
"""


class _RunTable(anywidget.AnyWidget):
    """The clickable table of one page of runs (the view is sweep_view.js)."""

    _esm = (_ASSETS / "sweep_view.js").read_text(encoding="utf-8")
    _css = _CSS

    rows = traitlets.List(traitlets.Dict(), help="The rows of the visible page only.").tag(
        sync=True
    )
    selected_run = traitlets.Unicode(
        None, allow_none=True, help="run_id of the selected run; set by a click."
    ).tag(sync=True)


def run_row(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run as a table row: its key, status, turns and checks passed, tokens and latency."""
    turns = run["turns"]
    passed_turns = sum(
        1 for t in turns if t["error"] is None and all(c["passed"] for c in t["checks"])
    )
    checks = [c for t in turns for c in t["checks"]]
    steps = [s for t in turns for s in t["steps"]]
    return {
        "run_id": run["run_id"],
        **{k: run[k] for k in ("preset", "model", "persona", "human", "conversation", "repeat")},
        "status": run["status"],
        "turns": f"{passed_turns}/{len(turns)}",
        "checks": f"{sum(c['passed'] for c in checks)}/{len(checks)}",
        "tokens": sum((s["prompt_tokens"] or 0) + (s["completion_tokens"] or 0) for s in steps),
        "latency_ms": round(sum(s["latency"] for s in steps) * 1000, 1),
    }


def _rate_colour(rate: float) -> str:
    # red (0) through amber to green (1), readable on light and dark backgrounds
    hue = round(120 * rate)
    return f"hsl({hue}, 65%, 45%)"


def pass_rate_svg(
    rates: Mapping[tuple[str, str], tuple[int, int]], width: int = 560, bar_height: int = 18
) -> str:
    """Horizontal bars of pass rate, one per ``(preset, model)``, grouped by preset.

    Args:
        rates: ``(preset, model) -> (turns passed, turns)``.

    A pure function: the same rates give the same SVG, byte for byte.
    """
    if not rates:
        return '<div class="mlab-empty">no runs to chart</div>'
    label_width, value_width, gap = 260, 90, 4
    plot = max(width - label_width - value_width, 40)
    keys = sorted(rates)
    height = len(keys) * (bar_height + gap) + 24
    parts = [
        f'<svg class="mlab-sweep-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-size="12" '
        'font-family="var(--jp-ui-font-family, sans-serif)">',
        '<text x="0" y="12" font-weight="600" fill="currentColor">pass rate by preset × model'
        "</text>",
    ]
    y = 20
    previous = None
    for preset, model in keys:
        passed, total = rates[(preset, model)]
        rate = passed / total if total else 0.0
        label = f"{preset} · {model}" if preset != previous else f"· {model}"
        previous = preset
        bar = 0 if math.isnan(rate) else rate * plot
        parts.append(
            f'<g class="mlab-sweep-bar" data-preset="{esc(preset)}" data-model="{esc(model)}">'
            f"<title>{esc(preset)} × {esc(model)}: {passed}/{total} turns passed</title>"
            f'<text x="{label_width - 6}" y="{y + bar_height - 5}" text-anchor="end" '
            f'fill="currentColor">{esc(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{plot}" height="{bar_height}" '
            'fill="rgba(127,127,127,0.15)"/>'
            f'<rect x="{label_width}" y="{y}" width="{bar:.1f}" height="{bar_height}" '
            f'fill="{_rate_colour(rate)}"/>'
            f'<text x="{label_width + plot + 6}" y="{y + bar_height - 5}" '
            f'fill="currentColor">{rate:.0%} ({passed}/{total})</text></g>'
        )
        y += bar_height + gap
    parts.append("</svg>")
    return "".join(parts)


def _expected(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k} ∋ {v!r}" for k, v in value.items())
    return str(value)


def transcript_html(run: Mapping[str, Any]) -> str:
    """A run, turn by turn: the user's message, the replies, the functions called, each
    check with its outcome, and the error if the turn raised."""
    head = (
        f'<div class="mlab-section-title">{esc(run["conversation"])} · {esc(run["preset"])} · '
        f"{esc(run['model'])} · {esc(run['persona'])} · {esc(run['human'])} · repeat "
        f"{esc(run['repeat'])}: {esc(run['status'])}</div>"
    )
    parts = [head]
    error = run.get("error")
    if error and error.get("turn") in (0, None):
        parts.append(
            f'<div class="mlab-entry mlab-error">{esc(error["type"])}: '
            f"{esc(error['message'])}</div>"
        )
    for turn in run["turns"]:
        parts.append(
            f'<div class="mlab-entry mlab-user"><span class="mlab-label">turn {turn["turn"]}'
            f"</span> {esc(turn['user'])}</div>"
        )
        for reply in turn["replies"]:
            parts.append(
                f'<div class="mlab-entry mlab-assistant"><span class="mlab-label">reply</span> '
                f"{esc(reply)}</div>"
            )
        if turn["functions"]:
            failed = set(turn["failed_functions"])
            called = ", ".join(
                f"<b>{esc(name)}</b> (failed)" if name in failed else esc(name)
                for name in turn["functions"]
            )
            steps = len(turn["steps"])
            parts.append(
                f'<div class="mlab-entry mlab-function-call">{called} · {steps} '
                f"step{'s' if steps != 1 else ''}</div>"
            )
        for check in turn["checks"]:
            ok = check["passed"]
            mark = "✓" if ok else "✗"
            detail = "" if ok or not check["detail"] else f": {esc(check['detail'])}"
            kind = "mlab-function-ok" if ok else "mlab-function-error"
            parts.append(
                f'<div class="mlab-entry {kind}">{mark} {esc(check["check"])} '
                f"{esc(_expected(check['expected']))}{detail}</div>"
            )
        if turn["error"]:
            parts.append(f'<div class="mlab-entry mlab-error">{esc(turn["error"])}</div>')
    return f'<div class="mlab-sweep-transcript">{"".join(parts)}</div>'


class SweepView(widgets.VBox):
    """A sweep's runs: filters, a paged table, a pass-rate chart, and the run clicked.

    Args:
        result: the :class:`~memgpt_lab.sweep.SweepResult` to show.
        page_size: runs per page (only these go to the browser).

    :meth:`select` does from Python what a click does. Call :meth:`close` when done.
    """

    def __init__(self, result: SweepResult, page_size: int = 25) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.result = result
        self._page_size = page_size
        self._page = 0
        self._rows = [run_row(run) for run in result]
        self._matches: list[int] = list(range(len(self._rows)))
        self.table = _RunTable()
        self._dropdowns = {
            column: widgets.Dropdown(
                options=[("all", _ALL), *((str(v), str(v)) for v in self._values(column))],
                value=_ALL,
                description=column,
                layout=widgets.Layout(width="auto"),
                style={"description_width": "initial"},
            )
            for column in FILTER_COLUMNS
        }
        self._search = widgets.Text(
            placeholder="search messages and replies", layout=widgets.Layout(width="260px")
        )
        self._count = widgets.HTML()
        self._prev = widgets.Button(description="‹ prev", layout=widgets.Layout(width="auto"))
        self._next = widgets.Button(description="next ›", layout=widgets.Layout(width="auto"))
        self.chart = widgets.HTML()
        self.transcript = widgets.HTML(
            '<div class="mlab-empty">click a run to see its transcript and traffic</div>'
        )
        self.traffic = widgets.VBox()
        self.inspector: TrafficInspector | None = None
        for column, dropdown in self._dropdowns.items():
            dropdown.add_class(f"mlab-sweep-filter-{column}")
            dropdown.observe(self._on_filter, "value")
        self._search.observe(self._on_filter, "value")
        self._prev.on_click(lambda _b: self.go_to_page(self._page - 1))
        self._next.on_click(lambda _b: self.go_to_page(self._page + 1))
        self.table.observe(self._on_selected, "selected_run")
        self.chart.add_class("mlab-sweep-chart")
        self.transcript.add_class("mlab-sweep-detail")
        super().__init__(
            children=[
                style_tag(),
                widgets.HBox(list(self._dropdowns.values())),
                widgets.HBox([self._search, self._count]),
                self.chart,
                self.table,
                widgets.HBox([self._prev, self._next]),
                self.transcript,
                self.traffic,
            ]
        )
        self.add_class("mlab-sweep-view")
        self._apply()

    def __repr__(self) -> str:
        return f"<SweepView {len(self._matches)}/{len(self._rows)} runs>"

    # -- public API ---------------------------------------------------------

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows on the visible page."""
        return list(self.table.rows)

    @property
    def filtered_count(self) -> int:
        """Runs that pass the filter."""
        return len(self._matches)

    @property
    def selected(self) -> dict[str, Any] | None:
        """The run shown below the table, or None."""
        run_id = self.table.selected_run
        return None if run_id is None else self.result[run_id]

    def set_filter(self, search: str | None = None, **values: str | None) -> None:
        """Filter the table, as the dropdowns do: ``set_filter(preset="memgpt_chat")``;
        None for no constraint on a column. Other columns keep their value."""
        unknown = sorted(set(values) - set(FILTER_COLUMNS))
        if unknown:
            raise ValueError(f"cannot filter on {', '.join(unknown)}; use {FILTER_COLUMNS}")
        with self.hold_sync():
            for column, value in values.items():
                dropdown = self._dropdowns[column]
                wanted = _ALL if value is None else str(value)
                if wanted not in [v for _, v in dropdown.options]:
                    raise ValueError(f"no run has {column} {value!r}")
                dropdown.unobserve(self._on_filter, "value")
                dropdown.value = wanted
                dropdown.observe(self._on_filter, "value")
            if search is not None:
                self._search.unobserve(self._on_filter, "value")
                self._search.value = search
                self._search.observe(self._on_filter, "value")
        self._apply()

    def select(self, run_id: str | None) -> None:
        """Show a run's transcript and traffic (what a click on its row does)."""
        if run_id is not None and run_id not in {row["run_id"] for row in self._rows}:
            raise KeyError(f"no run {run_id!r} in this sweep")
        self.table.selected_run = run_id

    def go_to_page(self, page: int) -> None:
        """Show page ``page`` (from 0) of the filtered runs, clamped to the pages there are."""
        pages = max(math.ceil(len(self._matches) / self._page_size), 1)
        self._page = min(max(page, 0), pages - 1)
        self._update_table()

    def close(self) -> None:
        if self.inspector is not None:
            self.inspector.close()
        super().close()

    # -- internals ----------------------------------------------------------

    def _values(self, column: str) -> list[Any]:
        return sorted({row[column] for row in self._rows}, key=str)

    def _texts(self, index: int) -> str:
        run = self.result[index]
        return "\n".join(
            text for turn in run["turns"] for text in (turn["user"], *turn["replies"])
        ).lower()

    def _apply(self) -> None:
        wanted = {
            column: dropdown.value
            for column, dropdown in self._dropdowns.items()
            if dropdown.value != _ALL
        }
        search = self._search.value.strip().lower()
        self._matches = [
            i
            for i, row in enumerate(self._rows)
            if all(str(row[c]) == v for c, v in wanted.items())
            and (not search or search in self._texts(i))
        ]
        self._page = 0
        self.chart.value = pass_rate_svg(self._rates(self._matches))
        self._update_table()

    def _rates(self, indexes: Iterable[int]) -> dict[tuple[str, str], tuple[int, int]]:
        rates: dict[tuple[str, str], tuple[int, int]] = {}
        for i in indexes:
            run = self.result[i]
            key = (run["preset"], run["model"])
            passed, total = rates.get(key, (0, 0))
            for turn in run["turns"]:
                total += 1
                passed += turn["error"] is None and all(c["passed"] for c in turn["checks"])
            rates[key] = (passed, total)
        return rates

    def _update_table(self) -> None:
        start = self._page * self._page_size
        shown = self._matches[start : start + self._page_size]
        pages = max(math.ceil(len(self._matches) / self._page_size), 1)
        with self.hold_sync():
            self.table.rows = [self._rows[i] for i in shown]
            self._count.value = (
                f'<span class="mlab-count">{len(self._matches)} of {len(self._rows)} runs · '
                f"page {self._page + 1}/{pages}</span>"
            )
            self._prev.disabled = self._page == 0
            self._next.disabled = self._page >= pages - 1

    def _on_filter(self, _change: dict[str, Any]) -> None:
        self._apply()

    def _on_selected(self, change: dict[str, Any]) -> None:
        run_id = change["new"]
        if self.inspector is not None:
            self.inspector.close()
            self.inspector = None
        if run_id is None:
            self.transcript.value = '<div class="mlab-empty">no run selected</div>'
            self.traffic.children = ()
            return
        self.transcript.value = transcript_html(self.result[run_id])
        self.inspector = TrafficInspector(self.result.recording(run_id), follow=False, live=False)
        self.traffic.children = (self.inspector,)
