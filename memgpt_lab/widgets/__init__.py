"""Notebook widgets; importing this module imports ipywidgets and anywidget.

``import memgpt_lab`` does not import it, so the core stays fast to import.
"""

from __future__ import annotations

from memgpt_lab.widgets.builder import PresetBuilder
from memgpt_lab.widgets.console import AgentConsole
from memgpt_lab.widgets.diff_view import DiffView
from memgpt_lab.widgets.history import CheckpointDiff, HistoryView, diff_checkpoints
from memgpt_lab.widgets.inspector import FrameFilter, TrafficInspector
from memgpt_lab.widgets.lab import Lab
from memgpt_lab.widgets.memory_view import MemoryView
from memgpt_lab.widgets.sweep_view import SweepView
from memgpt_lab.widgets.timeline import Timeline, timeline_svg

__all__ = [
    "AgentConsole",
    "CheckpointDiff",
    "DiffView",
    "FrameFilter",
    "HistoryView",
    "Lab",
    "MemoryView",
    "PresetBuilder",
    "SweepView",
    "Timeline",
    "TrafficInspector",
    "diff_checkpoints",
    "timeline_svg",
]
