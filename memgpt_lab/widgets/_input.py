"""MessageInput: a text box that sends on Enter (a small anywidget).

Stock ipywidgets give a ``Textarea`` no key events and deprecate ``Text.on_submit``,
so the lab's message boxes are this widget: Enter submits, Shift+Enter starts a
new line (when ``rows`` > 1), Escape cancels. The browser sends ``{"event":
"submit", "value": ...}`` or ``{"event": "cancel"}`` as a custom message; the
value is also synced as the user types, so ``.value`` reads the box at any time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

__all__ = ["MessageInput"]

_ESM = """
function render({ model, el }) {
  const rows = model.get("rows");
  const box = document.createElement(rows > 1 ? "textarea" : "input");
  if (rows > 1) { box.rows = rows; } else { box.type = "text"; }
  box.className = "mlab-message-box";
  box.value = model.get("value");
  box.placeholder = model.get("placeholder");
  box.disabled = model.get("disabled");
  box.setAttribute("aria-label", model.get("placeholder"));
  // JupyterLab's shortcuts (Shift+Enter runs the cell, Escape leaves edit mode) match
  // from the focused element upwards; this attribute stops them at the box.
  box.setAttribute("data-lm-suppress-shortcuts", "true");
  box.addEventListener("input", () => { model.set("value", box.value); model.save_changes(); });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault(); event.stopPropagation();
      model.set("value", box.value); model.save_changes();
      model.send({ event: "submit", value: box.value });
    } else if (event.key === "Escape") {
      event.preventDefault(); event.stopPropagation();
      model.send({ event: "cancel" });
    } else if (event.key === "Enter" && rows > 1) {
      // Shift+Enter: a new line, not "run the cell". Inserted here: the page may swallow
      // the keypress that would have typed it.
      event.preventDefault(); event.stopPropagation();
      box.setRangeText("\\n", box.selectionStart, box.selectionEnd, "end");
      model.set("value", box.value); model.save_changes();
    }
  });
  model.on("change:value", () => {
    if (box.value !== model.get("value")) { box.value = model.get("value"); }
  });
  model.on("change:disabled", () => { box.disabled = model.get("disabled"); });
  model.on("change:placeholder", () => { box.placeholder = model.get("placeholder"); });
  el.classList.add("mlab-message-input");
  el.appendChild(box);
}
export default { render };
"""

_CSS = """
.mlab-message-input { flex: 1 1 auto; min-width: 0; display: flex; }
.mlab-message-input .mlab-message-box {
  flex: 1 1 auto; width: 100%; min-width: 0; box-sizing: border-box; resize: vertical;
  font-family: var(--jp-ui-font-family, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #000); background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 2px; padding: 4px 6px;
}
.mlab-message-input .mlab-message-box:focus {
  outline: 1px solid var(--jp-brand-color1, #1976d2); border-color: var(--jp-brand-color1, #1976d2);
}
"""


class MessageInput(anywidget.AnyWidget):
    """A message box: Enter calls the :meth:`on_submit` callbacks, Escape the :meth:`on_cancel`
    ones; Shift+Enter is a new line when ``rows`` > 1 (one row is a single-line box)."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    _css = traitlets.Unicode(_CSS).tag(sync=True)
    value = traitlets.Unicode("", help="The text in the box, synced as the user types.").tag(
        sync=True
    )
    placeholder = traitlets.Unicode("", help="Shown while the box is empty.").tag(sync=True)
    rows = traitlets.Int(1, help="Visible lines; 1 is a single-line box.").tag(sync=True)
    disabled = traitlets.Bool(False, help="Refuse input.").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._submit: list[Callable[[MessageInput], object]] = []
        self._cancel: list[Callable[[MessageInput], object]] = []
        # The text the box last submitted, while state updates may still carry it.
        self._submitted: str | None = None
        self.on_msg(self._on_message)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        # The browser throttles state updates, so the keystrokes' last update can arrive after
        # the submit message and after the console cleared the box: that stale text must not
        # come back. Any other text (the user typing again) ends the watch.
        submitted = self._submitted
        if submitted is not None and "value" in sync_data:
            if sync_data["value"] == submitted:
                if self.value != submitted:
                    sync_data = {k: v for k, v in sync_data.items() if k != "value"}
            else:
                self._submitted = None
        super().set_state(sync_data)

    def __repr__(self) -> str:
        return f"<MessageInput {len(self.value)} characters>"

    def on_submit(self, callback: Callable[[MessageInput], object]) -> None:
        """Call ``callback(box)`` when the user presses Enter (:meth:`submit` from code)."""
        self._submit.append(callback)

    def on_cancel(self, callback: Callable[[MessageInput], object]) -> None:
        """Call ``callback(box)`` when the user presses Escape."""
        self._cancel.append(callback)

    def submit(self, value: str | None = None) -> None:
        """What Enter does: set ``value`` (if given), then run the submit callbacks."""
        if value is not None:
            self.value = value
        if not self.disabled:
            for callback in list(self._submit):
                callback(self)

    def cancel(self) -> None:
        """What Escape does: run the cancel callbacks."""
        for callback in list(self._cancel):
            callback(self)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        if event == "submit":
            value = content.get("value")
            if isinstance(value, str):
                self._submitted = value
            self.submit(value if isinstance(value, str) else None)
        elif event == "cancel":
            self.cancel()


_BUSY_ESM = """
function render({ model, el }) {
  el.classList.add("mlab-busy");
  const spin = document.createElement("span"); spin.className = "mlab-spinner";
  const text = document.createElement("span"); text.className = "mlab-busy-text";
  el.append(spin, text);
  let timer = null;
  function tick() {
    const since = model.get("since");
    const seconds = Math.max(0, (Date.now() - since) / 1000);
    text.textContent = `${model.get("label")} ${seconds.toFixed(1)} s`;
  }
  function update() {
    const busy = model.get("busy");
    el.classList.toggle("mlab-busy-on", busy);
    if (busy && timer === null) { tick(); timer = setInterval(tick, 100); }
    if (!busy && timer !== null) { clearInterval(timer); timer = null; }
    if (!busy) { text.textContent = ""; }
  }
  model.on("change:busy", update); model.on("change:since", update);
  model.on("change:label", () => { if (model.get("busy")) tick(); });
  update();
  return () => { if (timer !== null) clearInterval(timer); };
}
export default { render };
"""

_BUSY_CSS = """
.mlab-busy { display: none; align-items: center; gap: 6px; min-height: 1.4em;
  font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color2, #666); }
.mlab-busy.mlab-busy-on { display: flex; }
.mlab-spinner { width: 12px; height: 12px; border-radius: 50%;
  border: 2px solid var(--jp-border-color2, #ccc); border-top-color: var(--jp-brand-color1, #1976d2);
  animation: mlab-spin 0.8s linear infinite; }
@keyframes mlab-spin { to { transform: rotate(360deg); } }
"""


class BusyIndicator(anywidget.AnyWidget):
    """A spinner and the seconds elapsed since ``since`` (counted in the browser) while ``busy``."""

    _esm = traitlets.Unicode(_BUSY_ESM).tag(sync=True)
    _css = traitlets.Unicode(_BUSY_CSS).tag(sync=True)
    busy = traitlets.Bool(False, help="Show the spinner and the elapsed time.").tag(sync=True)
    since = traitlets.Float(0.0, help="When the work began, in ms since the epoch.").tag(sync=True)
    label = traitlets.Unicode("", help="What is under way ('Thinking… step 2').").tag(sync=True)

    def __repr__(self) -> str:
        return f"<BusyIndicator busy={self.busy}>"
