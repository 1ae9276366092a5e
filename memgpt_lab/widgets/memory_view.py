"""MemoryView: an agent's core memory (editable), recall and archival memory, context use.

- Core memory: the persona and human blocks in Textareas, each with a
  character count against its limit and a Save button. Text over the limit is
  shown as an error and not applied.
- Recall and archival memory: counts, and a search of both.
- The context window: estimated tokens by section (system prompt, core memory,
  messages, function schemas) as a stacked bar against the window, from
  :meth:`Agent.context_breakdown`. When a server answered the last step, its
  count of the prompt (``usage.prompt_tokens``) shows next to the estimate;
  offline models report no count of their own, so nothing is added for them.
- The context over the session: a chart of the tokens by section after each
  step the agent ran while the view watched it (one bar per step, the last
  :data:`CHART_STEPS`), the memory-pressure warning line
  (``warning_fraction`` of the window) and a mark where the agent summarised
  its messages. The view listens for the agent's ``step_done`` (it adds an
  :class:`~memgpt_lab.interface.AgentInterface` of its own, removed on
  :meth:`MemoryView.close` or when another agent is shown).

The view reads the agent only in :meth:`MemoryView.refresh` (the
:class:`~memgpt_lab.widgets.Lab` calls it after every console action) and on
its own buttons; typing only recounts characters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as widgets

from memgpt_lab.errors import MemoryLimitError
from memgpt_lab.interface import AgentInterface, MultiInterface
from memgpt_lab.memory import CoreMemory
from memgpt_lab.widgets._input import MessageInput
from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, ModelCall

__all__ = ["CHART_STEPS", "CONTEXT_SECTIONS", "ContextSample", "MemoryView", "context_chart_svg"]

#: Steps the context chart shows (the latest ones).
CHART_STEPS = 120

#: The sections of the context bar, in drawing order, with their labels.
CONTEXT_SECTIONS = (
    ("system", "system prompt"),
    ("core_memory", "core memory"),
    ("messages", "messages"),
    ("functions", "functions"),
)
_COLOURS = {
    "system": "#5c6bc0",
    "core_memory": "#26a69a",
    "messages": "#ffa726",
    "functions": "#8d6e63",
}


def context_bar_html(breakdown: dict[str, int], last_call: ModelCall | None = None) -> str:
    """A stacked bar of ``breakdown`` (from ``context_breakdown()``) against its window.

    With ``last_call`` (``agent.last_call``) from a server that reported its
    prompt tokens, a line compares that count with the estimate of the same prompt.
    """
    window = max(int(breakdown.get("window", 1)), 1)
    total = int(breakdown.get("total", 0))
    scale = max(window, total)  # an over-full context still fits the bar
    segments = "".join(
        f'<div class="mlab-ctx-seg mlab-ctx-{key}" data-section="{key}"'
        f' data-tokens="{int(breakdown.get(key, 0))}"'
        f' style="width:{100.0 * int(breakdown.get(key, 0)) / scale:.2f}%;'
        f' background:{_COLOURS[key]}" title="{label}: {int(breakdown.get(key, 0))} tokens"></div>'
        for key, label in CONTEXT_SECTIONS
    )
    legend = "".join(
        f'<span class="mlab-swatch" style="background:{_COLOURS[key]}"></span>'
        f"{label} {int(breakdown.get(key, 0))}"
        for key, label in CONTEXT_SECTIONS
    )
    over = total > window
    summary = f"{total} of {window} tokens ({100.0 * total / window:.0f}%)"
    if over:
        summary += " — over the window: the agent will summarise"
    return (
        f'<div class="mlab-ctx{" mlab-ctx-over" if over else ""}" data-total="{total}"'
        f' data-window="{window}"><div class="mlab-section-title">Context window: {summary}</div>'
        f'<div class="mlab-ctx-bar">{segments}</div>'
        f'<div class="mlab-ctx-legend">{legend}</div>{_reported_html(last_call)}</div>'
    )


@dataclass(frozen=True)
class ContextSample:
    """The context window after one step: tokens by section, and whether it summarised."""

    step: int
    sections: dict[str, int]
    window: int
    warning: int
    summarised: bool

    @property
    def total(self) -> int:
        return sum(self.sections.get(key, 0) for key, _label in CONTEXT_SECTIONS)


def context_chart_svg(samples: list[ContextSample], height: int = 120) -> str:
    """A stacked bar per step of ``samples`` (tokens by section), the warning line, and a
    mark at each step that summarised. Scaled to the window (or the largest total)."""
    if not samples:
        return '<div class="mlab-empty">The chart fills as the agent steps.</div>'
    shown = samples[-CHART_STEPS:]
    window, warning = shown[-1].window, shown[-1].warning
    top = max(window, *(s.total for s in shown), 1)
    bar = 10
    width = bar * max(len(shown), 40)  # a few steps stay narrow bars, not wide blocks
    parts: list[str] = []
    for i, sample in enumerate(shown):
        y = float(height)
        title = f"step {sample.step}: {sample.total} tokens" + (
            " (summarised)" if sample.summarised else ""
        )
        parts.append(f'<g class="mlab-chart-step" data-step="{sample.step}"><title>{title}</title>')
        for key, _label in CONTEXT_SECTIONS:
            tokens = sample.sections.get(key, 0)
            h = height * tokens / top
            y -= h
            parts.append(
                f'<rect x="{i * bar + 1}" y="{y:.1f}" width="{bar - 2}" height="{h:.1f}"'
                f' fill="{_COLOURS[key]}" data-section="{key}" data-tokens="{tokens}"/>'
            )
        parts.append("</g>")
        if sample.summarised:
            parts.append(
                f'<line class="mlab-chart-summary" x1="{i * bar + bar / 2}" x2="{i * bar + bar / 2}"'
                f' y1="0" y2="{height}" stroke="#8e24aa" stroke-width="2"'
                f' data-step="{sample.step}"><title>summarised at step {sample.step}</title></line>'
            )
    warn_y = height - height * warning / top
    parts.append(
        f'<line class="mlab-chart-warning" x1="0" x2="{width}" y1="{warn_y:.1f}" y2="{warn_y:.1f}"'
        f' stroke="#c62828" stroke-dasharray="4 3" stroke-width="1"'
        f' vector-effect="non-scaling-stroke"><title>warning at {warning} tokens</title></line>'
    )
    summaries = sum(s.summarised for s in shown)
    caption = (
        f"Context over the last {len(shown)} step(s): tokens by section; dashed: the "
        f"warning at {warning} of {window}"
        + (f"; purple: {summaries} summar{'y' if summaries == 1 else 'ies'}" if summaries else "")
    )
    return (
        f'<div class="mlab-chart" data-steps="{len(shown)}" data-summaries="{summaries}">'
        f'<div class="mlab-count">{caption}</div>'
        f'<svg class="mlab-chart-svg" viewBox="0 0 {width} {height}" preserveAspectRatio="none"'
        f' width="100%" height="{height}" role="img" aria-label="{caption}">{"".join(parts)}</svg>'
        "</div>"
    )


class _StepWatcher(AgentInterface):
    """Samples the context after each of an agent's steps (``step_done``)."""

    def __init__(self, view: MemoryView) -> None:
        self._view = view

    def step_done(self) -> None:
        self._view._sample()


