"""HistoryView: an agent's checkpoints by turn, with Rewind, Retry, Fork and a diff.

- The list: every checkpoint of the agent (``agent.checkpoints()``), grouped by
  turn, each with its step and label; the current one is marked, and those on
  another branch (the first answer before a retry, say) are shown muted.
- Rewind / Retry / Fork act on the checkpoint chosen in the selector (Retry always
  runs the last user message again). With a ``console`` they run as console
  actions: the transcript shows them and the console's callbacks (the
  :class:`~memgpt_lab.widgets.Lab`'s refresh) run after.
- Diff: core memory blocks and archival passages at one checkpoint against
  another (:func:`diff_checkpoints`).

Errors go to the status line (and :attr:`HistoryView.last_error`), never out as
tracebacks. The view reads the agent only in :meth:`HistoryView.refresh` (after
each console action, and after its own buttons) and when a button is clicked.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.console import ConsoleBusyError

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, TurnResult
    from memgpt_lab.persistence import Checkpoint
    from memgpt_lab.widgets.console import AgentConsole

__all__ = ["CheckpointDiff", "HistoryView", "diff_checkpoints", "history_html"]

_CSS = """
.mlab-history { font-size: var(--jp-ui-font-size1, 13px); max-height: 320px; overflow-y: auto; }
.mlab-history-turn { margin: 4px 0; }
.mlab-history-title { font-weight: 600; font-size: 0.85em; opacity: 0.75; }
.mlab-history-cp { padding: 1px 6px; border-left: 3px solid transparent; }
.mlab-history-current { border-left-color: #2e7d32; background: rgba(76, 175, 80, 0.12); }
.mlab-history-branch { color: var(--jp-ui-font-color3, #999); }
.mlab-diff { font-size: 0.9em; white-space: pre-wrap; }
.mlab-diff del { background: rgba(229, 57, 53, 0.15); }
.mlab-diff ins { background: rgba(76, 175, 80, 0.18); text-decoration: none; }
"""


@dataclass(frozen=True)
class CheckpointDiff:
    """What changed in memory from checkpoint ``before`` to checkpoint ``after``.

    Attributes:
        before / after: the two checkpoint ids.
        core: the core memory blocks that differ, as ``{block: (before, after)}``.
        archival_added / archival_removed: passages only in ``after`` / only in ``before``.
    """

    before: str
    after: str
    core: dict[str, tuple[str, str]] = field(default_factory=dict)
    archival_added: list[str] = field(default_factory=list)
    archival_removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.core or self.archival_added or self.archival_removed)

    def text(self) -> str:
        """The diff as plain lines (``-`` before, ``+`` after), for printing."""
        if not self:
            return "no change in core or archival memory"
        lines: list[str] = []
        for block, (old, new) in self.core.items():
            lines.append(f"core memory {block}:")
            lines += [f"  - {line}" for line in old.splitlines() if line not in new.splitlines()]
            lines += [f"  + {line}" for line in new.splitlines() if line not in old.splitlines()]
        if self.archival_added or self.archival_removed:
            lines.append("archival memory:")
            lines += [f"  - {text}" for text in self.archival_removed]
            lines += [f"  + {text}" for text in self.archival_added]
        return "\n".join(lines)

    def html(self) -> str:
        """The diff as markup for the view."""
        if not self:
            return '<div class="mlab-diff mlab-empty">No change in core or archival memory.</div>'
        parts: list[str] = []
        for block, (old, new) in self.core.items():
            old_lines, new_lines = old.splitlines(), new.splitlines()
            rows = [f"<del>- {esc(x)}</del>" for x in old_lines if x not in new_lines]
            rows += [f"<ins>+ {esc(x)}</ins>" for x in new_lines if x not in old_lines]
            parts.append(
                f'<div class="mlab-section-title">core memory: {esc(block)}</div>' + "\n".join(rows)
            )
        if self.archival_added or self.archival_removed:
            rows = [f"<del>- {esc(x)}</del>" for x in self.archival_removed]
            rows += [f"<ins>+ {esc(x)}</ins>" for x in self.archival_added]
            parts.append('<div class="mlab-section-title">archival memory</div>' + "\n".join(rows))
        return '<div class="mlab-diff">' + "\n".join(parts) + "</div>"


def _state(agent: Agent) -> tuple[dict[str, str], list[str]]:
    return dict(agent.memory.blocks), [p.text for p in agent.archival_memory.passages]


def diff_checkpoints(agent: Agent, before: str, after: str) -> CheckpointDiff:
    """Core memory and archival passages at checkpoint ``after`` against ``before``.

    The agent itself is not touched: the state at each checkpoint is read from a
    throwaway copy (``agent.export`` to a temporary file, ``Agent.import_file`` into
    memory, ``rewind`` on the copy), since the agent has no cheap read of its state
    at a checkpoint. That costs one export of the agent's history per diff.

    Raises:
        UnknownCheckpointError: a checkpoint not in the agent's history.
    """
    from memgpt_lab.agent import Agent

    with tempfile.TemporaryDirectory(prefix="mlab-diff-") as folder:
        path = agent.export(Path(folder) / "agent.json")
        copy = Agent.import_file(path, model=agent.model, clock=agent.clock)
    try:
        copy.rewind(before)
        old_core, old_passages = _state(copy)
        copy.rewind(after)
        new_core, new_passages = _state(copy)
    finally:
        copy.persistence_manager.database.close()
    core = {
        block: (old_core.get(block, ""), new_core.get(block, ""))
        for block in dict.fromkeys([*old_core, *new_core])
        if old_core.get(block, "") != new_core.get(block, "")
    }
    return CheckpointDiff(
        before,
        after,
        core,
        _only_in(new_passages, old_passages),
        _only_in(old_passages, new_passages),
    )


def _only_in(texts: list[str], other: list[str]) -> list[str]:
    """The passages of ``texts`` not in ``other`` (counting repeats), in order."""
    left = Counter(texts) - Counter(other)
    found: list[str] = []
    for text in texts:
        if left[text] > 0:
            left[text] -= 1
            found.append(text)
    return found


def _on_path(checkpoints: Sequence[Checkpoint], current: str | None) -> set[str]:
    """The ids on the way from the first checkpoint to ``current``."""
    parents = {c.id: c.parent_id for c in checkpoints}
    path: set[str] = set()
    node = current
    while node is not None and node not in path:
        path.add(node)
        node = parents.get(node)
    return path


def history_html(checkpoints: Sequence[Checkpoint], current: str | None) -> str:
    """The checkpoints grouped by turn, the current one marked, other branches muted."""
    if not checkpoints:
        return '<div class="mlab-empty">No checkpoints yet.</div>'
    path = _on_path(checkpoints, current)
    turns: dict[int, list[str]] = {}
    for pos, cp in enumerate(checkpoints):
        classes = ["mlab-history-cp"]
        mark = ""
        if cp.id == current:
            classes.append("mlab-history-current")
            mark = " ● current"
        elif cp.id not in path:
            classes.append("mlab-history-branch")
            mark = " (other branch)"
        turns.setdefault(cp.turn, []).append(
            f'<div class="{" ".join(classes)}" data-pos="{pos}" data-step="{cp.step}">'
            f"#{pos} · step {cp.step} · {esc(cp.label)}{mark}</div>"
        )
    groups = "".join(
        f'<div class="mlab-history-turn" data-turn="{turn}">'
        f'<div class="mlab-history-title">turn {turn}</div>{"".join(rows)}</div>'
        for turn, rows in sorted(turns.items())
    )
    return f'<div class="mlab-history">{groups}</div>'


def _option(pos: int, cp: Checkpoint, current: str | None) -> str:
    mark = " ●" if cp.id == current else ""
    return f"#{pos} turn {cp.turn}.{cp.step}: {cp.label}{mark}"


class HistoryView(widgets.VBox):
    """An agent's checkpoints, grouped by turn, with Rewind, Retry, Fork and a memory diff.

    Args:
        agent: the agent; with a ``console``, the console's agent (followed when it changes).
        console: run Retry and Rewind as console actions, and refresh after each of its
            actions.

    Each action method shows an error in the status line, keeps it in
    :attr:`last_error` and returns None, as the console's :meth:`AgentConsole.perform`
    does. Call :meth:`close` when done.
    """

    def __init__(self, agent: Agent | None = None, *, console: AgentConsole | None = None) -> None:
        if agent is None:
            if console is None:
                raise TypeError("HistoryView needs an agent or a console")
            agent = console.agent
        self._agent = agent
        self._console = console
        self._checkpoints: list[Checkpoint] = []
        self._fork_callbacks: list[Callable[[Agent], object]] = []
        self._change_callbacks: list[Callable[[HistoryView], object]] = []
        self._closed = False
        self.last_error: BaseException | None = None
        self.last_diff: CheckpointDiff | None = None

        self._header = widgets.HTML()
        self._list = widgets.HTML()
        self._list.add_class("mlab-history-list")
        self.selector = widgets.Dropdown(
            description="Checkpoint", layout=widgets.Layout(width="auto")
        )
        self.selector.add_class("mlab-history-selector")
        self.diff_from = widgets.Dropdown(
            description="Diff from", layout=widgets.Layout(width="auto")
        )
        self.diff_to = widgets.Dropdown(description="to", layout=widgets.Layout(width="auto"))
        self._buttons: dict[str, widgets.Button] = {}
        for name, label, tip in (
            ("rewind", "Rewind", "Go back to the chosen checkpoint (later ones stay as a branch)"),
            ("retry", "Retry", "Run the last user message again (the first answer stays)"),
            ("fork", "Fork", "A new agent whose history ends at the chosen checkpoint"),
            ("diff", "Diff", "Core and archival memory: 'to' against 'from'"),
        ):
            button = widgets.Button(
                description=label, tooltip=tip, layout=widgets.Layout(width="auto")
            )
            button.add_class(f"mlab-history-{name}")
            self._buttons[name] = button
        self._buttons["rewind"].on_click(lambda _b: self.rewind(self.selector.value))
        self._buttons["retry"].on_click(lambda _b: self.retry())
        self._buttons["fork"].on_click(lambda _b: self.fork(self.selector.value))
        self._buttons["diff"].on_click(
            lambda _b: self.diff(self.diff_from.value, self.diff_to.value)
        )
        self._diff = widgets.HTML()
        self._diff.add_class("mlab-history-diff")
        self._status = widgets.HTML()
        self._status.add_class("mlab-history-status")
        css = widgets.HTML(f"<style>{_CSS}</style>", layout=widgets.Layout(height="0px"))
        super().__init__(
            children=[
                style_tag(),
                css,
                self._header,
                self._list,
                widgets.HBox(
                    [
                        self.selector,
                        self._buttons["rewind"],
                        self._buttons["retry"],
                        self._buttons["fork"],
                    ]
                ),
                widgets.HBox([self.diff_from, self.diff_to, self._buttons["diff"]]),
                self._diff,
                self._status,
            ]
        )
        self.add_class("mlab-history-view")
        if console is not None:
            console.on_turn(lambda _console: self.refresh())
            console.on_busy(self._on_console_busy)
        self.refresh()

    def __repr__(self) -> str:
        return f"<HistoryView {len(self._checkpoints)} checkpoints>"

    # -- public API ---------------------------------------------------------

    @property
    def agent(self) -> Agent:
        """The agent shown; assign another to show it."""
        return self._agent

    @agent.setter
    def agent(self, agent: Agent) -> None:
        self._agent = agent
        self.last_diff = None
        self._diff.value = ""
        self.refresh()

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """The checkpoints shown, oldest first (as of the last :meth:`refresh`)."""
        return list(self._checkpoints)

    @property
    def status(self) -> str:
        """The status line's markup."""
        return str(self._status.value)

    @property
    def diff_html(self) -> str:
        """The markup of the last diff shown."""
        return str(self._diff.value)

    @property
    def list_html(self) -> str:
        """The markup of the checkpoint list."""
        return str(self._list.value)

    def on_fork(self, callback: Callable[[Agent], object]) -> None:
        """Call ``callback(fork)`` with each agent the Fork button (or :meth:`fork`) makes."""
        self._fork_callbacks.append(callback)

    def on_change(self, callback: Callable[[HistoryView], object]) -> None:
        """Call ``callback(view)`` after a rewind or retry changed the agent."""
        self._change_callbacks.append(callback)

    def refresh(self) -> None:
        """Read the checkpoints again (and follow the console to a new agent)."""
        if self._closed:
            return
        if self._console is not None and self._console.agent is not self._agent:
            self._agent = self._console.agent
            self.last_diff = None
            self._diff.value = ""
        try:
            checkpoints = self._agent.checkpoints()
            current = self._agent.checkpoint_id
        except Exception as exc:  # a closed store: say so, keep the view
            self._fail("Could not read the history", exc)
            return
        self._checkpoints = checkpoints
        options = [(_option(pos, cp, current), cp.id) for pos, cp in enumerate(checkpoints)]
        ids = {cp.id for cp in checkpoints}
        parents = {cp.id: cp.parent_id for cp in checkpoints}
        with self.hold_sync():
            self._header.value = (
                f"<b>{esc(self._agent.name)}</b> · {len(checkpoints)} checkpoints · "
                f"{len({cp.turn for cp in checkpoints})} turns"
            )
            self._list.value = history_html(checkpoints, current)
            for dropdown, default in (
                (self.selector, current),
                (self.diff_from, parents.get(current) if current else None),
                (self.diff_to, current),
            ):
                # after an action the choices follow the agent's new position
                dropdown.options = options
                dropdown.value = default if default in ids else None

    def rewind(self, checkpoint_id: str | None) -> bool:
        """Rewind the agent to ``checkpoint_id`` (``agent.rewind``); False if it failed."""
        if not checkpoint_id:
            self._set_status("Choose a checkpoint first.", ok=False)
            return False
        pos = self._position(checkpoint_id)

        def rewind(agent: Agent) -> bool:
            agent.rewind(checkpoint_id)
            return True

        return bool(self._run(rewind, f"Rewound to checkpoint #{pos}.", frames=False))

    def retry(self) -> TurnResult | None:
        """Run the last user message again (``agent.retry``); its result, None if it failed."""
        result: TurnResult | None = self._run(
            lambda agent: agent.retry(), "Retry: the last user message again.", frames=True
        )
        return result

    def fork(
        self,
        checkpoint_id: str | None = None,
        name: str | None = None,
        *,
        agent_id: str | None = None,
    ) -> Agent | None:
        """A fork of the agent at ``checkpoint_id`` (now by default; ``agent.fork``).

        The :meth:`on_fork` callbacks get it (the Lab opens it). Returns it, or None
        if forking failed.
        """
        self.last_error = None
        try:
            forked = self._agent.fork(checkpoint_id or None, name, id=agent_id)
        except Exception as exc:
            self._fail("Fork failed", exc)
            return None
        self._set_status(
            f"Forked {forked.name!r} at checkpoint #{self._position(checkpoint_id)}.", ok=True
        )
        for callback in list(self._fork_callbacks):
            callback(forked)
        return forked

    def diff(self, before: str | None, after: str | None) -> CheckpointDiff | None:
        """Show core and archival memory at ``after`` against ``before`` (see
        :func:`diff_checkpoints`); the diff, or None if it failed."""
        self.last_error = None
        if not before or not after:
            self._set_status("Choose two checkpoints to compare.", ok=False)
            return None
        try:
            result = diff_checkpoints(self._agent, before, after)
        except Exception as exc:
            self._fail("Diff failed", exc)
            return None
        self.last_diff = result
        self._diff.value = (
            f'<div class="mlab-count">#{self._position(before)} → #{self._position(after)}</div>'
            + result.html()
        )
        self._set_status("", ok=True)
        return result

    def close(self) -> None:
        """Close the view's widgets (the console callback then does nothing)."""
        self._closed = True
        for child in [*self.children, *self._buttons.values()]:
            child.close()
        for dropdown in (self.selector, self.diff_from, self.diff_to):
            dropdown.close()
        super().close()

    # -- internals ----------------------------------------------------------

    def _position(self, checkpoint_id: str | None) -> str:
        if checkpoint_id is None:
            return str(len(self._checkpoints) - 1) if self._checkpoints else "?"
        for pos, cp in enumerate(self._checkpoints):
            if cp.id == checkpoint_id:
                return str(pos)
        return "?"

    def _run(self, action: Callable[[Agent], Any], note: str, *, frames: bool) -> Any:
        self.last_error = None
        console = self._console
        if console is not None and console.agent is self._agent:
            try:
                result = console.perform(action, note=note, frames=frames)
            except ConsoleBusyError as exc:  # a turn runs: nothing changed
                self._fail("Busy", exc)
                return None
            error = console.last_error
        else:
            error = None
            try:
                result = action(self._agent)
            except Exception as exc:
                result, error = None, exc
        if error is not None:
            self._fail("Failed", error)
            return None
        self.refresh()
        self._set_status(note, ok=True)
        for callback in list(self._change_callbacks):
            callback(self)
        return result

    def _on_console_busy(self, busy: bool) -> None:
        # Rewind, Retry and Fork act on the agent a turn is changing: not meanwhile.
        if not self._closed:
            for name in ("rewind", "retry", "fork"):
                self._buttons[name].disabled = busy

    def _fail(self, what: str, exc: BaseException) -> None:
        self.last_error = exc
        self._set_status(f"{what}: {type(exc).__name__}: {exc}", ok=False)

    def _set_status(self, message: str, ok: bool) -> None:
        self._status.value = status_html(esc(message), ok)
