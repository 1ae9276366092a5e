"""Conversation files: named conversations of user turns, with checks per turn.

A YAML file holds a list of conversations (or a mapping with a ``conversations``
key holding the list); a JSON-lines file holds one conversation per line::

    conversations:
      - name: remembers_a_name
        turns:
          - "Hello, is anyone there?"           # a turn without checks
          - user: "My name is Ada."
            expect:
              reply: "Ada"                      # a regex searched in the turn's replies
              calls: [core_memory_replace]      # functions that must be called (and succeed)
              not_calls: [archival_memory_insert]   # ... and must not be
              core_memory: {human: "Ada"}       # block -> text it must contain afterwards
              max_steps: 3                      # at most this many steps

Every check of a turn is evaluated (not only the first that fails), so a
report shows all that went wrong. A file that does not parse or validate raises
:class:`ConversationError` naming the file, the conversation and the turn.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import LabError

__all__ = [
    "CHECK_KINDS",
    "Conversation",
    "ConversationError",
    "ConversationTurn",
    "Expect",
    "load_conversations",
    "parse_conversations",
]

#: The checks a turn may carry, in the order they are evaluated and reported.
CHECK_KINDS = ("reply", "calls", "not_calls", "core_memory", "max_steps")

_CORE_BLOCKS = ("persona", "human")


class ConversationError(LabError, ValueError):
    """A conversation file or mapping that does not parse or validate.

    Attributes:
        source: the file (or ``"<inline>"``).
        conversation: the conversation's name, or its position (``"#2"``) when it has none;
            None for a problem with the file as a whole.
        turn: the turn's number (from 1), or None.
        problem: what is wrong, and how to fix it.
        line: the line of a JSON-lines file (from 1), or None.
    """

    def __init__(
        self,
        source: str,
        problem: str,
        conversation: str | None = None,
        turn: int | None = None,
        line: int | None = None,
    ) -> None:
        self.source = source
        self.conversation = conversation
        self.turn = turn
        self.problem = problem
        self.line = line
        where = source if line is None else f"{source}, line {line}"
        if conversation is not None:
            where += f": conversation {conversation}"
        if turn is not None:
            where += f", turn {turn}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Expect:
    """The checks of one turn; all optional.

    Attributes:
        reply: a regular expression searched in the turn's replies (joined by newlines).
        calls: functions the turn must call, successfully: a call that returned a
            failure (an edit of text that is not there...) does not count.
        not_calls: functions the turn must not call.
        core_memory: ``(block, text)`` pairs: the block must contain the text after the turn.
        max_steps: the most steps the turn may take.
    """

    reply: str | None = None
    calls: tuple[str, ...] = ()
    not_calls: tuple[str, ...] = ()
    core_memory: tuple[tuple[str, str], ...] = ()
    max_steps: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.reply is not None
            or self.calls
            or self.not_calls
            or self.core_memory
            or self.max_steps is not None
        )

    @property
    def count(self) -> int:
        """How many checks there are (each ``core_memory`` pair counts as one)."""
        return (
            (self.reply is not None)
            + bool(self.calls)
            + bool(self.not_calls)
            + len(self.core_memory)
            + (self.max_steps is not None)
        )

    def to_mapping(self) -> dict[str, Any]:
        """The checks as written in a file (only those set)."""
        out: dict[str, Any] = {}
        if self.reply is not None:
            out["reply"] = self.reply
        if self.calls:
            out["calls"] = list(self.calls)
        if self.not_calls:
            out["not_calls"] = list(self.not_calls)
        if self.core_memory:
            out["core_memory"] = dict(self.core_memory)
        if self.max_steps is not None:
            out["max_steps"] = self.max_steps
        return out

    def evaluate(
        self,
        replies: Sequence[str],
        functions: Sequence[str],
        core_memory: Mapping[str, str],
        steps: int,
        failed_functions: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Each check's outcome: ``{"check", "expected", "passed", "detail"}``, in file order.

        ``functions`` are the calls the turn made (a name once per call) and
        ``failed_functions`` those of them that failed; a ``calls`` check needs a call
        of each function that did not fail."""
        outcomes: list[dict[str, Any]] = []

        def add(check: str, expected: Any, passed: bool, detail: str) -> None:
            outcomes.append(
                {"check": check, "expected": expected, "passed": passed, "detail": detail}
            )

        if self.reply is not None:
            said = "\n".join(replies)
            found = re.search(self.reply, said) is not None
            add("reply", self.reply, found, "" if found else f"no match in {said!r:.200}")
        if self.calls:
            missing = [name for name in self.calls if name not in functions]
            failed = [
                name
                for name in self.calls
                if name in functions
                and list(functions).count(name) <= list(failed_functions).count(name)
            ]
            problems = [f"not called: {', '.join(missing)}"] if missing else []
            problems += [f"failed: {', '.join(failed)}"] if failed else []
            add("calls", list(self.calls), not problems, "; ".join(problems))
        if self.not_calls:
            called = [name for name in self.not_calls if name in functions]
            add(
                "not_calls",
                list(self.not_calls),
                not called,
                f"called: {', '.join(called)}" if called else "",
            )
        for block, text in self.core_memory:
            held = core_memory.get(block, "")
            ok = text in held
            add(
                "core_memory",
                {block: text},
                ok,
                "" if ok else f"{block} block lacks {text!r}: {held!r:.200}",
            )
        if self.max_steps is not None:
            ok = steps <= self.max_steps
            add("max_steps", self.max_steps, ok, "" if ok else f"took {steps} steps")
        return outcomes