def _reported_html(call: ModelCall | None) -> str:
    if call is None or call.reported_prompt_tokens is None:
        return ""  # no call yet, or an offline model: its counts are the estimate
    return (
        f'<div class="mlab-ctx-legend mlab-ctx-reported"'
        f' data-estimated="{call.estimated_prompt_tokens}"'
        f' data-reported="{call.reported_prompt_tokens}">'
        f"Last prompt: ~{call.estimated_prompt_tokens:,} estimated · "
        f"{call.reported_prompt_tokens:,} reported by {esc(call.model)}</div>"
    )


class _BlockEditor:
    """One core memory block: its Textarea, character count and Save button."""

    def __init__(self, view: MemoryView, name: str) -> None:
        self.name = name
        self.loaded = ""
        self.text = widgets.Textarea(
            rows=5, layout=widgets.Layout(width="auto"), continuous_update=True
        )
        self.text.add_class(f"mlab-memory-{name}")
        self.count = widgets.HTML()
        self.count.add_class(f"mlab-memory-{name}-count")
        self.save = widgets.Button(description=f"Save {name}", layout=widgets.Layout(width="auto"))
        self.save.add_class(f"mlab-memory-save-{name}")
        self.save.on_click(lambda _b: view.save_block(name))
        self.text.observe(lambda _change: view._update_count(self), "value")
        self.box = widgets.VBox(
            [
                widgets.HTML(f'<div class="mlab-section-title">{name}</div>'),
                self.text,
                widgets.HBox([self.save, self.count]),
            ]
        )


