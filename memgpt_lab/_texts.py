"""Named texts (personas, humans, system prompts) shipped in the package or added by users.

A text's name is its file name without ``.txt``. The package's own texts come
first; a user adds theirs by putting files in a directory and passing it as
``directories=[...]``, or in ``$MEMGPT_LAB_HOME/<kind>s/`` (``~/.memgpt_lab``
by default). A user's file of the same name wins over the package's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from memgpt_lab.errors import UnknownNameError

PACKAGE_DIR = Path(__file__).parent / "presets"
PathLike = str | os.PathLike[str]


def user_home() -> Path:
    """``$MEMGPT_LAB_HOME``, or ``~/.memgpt_lab``."""
    return Path(os.environ.get("MEMGPT_LAB_HOME") or Path.home() / ".memgpt_lab")


class NamedTexts:
    """The texts of one kind, found in the package, the user's home and given directories."""

    def __init__(self, kind: str, folder: str, suffix: str = ".txt") -> None:
        self.kind = kind
        self.folder = folder
        self.suffix = suffix

    def directories(self, extra: Iterable[PathLike] | None = None) -> list[Path]:
        """Where to look, lowest priority first."""
        return [PACKAGE_DIR / self.folder, user_home() / self.folder, *map(Path, extra or ())]

    def files(self, extra: Iterable[PathLike] | None = None) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for directory in self.directories(extra):
            if directory.is_dir():
                for path in sorted(directory.glob(f"*{self.suffix}")):
                    found[path.name[: -len(self.suffix)]] = path
        return found

    def names(self, directories: Iterable[PathLike] | None = None) -> list[str]:
        return sorted(self.files(directories))

    def path(self, name: str, directories: Iterable[PathLike] | None = None) -> Path:
        files = self.files(directories)
        if name not in files:
            raise UnknownNameError(self.kind, name, files)
        return files[name]

    def text(self, name: str, directories: Iterable[PathLike] | None = None) -> str:
        return self.path(name, directories).read_text(encoding="utf-8").strip()


PERSONAS = NamedTexts("persona", "personas")
HUMANS = NamedTexts("human", "humans")
PROMPTS = NamedTexts("system prompt", "prompts")
PRESETS = NamedTexts("preset", "presets", ".yaml")
