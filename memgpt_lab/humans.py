"""Humans: named texts for the agent's human block (what it knows of the user).

Shipped: ``basic``, ``chad``, ``cs_phd``. Add your own as ``<name>.txt`` files
in a directory passed as ``directories=[...]``, or in ``~/.memgpt_lab/humans``.
"""

from __future__ import annotations

from collections.abc import Iterable

from memgpt_lab._texts import HUMANS, PathLike

__all__ = ["DEFAULT_HUMAN", "get_human_text", "list_humans"]

DEFAULT_HUMAN = "basic"


def list_humans(directories: Iterable[PathLike] | None = None) -> list[str]:
    """The human names available, sorted."""
    return HUMANS.names(directories)


def get_human_text(name: str, directories: Iterable[PathLike] | None = None) -> str:
    """The text of human ``name``.

    Raises:
        UnknownNameError: no such human; the message lists the ones there are.
    """
    return HUMANS.text(name, directories)
