"""CSS shared by the lab widgets (console, memory view, preset builder, lab).

Stock ipywidgets have no stylesheet hook, so each composite widget carries a
small ``widgets.HTML`` holding a ``<style>`` block (:func:`style_tag`). The
rules are scoped under ``.mlab-*`` classes, so a block repeated by several
widgets on a page is harmless. Colours use JupyterLab's theme variables with
fallbacks, so the widgets read well in light and dark themes and on nbviewer.

Narrow widths: inside the lab's widgets every row of controls wraps, buttons keep
their text (they never shrink to "« fi…"), text fields and dropdowns are never
wider than their box, and boxes size their borders inside their width, so nothing
scrolls sideways at 800 px and up (tests/browser/test_lab_layout.py measures it).
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = ["CSS", "status_html", "style_tag"]

#: The roots of the lab's composite widgets; the layout rules below apply inside them.
_ROOTS = (
    ".mlab-lab",
    ".mlab-console",
    ".mlab-memory-view",
    ".mlab-preset-builder",
    ".mlab-history-view",
)


def _inside(selector: str) -> str:
    return ", ".join(f"{root} {selector}" for root in _ROOTS)


_LAYOUT = f"""
{_inside("*")} {{ box-sizing: border-box; }}
{", ".join(_ROOTS)} {{ max-width: 100%; min-width: 0; }}
{_inside(".widget-hbox")} {{ flex-wrap: wrap; max-width: 100%; min-width: 0; }}
{_inside(".widget-vbox")} {{ max-width: 100%; min-width: 0; }}
{_inside(".jupyter-button")} {{ flex: 0 0 auto; max-width: 100%; }}
{_inside(".widget-text")}, {_inside(".widget-dropdown")}, {_inside(".widget-textarea")},
{_inside(".widget-inline-hbox")} {{ max-width: 100%; min-width: 0; }}
{_inside(".widget-dropdown > select")} {{ min-width: 0; max-width: 100%; }}
{_inside(".widget-html")}, {_inside(".widget-html-content")} {{ max-width: 100%; min-width: 0; }}
{_inside(".widget-textarea textarea")} {{ width: 100%; }}
"""

CSS = (
    _LAYOUT
    + """
.mlab-transcript, .jupyter-widgets.widget-box.mlab-transcript {
  max-height: 380px; overflow-y: auto; overflow-x: hidden; display: flex;
  flex-direction: column-reverse; justify-content: flex-start; border: 1px solid var(--jp-border-color2, #ddd);
  border-radius: 4px; padding: 4px; background: var(--jp-layout-color0, #fff);
  color: var(--jp-ui-font-color1, #000);
}
.mlab-transcript-chunks, .mlab-transcript-chunk { width: 100%; margin: 0; }
/* the chunks' box grows with them: the transcript, not the box, scrolls */
.jupyter-widgets.widget-box.mlab-transcript-chunks { flex: 0 0 auto; overflow: visible; }
.mlab-transcript-chunk .widget-html-content { display: block; }
.mlab-long summary { cursor: pointer; list-style-position: inside; }
.mlab-long[open] .mlab-preview { display: none; }
.mlab-more { color: var(--jp-brand-color1, #1976d2); font-size: 0.85em; }
.mlab-console-title { font-size: var(--jp-ui-font-size1, 13px); overflow-wrap: anywhere; }
.mlab-entry {
  margin: 2px 0; padding: 3px 6px; border-radius: 4px; white-space: pre-wrap;
  word-break: break-word; font-size: var(--jp-ui-font-size1, 13px); line-height: 1.35;
}
.mlab-entry .mlab-label {
  display: inline-block; min-width: 5.5em; font-size: 0.8em; font-weight: 600;
  text-transform: uppercase; letter-spacing: 0.03em; opacity: 0.75;
}
.mlab-user { background: rgba(33, 150, 243, 0.12); }
.mlab-monologue { color: var(--jp-ui-font-color2, #666); font-style: italic; }
.mlab-assistant { background: rgba(76, 175, 80, 0.15); font-weight: 500; }
.mlab-function-call { font-family: var(--jp-code-font-family, monospace); font-size: 0.9em; }
.mlab-function-ok {
  font-family: var(--jp-code-font-family, monospace); font-size: 0.9em;
  border-left: 3px solid #4caf50;
}
.mlab-function-error {
  font-family: var(--jp-code-font-family, monospace); font-size: 0.9em;
  border-left: 3px solid #e53935; background: rgba(229, 57, 53, 0.08);
}
.mlab-heartbeat { color: var(--jp-mirror-editor-keyword-color, #8e24aa); font-size: 0.9em; }
.mlab-alert { background: rgba(255, 152, 0, 0.15); font-size: 0.9em; }
.mlab-error { background: rgba(229, 57, 53, 0.15); color: var(--jp-error-color1, #b71c1c); }
.mlab-empty { color: var(--jp-ui-font-color3, #999); font-style: italic; padding: 6px; }
.mlab-status { min-height: 1.4em; font-size: var(--jp-ui-font-size1, 13px); }
.mlab-status-error { color: var(--jp-error-color1, #c62828); font-weight: 600; }
.mlab-status-ok { color: var(--jp-success-color1, #2e7d32); }
.mlab-pending { font-size: 0.9em; color: var(--jp-ui-font-color2, #666); }
.mlab-count-over { color: var(--jp-error-color1, #c62828); font-weight: 600; }
.mlab-count { font-size: 0.85em; color: var(--jp-ui-font-color2, #666); }
.mlab-ctx, .mlab-chart { max-width: 100%; }
.mlab-chart-svg { display: block; background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color2, #ccc); border-radius: 3px; }
.mlab-ctx-bar {
  display: flex; height: 18px; width: 100%; box-sizing: border-box; border: 1px solid var(--jp-border-color2, #ccc);
  border-radius: 3px; overflow: hidden; background: var(--jp-layout-color2, #eee);
}
.mlab-ctx-seg { height: 100%; }
.mlab-ctx-system { background: #5c6bc0; }
.mlab-ctx-core_memory { background: #26a69a; }
.mlab-ctx-messages { background: #ffa726; }
.mlab-ctx-functions { background: #8d6e63; }
.mlab-ctx-legend { font-size: 0.85em; margin-top: 3px; display: flex; flex-wrap: wrap; }
.mlab-ctx-legend span.mlab-swatch {
  display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; border-radius: 2px;
}
.mlab-ctx-over .mlab-ctx-bar { border-color: #c62828; }
.mlab-results { font-size: 0.9em; max-height: 220px; overflow-y: auto; }
.mlab-results li { margin: 2px 0; }
.mlab-section-title { font-weight: 600; margin-top: 6px; overflow-wrap: anywhere; }
"""
)


def style_tag() -> widgets.HTML:
    """A new HTML widget holding the lab stylesheet; put it first in a composite widget."""
    tag = widgets.HTML(f"<style>{CSS}</style>", layout=widgets.Layout(height="0px"))
    tag.add_class("mlab-style")
    return tag


def status_html(message: str, ok: bool) -> str:
    """The markup of a status line: ``message`` styled as success or error (already escaped)."""
    if not message:
        return '<div class="mlab-status"></div>'
    kind = "ok" if ok else "error"
    return f'<div class="mlab-status mlab-status-{kind}">{message}</div>'
