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

The view reads the agent only in :meth:`MemoryView.refresh` (the
:class:`~memgpt_lab.widgets.Lab` calls it after every console action) and on
its own buttons; typing only recounts characters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from memgpt_lab.errors import MemoryLimitError
from memgpt_lab.memory import CoreMemory
from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, ModelCall

__all__ = ["CONTEXT_SECTIONS", "MemoryView"]

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
            rows=5, layout=widgets.Layout(width="100%"), continuous_update=True
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
        self._query = widgets.Text(placeholder="search recall and archival memory")
        self._query.add_class("mlab-memory-query")
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
        super().__init__(
            children=[
                style_tag(),
                self._context,
                widgets.HBox(
                    [e.box for e in self._editors.values()],
                    layout=widgets.Layout(width="100%"),
                ),
                self._status,
                self._counts,
                widgets.HBox([self._query, self._search_button]),
                self._results,
            ]
        )
        for editor in self._editors.values():
            editor.box.layout = widgets.Layout(flex="1 1 0", margin="0 4px")
        self.add_class("mlab-memory-view")
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
        self._agent = agent
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
        """Close the view and its widgets."""
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
