"""Personas: named texts for the agent's persona block.

Shipped: ``sam_pov``, ``memgpt_starter``. Add your own as ``<name>.txt`` files
in a directory passed as ``directories=[...]``, or in ``~/.memgpt_lab/personas``.
"""

from __future__ import annotations

from collections.abc import Iterable

from memgpt_lab._texts import PERSONAS, PathLike

__all__ = ["DEFAULT_PERSONA", "get_persona_text", "list_personas"]

DEFAULT_PERSONA = "sam_pov"


def list_personas(directories: Iterable[PathLike] | None = None) -> list[str]:
    """The persona names available, sorted."""
    return PERSONAS.names(directories)


def get_persona_text(name: str, directories: Iterable[PathLike] | None = None) -> str:
    """The text of persona ``name``.

    Raises:
        UnknownNameError: no such persona; the message lists the ones there are.
    """
    return PERSONAS.text(name, directories)