class MemoryView(widgets.VBox):
    """Core, recall and archival memory of an agent, and its context window use.

    Args:
        agent: the agent to show; assign :attr:`agent` to switch.
        max_results: most search results shown per memory.
    """

    def __init__(self, agent: Agent, *, max_results: int = 20) -> None:
        self._agent = agent
        self._max_results = max_results
        self._editors = {name: _BlockEditor(self, name) for name in CoreMemory.FIELDS}
        self._status = widgets.HTML()
        self._status.add_class("mlab-memory-status")
        self._counts = widgets.HTML()
        self._counts.add_class("mlab-memory-counts")
        self._query = MessageInput(
            placeholder="search recall and archival memory (Enter searches)",
            layout=widgets.Layout(flex="1 1 auto", width="auto", min_width="0"),
        )
        self._query.add_class("mlab-memory-query")
        self._query.on_submit(lambda box: self.search(box.value))
        self._search_button = widgets.Button(
            description="Search", layout=widgets.Layout(width="auto")
        )
        self._search_button.add_class("mlab-memory-search")
        self._search_button.on_click(lambda _b: self.search(self._query.value))
        self._results = widgets.HTML()
        self._results.add_class("mlab-memory-results")
        self._context = widgets.HTML()
        self._context.add_class("mlab-memory-context")
        self._shown_context: dict[str, int] = {}
        self._chart = widgets.HTML()
        self._chart.add_class("mlab-memory-chart")
        self._samples: list[ContextSample] = []
        self._samples_lock = threading.Lock()
        self._last_summaries = agent.summaries
        self._watcher = _StepWatcher(self)
        self._step_count = 0
        editors = widgets.HBox(
            [e.box for e in self._editors.values()],
            layout=widgets.Layout(width="100%", flex_flow="row wrap"),
        )
        editors.add_class("mlab-memory-editors")
        super().__init__(
            children=[
                style_tag(),
                self._context,
                self._chart,
                editors,
                self._status,
                self._counts,
                widgets.HBox(
                    [self._query, self._search_button], layout=widgets.Layout(width="auto")
                ),
                self._results,
            ]
        )
        for editor in self._editors.values():
            # side by side when there is room, one above the other when narrow
            editor.box.layout = widgets.Layout(flex="1 1 280px", min_width="0", margin="0 4px")
        self.add_class("mlab-memory-view")
        self._watch(agent)
        self.refresh()

    def __repr__(self) -> str:
        return f"<MemoryView of agent {self._agent.name!r}>"

    # -- public API ---------------------------------------------------------

    @property
    def agent(self) -> Agent:
        """The agent shown; assigning another re-reads everything."""
        return self._agent

    @agent.setter
    def agent(self, agent: Agent) -> None:
        self._unwatch(self._agent)
        self._agent = agent
        with self._samples_lock:
            self._samples = []
            self._step_count = 0
        self._last_summaries = agent.summaries
        self._watch(agent)
        self._results.value = ""
        self._set_status("", ok=True)
        self._load(keep_edits=False)  # the new agent's blocks replace any edit

    @property
    def persona(self) -> widgets.Textarea:
        """The persona block's Textarea (edit ``.value``, then :meth:`save_block`)."""
        return self._editors["persona"].text

    @property
    def human(self) -> widgets.Textarea:
        """The human block's Textarea."""
        return self._editors["human"].text

    @property
    def context(self) -> dict[str, int]:
        """The context breakdown the bar shows (as of the last refresh)."""
        return dict(self._shown_context)

    @property
    def samples(self) -> list[ContextSample]:
        """The context after each step the view saw, oldest first (the chart's data)."""
        with self._samples_lock:
            return list(self._samples)

    @property
    def recall_count(self) -> int:
        """Messages in recall memory, as of the last refresh."""
        return self._recall_count

    @property
    def archival_count(self) -> int:
        """Passages in archival memory, as of the last refresh."""
        return self._archival_count

    @property
    def status(self) -> str:
        """The status line's markup (save results and errors)."""
        return str(self._status.value)

    def char_count(self, name: str) -> tuple[int, int]:
        """``(characters in the Textarea, the block's limit)`` for block ``name``."""
        return len(self._editors[name].text.value), self._agent.memory.limits[name]

    def refresh(self) -> None:
        """Re-read the agent: blocks (unless edited and unsaved), counts, context bar."""
        self._load(keep_edits=True)

    def save_block(self, name: str, text: str | None = None) -> bool:
        """Write block ``name`` from its Textarea (or ``text``) into the agent's core memory.

        Over-limit text is not applied: the status line says why. Returns
        whether the block was saved.
        """
        editor = self._editors[name]
        if text is not None:
            editor.text.value = text
        value = editor.text.value
        try:
            self._agent.memory.set(name, value)
        except MemoryLimitError as exc:
            self._set_status(str(exc), ok=False)
            return False
        self._agent.rebuild_memory()
        editor.loaded = value
        self._set_status(f"Saved the {name} block ({len(value)} characters).", ok=True)
        self.refresh()
        return True

    def search(self, query: str) -> list[tuple[str, str]]:
        """Search recall and archival memory; returns and shows ``(memory, text)`` pairs."""
        self._query.value = query
        query = query.strip()
        if not query:
            self._results.value = '<div class="mlab-empty">Type something to search for.</div>'
            return []
        agent = self._agent
        found: list[tuple[str, str]] = []
        recall = agent.recall_memory.text_search(query, page_size=self._max_results)
        found.extend(("recall", f"{e.message.get('role')}: {e.text}") for e in recall.items)
        archival = agent.archival_memory.search(query, page_size=self._max_results)
        found.extend(("archival", p.text) for p in archival.items)
        items = "".join(
            f'<li class="mlab-result mlab-result-{memory}"><b>{memory}</b> {esc(text)}</li>'
            for memory, text in found
        )
        summary = (
            f"{recall.total} in recall memory, {archival.total} in archival memory"
            f" for {esc(query)!s}"
        )
        self._results.value = (
            f'<div class="mlab-results"><div>{summary}</div><ul>{items}</ul></div>'
        )
        return found

    def close(self) -> None:
        """Stop watching the agent; close the view and its widgets."""
        self._unwatch(self._agent)
        for editor in self._editors.values():
            for child in (editor.text, editor.count, editor.save, editor.box):
                child.close()
        for child in (self._query, self._search_button):
            child.close()
        for child in self.children:
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    _recall_count = 0
    _archival_count = 0

    def _watch(self, agent: Agent) -> None:
        existing = agent.interface
        if isinstance(existing, MultiInterface):
            existing.interfaces.append(self._watcher)
        elif type(existing) is AgentInterface:  # the no-op default: nothing to keep
            agent.interface = MultiInterface([self._watcher])
        else:
            agent.interface = MultiInterface([existing, self._watcher])

    def _unwatch(self, agent: Agent) -> None:
        interface = agent.interface
        if isinstance(interface, MultiInterface):
            interface.interfaces[:] = [i for i in interface.interfaces if i is not self._watcher]

    def _sample(self) -> None:
        # Called by the agent after each step, maybe from another thread: data only;
        # the chart is drawn at the next refresh.
        agent = self._agent
        breakdown = agent.context_breakdown()
        summaries = agent.summaries
        window = int(breakdown.get("window", 0))
        with self._samples_lock:
            self._step_count += 1
            self._samples.append(
                ContextSample(
                    self._step_count,
                    {key: int(breakdown.get(key, 0)) for key, _label in CONTEXT_SECTIONS},
                    window,
                    int(agent.config.warning_fraction * window),
                    summaries > self._last_summaries,
                )
            )
            del self._samples[:-CHART_STEPS]
            self._last_summaries = summaries

    def _load(self, keep_edits: bool) -> None:
        agent = self._agent
        breakdown = agent.context_breakdown()
        self._recall_count = len(agent.recall_memory)
        self._archival_count = len(agent.archival_memory)
        with self.hold_sync():
            for name, editor in self._editors.items():
                current = agent.memory.blocks[name]
                if not keep_edits or editor.text.value == editor.loaded:
                    editor.text.value = current
                editor.loaded = current
                self._update_count(editor)
            self._shown_context = breakdown
            self._context.value = context_bar_html(breakdown, agent.last_call)
            self._chart.value = context_chart_svg(self.samples)
            self._counts.value = (
                f'<div class="mlab-section-title">Recall memory: {self._recall_count} messages'
                f" · Archival memory: {self._archival_count} passages"
                f" · In context: {len(agent.messages)} messages</div>"
            )

    def _update_count(self, editor: _BlockEditor) -> None:
        used = len(editor.text.value)
        limit = self._agent.memory.limits[editor.name]
        over = used > limit
        note = " — over the limit; shorten it before saving" if over else ""
        unsaved = " (unsaved)" if editor.text.value != editor.loaded else ""
        css = "mlab-count mlab-count-over" if over else "mlab-count"
        editor.count.value = (
            f'<span class="{css}">{used} / {limit} characters{note}{unsaved}</span>'
        )

    def _set_status(self, message: str, ok: bool) -> None:
        self._status.value = status_html(esc(message), ok)