@dataclass(frozen=True)
class ConversationTurn:
    """One user message and the checks on the agent's answer to it."""

    user: str
    expect: Expect = field(default_factory=Expect)

    def to_mapping(self) -> str | dict[str, Any]:
        checks = self.expect.to_mapping()
        return {"user": self.user, "expect": checks} if checks else self.user


@dataclass(frozen=True)
class Conversation:
    """A named list of user turns. Plain, frozen data: it travels to any worker.

    Build one from a file with :func:`load_conversations`, from a mapping with
    :meth:`from_mapping`, or directly: ``Conversation("hi", (ConversationTurn("Hello"),))``.
    """

    name: str
    turns: tuple[ConversationTurn, ...]
    source: str = field(default="<inline>", compare=False)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ConversationError(self.source, "has no turns", repr(self.name))

    @property
    def checks(self) -> int:
        """How many checks the conversation carries, over all its turns."""
        return sum(turn.expect.count for turn in self.turns)

    def to_mapping(self) -> dict[str, Any]:
        """The conversation as written in a file."""
        return {"name": self.name, "turns": [turn.to_mapping() for turn in self.turns]}

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        source: str = "<inline>",
        position: int = 1,
        known_functions: Iterable[str] | None = None,
    ) -> Conversation:
        """Validate one conversation's fields and build it.

        Raises:
            ConversationError: naming ``source``, the conversation and the turn.
        """
        label = f"#{position}"
        if not isinstance(data, Mapping):
            raise ConversationError(
                source,
                f"must be a mapping with 'name' and 'turns', not {type(data).__name__}",
                label,
            )
        if "name" not in data:
            raise ConversationError(source, "needs a 'name' (non-empty text)", label)
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise ConversationError(source, f"'name' must be non-empty text, not {name!r}", label)
        label = repr(name)
        unknown = sorted(set(data) - {"name", "turns"})
        if unknown:
            raise ConversationError(
                source, f"unknown field(s) {', '.join(unknown)}; known: name, turns", label
            )
        turns = data.get("turns")
        if not isinstance(turns, list) or not turns:
            raise ConversationError(source, "needs 'turns': a non-empty list", label)
        if known_functions is None:
            from memgpt_lab.functions import DEFAULT_FUNCTIONS

            known_functions = DEFAULT_FUNCTIONS
        known = frozenset(known_functions)
        parsed = tuple(
            _parse_turn(item, source, label, number, known) for number, item in enumerate(turns, 1)
        )
        return cls(name, parsed, source)


def _parse_turn(
    item: Any, source: str, conversation: str, number: int, known: frozenset[str]
) -> ConversationTurn:
    def fail(problem: str) -> ConversationError:
        return ConversationError(source, problem, conversation, number)

    if isinstance(item, str):
        if not item.strip():
            raise fail("the user message is empty")
        return ConversationTurn(item)
    if not isinstance(item, Mapping):
        raise fail(
            f"a turn is a user message (text) or a mapping with 'user' and 'expect', "
            f"not {type(item).__name__}"
        )
    unknown = sorted(set(item) - {"user", "expect"})
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; known: user, expect")
    user = item.get("user")
    if not isinstance(user, str) or not user.strip():
        raise fail("'user' must be the user's message (non-empty text)")
    # A check that is present must check something: an empty list, mapping or text would
    # pass whatever the agent did, which is worse than no check at all.
    expect = item.get("expect", {})
    if not isinstance(expect, Mapping):
        raise fail(f"'expect' must be a mapping of checks, not {expect!r}")
    if "expect" in item and not expect:
        raise fail("'expect' holds no check; leave it out for a turn without checks")
    unknown = sorted(set(expect) - set(CHECK_KINDS))
    if unknown:
        raise fail(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECK_KINDS)}")
    reply = expect.get("reply")
    if "reply" in expect:
        if not isinstance(reply, str) or not reply:
            raise fail(
                f"'reply' must be a regular expression (non-empty text), not {reply!r}: "
                "an empty one matches any reply"
            )
        try:
            re.compile(reply)
        except re.error as exc:
            raise fail(f"'reply' is not a valid regular expression: {exc}") from None
    calls = _function_names(expect, "calls", known, fail)
    not_calls = _function_names(expect, "not_calls", known, fail)
    both = sorted(set(calls) & set(not_calls))
    if both:
        raise fail(f"{', '.join(both)} both in 'calls' and 'not_calls'")
    core = expect.get("core_memory", {})
    if (
        not isinstance(core, Mapping)
        or ("core_memory" in expect and not core)
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in core.items())
    ):
        raise fail(
            "'core_memory' must map a block name to the (non-empty) text it must contain, "
            f"not {core!r}"
        )
    for block in core:
        if block not in _CORE_BLOCKS:
            raise fail(f"no core memory block {block!r}; blocks: {', '.join(_CORE_BLOCKS)}")
    max_steps = expect.get("max_steps")
    if "max_steps" in expect and (
        not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1
    ):
        raise fail(f"'max_steps' must be a whole number of 1 or more, not {max_steps!r}")
    return ConversationTurn(
        user,
        Expect(reply, calls, not_calls, tuple(core.items()), max_steps),
    )


def _function_names(
    expect: Mapping[str, Any], key: str, known: frozenset[str], fail: Any
) -> tuple[str, ...]:
    if key not in expect:
        return ()
    value = expect[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(f"{key!r} must be a non-empty list of function names, not {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise fail(
            f"{key!r} names unknown function(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return tuple(value)


def parse_conversations(
    data: Any, source: str = "<inline>", known_functions: Iterable[str] | None = None
) -> list[Conversation]:
    """Conversations from parsed data: a list of conversation mappings, or
    ``{"conversations": [...]}``. Names must be unique.

    Raises:
        ConversationError: naming ``source``, the conversation and the turn.
    """
    if isinstance(data, Mapping):
        if set(data) != {"conversations"}:
            raise ConversationError(
                source, "expected a list of conversations, or a mapping with only 'conversations'"
            )
        data = data["conversations"]
    if not isinstance(data, list) or not data:
        raise ConversationError(source, "expected a non-empty list of conversations")
    conversations = [
        Conversation.from_mapping(item, source, position, known_functions)
        for position, item in enumerate(data, 1)
    ]
    _check_unique(conversations, source)
    return conversations


def _check_unique(conversations: Sequence[Conversation], source: str) -> None:
    seen: set[str] = set()
    for conversation in conversations:
        if conversation.name in seen:
            raise ConversationError(
                source, "the name is used twice; names must be unique", repr(conversation.name)
            )
        seen.add(conversation.name)


def load_conversations(
    path: str | os.PathLike[str], known_functions: Iterable[str] | None = None
) -> list[Conversation]:
    """Conversations from a YAML file (``.yaml`` / ``.yml``) or JSON lines (``.jsonl``).

    Raises:
        ConversationError: the file is missing, does not parse or does not validate; the
            message names the file, the conversation (name, or position) and the turn.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversationError(source, f"cannot read the file: {exc}") from None
    if source.endswith((".jsonl", ".ndjson")):
        conversations: list[Conversation] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = _json.loads(line)
            except ValueError as exc:
                raise ConversationError(source, f"not JSON: {exc}", line=number) from None
            try:
                conversation = Conversation.from_mapping(
                    item, source, len(conversations) + 1, known_functions
                )
            except ConversationError as exc:
                raise ConversationError(
                    source, exc.problem, exc.conversation, exc.turn, number
                ) from None
            if any(c.name == conversation.name for c in conversations):
                raise ConversationError(
                    source,
                    "the name is used twice; names must be unique",
                    repr(conversation.name),
                    line=number,
                )
            conversations.append(conversation)
        if not conversations:
            raise ConversationError(source, "holds no conversations")
        return conversations
    if not source.endswith((".yaml", ".yml")):
        raise ConversationError(
            source, "a conversation file is YAML (.yaml, .yml) or JSON lines (.jsonl)"
        )
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConversationError(source, f"not valid YAML: {exc}") from None
    return parse_conversations(data, source, known_functions)
