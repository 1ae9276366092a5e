"""Offline models: :class:`ScriptedModel` (rules) and :class:`ReplayModel` (a fixed list).

Both answer in the OpenAI chat-completion shape with no network and no key,
and the same input always gives the same output.

What the scripted model does with the last message it sees:

- a login event, or the first user message: greets the user by name if core
  memory knows it;
- "my name is X": writes the name into the human block, then (on the
  heartbeat it asked for) says so;
- "remember that ...": inserts the fact into archival memory, then confirms;
- "what do you remember about Y": searches archival memory, then answers with
  what it found;
- "what did I say about Y": searches recall memory, then answers;
- the questions a demo asks, answered from core memory with no function but
  ``send_message``: "what is my name?" (the human block's ``Name:`` line),
  "what is your name?" / "who are you?" (the persona's), "what do you
  remember?" / "what do you know about me?" (the human block, read back in the
  second person), "what can you do?" (the functions the agent offers). These
  match only as whole questions (a leading "so," or "hey," and a trailing
  "again" are fine): "who are you going to call?" or "what can you do about the
  weather?" are ordinary messages;
- a memory-pressure warning: saves the human block to archival memory;
- anything else: a reply through ``send_message``.

Add rules with ``ScriptedModel(rules=[Rule(r"weather", "Sunny, as ever.")])``:
they are tried before the built-in ones.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import LLMError
from memgpt_lab.llm.base import (
    ContextWindowExceededError,
    TokenEstimator,
    chat_completion,
    estimate_tokens,
)
from memgpt_lab.messages import call_arguments, packet_of, sent_text

__all__ = ["SUMMARY_REQUEST_MARKER", "Context", "ReplayModel", "Rule", "ScriptedModel", "Turn"]

Message = dict[str, Any]

#: The agent's summarisation prompt starts with this; models answer it with a summary.
SUMMARY_REQUEST_MARKER = "[summarise]"


@dataclass(frozen=True)
class Turn:
    """One scripted answer: the inner monologue and, optionally, a function call.

    ``arguments`` is a dict, or a raw string (which need not be valid JSON —
    handy to test how an agent copes with a model's mistakes).
    """

    thought: str | None
    function: str | None = None
    arguments: dict[str, Any] | str = field(default_factory=dict)

    @classmethod
    def say(cls, message: str, thought: str | None = None) -> Turn:
        """A turn that sends ``message`` to the user."""
        return cls(thought or "Replying to the user.", "send_message", {"message": message})

    def completion(self, prompt_tokens: int, model: str) -> dict[str, Any]:
        call = None
        if self.function is not None:
            arguments = self.arguments
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            call = {"name": self.function, "arguments": arguments}
        return chat_completion(self.thought, call, prompt_tokens, model)


@dataclass
class Context:
    """What a rule can read: the messages, the last one parsed, and core memory facts."""

    messages: Sequence[Message]
    packet: dict[str, Any]
    text: str
    human_name: str | None
    persona_name: str | None
    human_block: str
    first_message: bool
    #: The functions the agent offers (None: not known).
    functions: Collection[str] | None = None
    #: The persona block of core memory.
    persona_block: str = ""


Reply = str | Turn | Callable[[re.Match[str], Context], Turn]


@dataclass(frozen=True)
class Rule:
    """Answer user messages matching ``pattern`` (searched, case-insensitive) with ``reply``.

    ``reply`` is a string (sent with ``send_message``; ``{1}``... are the
    pattern's groups, ``{name}`` the user's name), a :class:`Turn`, or a
    function ``(match, context) -> Turn``.
    """

    pattern: str | re.Pattern[str]
    reply: Reply

    def match(self, text: str) -> re.Match[str] | None:
        pattern = self.pattern
        if isinstance(pattern, str):
            pattern = re.compile(pattern, re.IGNORECASE)
        return pattern.search(text)

    def answer(self, match: re.Match[str], context: Context) -> Turn:
        if isinstance(self.reply, Turn):
            return self.reply
        if isinstance(self.reply, str):
            groups = [match.group(0), *(g or "" for g in match.groups())]
            return Turn.say(self.reply.format(*groups, name=context.human_name or "there"))
        return self.reply(match, context)


_NAME_LINE = re.compile(r"^(?:first\s+)?name:\s*(\S[^\n]*)$", re.IGNORECASE | re.MULTILINE)
_CORE_BLOCK = re.compile(r"<(persona|human)[^>]*>\n(.*?)\n</\1>", re.DOTALL)
_SWAPS = {"my": "your", "i": "you", "i'm": "you're", "me": "you", "mine": "yours"}
_FIRST_PERSON = re.compile(r"\b(I'm|I|[Mm]ine|[Mm]y|[Mm]e)\b")


def _second_person(text: str) -> str:
    """'my cat is Tom' -> 'your cat is Tom': the reply speaks to the user."""
    return _FIRST_PERSON.sub(lambda m: _SWAPS[m.group(0).lower()], text)


def _clean(fragment: str) -> str:
    return fragment.strip().rstrip(".!?").strip()


def _name_of(block: str) -> str | None:
    found = _NAME_LINE.search(block)
    if not found:
        return None
    name = found.group(1).strip()
    return None if name.lower().startswith(("unknown", "not known", "?")) else name


def _parse(content: Any) -> dict[str, Any]:
    """The content's packet; plain text reads as a user's message."""
    packet = packet_of(content)
    if packet is not None:
        return packet
    return {"type": "user_message", "message": "" if content is None else str(content)}


_SHOWING = re.compile(r"^Showing \d+ of (\d+) results?")


def _total(text: str) -> int | None:
    """The total a search function's answer reports ("Showing 3 of 7 results"), if any."""
    try:
        value = _json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not value:
        return None
    found = _SHOWING.match(str(value[0]))
    return int(found.group(1)) if found else None


def _results(text: str) -> list[str]:
    """The result lines of a search function's answer (none when nothing was found)."""
    try:
        value = _json.loads(text)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [re.sub(r"^timestamp: [^,]*, (user: )?", "", str(item)) for item in value[1:]]


def _offered(turn: Turn, available: Collection[str] | None) -> bool:
    return available is None or turn.function is None or turn.function in available


def _greet(ctx: Context) -> Turn:
    who = f", {ctx.human_name}" if ctx.human_name else ""
    me = f"I'm {ctx.persona_name}. " if ctx.persona_name else ""
    return Turn.say(
        f"Hello{who}! Yes, I'm here. {me}What's on your mind?",
        "A new conversation. Say hello warmly and invite them to talk.",
    )


def _my_name(match: re.Match[str], ctx: Context) -> Turn:
    name = _clean(match.group(1)).split()[0].strip(",;") if _clean(match.group(1)) else ""
    name = name[:1].upper() + name[1:]
    line = _NAME_LINE.search(ctx.human_block)
    if line:
        args = {"name": "human", "old_content": line.group(0), "new_content": f"Name: {name}"}
        return Turn(
            f"Their name is {name}. I'll correct my notes.",
            "core_memory_replace",
            {**args, "request_heartbeat": True},
        )
    return Turn(
        f"Their name is {name}. I'll note it in core memory.",
        "core_memory_append",
        {"name": "human", "content": f"Name: {name}", "request_heartbeat": True},
    )


def _remember(match: re.Match[str], ctx: Context) -> Turn:
    fact = _clean(match.group(1))
    return Turn(
        "Something to keep. Into archival memory it goes.",
        "archival_memory_insert",
        {"content": fact, "request_heartbeat": True},
    )


def _recall_archival(match: re.Match[str], ctx: Context) -> Turn:
    topic = _clean(match.group(1))
    return Turn(
        f"Let me look in archival memory for {topic!r}.",
        "archival_memory_search",
        {"query": topic, "request_heartbeat": True},
    )


def _recall_conversation(match: re.Match[str], ctx: Context) -> Turn:
    topic = _clean(match.group(1))
    return Turn(
        f"Let me search our conversation for {topic!r}.",
        "conversation_search",
        {"query": topic, "request_heartbeat": True},
    )


def _facts(block: str) -> list[str]:
    """The lines of a core memory block, without a name that is not known yet."""
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    return [ln for ln in lines if not (_NAME_LINE.fullmatch(ln) and _name_of(ln) is None)]


#: The human block speaks of the user in the third person; the reply speaks to them.
_THIRD_TO_SECOND = {
    "they": "you",
    "them": "you",
    "their": "your",
    "theirs": "yours",
    "themselves": "yourself",
    "themself": "yourself",
    "they're": "you're",
    "they’re": "you’re",
    "they've": "you've",
    "they’ve": "you’ve",
    "they'll": "you'll",
    "they’ll": "you’ll",
    "they'd": "you'd",
    "they’d": "you’d",
}
_THIRD_PERSON = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, _THIRD_TO_SECOND), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def _to_user(fact: str) -> str:
    """A human-block line said to the user: "Name: Bob" -> "your name is Bob",
    "I know nothing else about them yet" -> "... about you yet"."""
    name = _NAME_LINE.fullmatch(fact)
    if name:
        return f"your name is {name.group(1).strip().rstrip('.')}"

    def swap(match: re.Match[str]) -> str:
        word = _THIRD_TO_SECOND[match.group(0).lower()]
        return word.capitalize() if match.group(0)[0].isupper() else word

    return _THIRD_PERSON.sub(swap, fact)


def _users_name(match: re.Match[str], ctx: Context) -> Turn:
    if ctx.human_name:
        return Turn.say(
            f"Your name is {ctx.human_name}.", "Their name is in my core memory. Tell them."
        )
    return Turn.say(
        "I don't know your name yet. What should I call you?",
        "My notes have no name for them. Say so and ask.",
    )


def _own_name(match: re.Match[str], ctx: Context) -> Turn:
    if ctx.persona_name:
        return Turn.say(
            f"I'm {ctx.persona_name}.", "My persona names me. Introduce myself in one line."
        )
    return Turn.say(
        "I have no name in my persona notes. What would you like to call me?",
        "My persona has no name line. Say so.",
    )


_ARCHIVED = re.compile(r"^(\d+) passages? (?:is|are) in archival memory", re.MULTILINE)


def _what_i_remember(match: re.Match[str], ctx: Context) -> Turn:
    facts = _facts(ctx.human_block)
    archived = _ARCHIVED.search(str(ctx.messages[0].get("content") or "")) if ctx.messages else None
    kept = int(archived.group(1)) if archived else 0
    more = (
        f" I also keep {_count(kept, 'passage')} in archival memory: ask me what I remember "
        "about something."
        if kept
        else ""
    )
    if not facts:
        return Turn.say(
            "I don't know anything about you yet. Tell me something?" + more,
            "The human block is empty. Say so honestly.",
        )
    return Turn.say(
        "Here's what I know about you: "
        + "; ".join(_to_user(f).rstrip(".") for f in facts)
        + "."
        + more,
        "Read the human block of core memory back to them.",
    )


#: What each function lets the agent do, for "what can you do?".
_ABILITIES = {
    "send_message": "talk with you",
    "core_memory_append": "note what I learn about you in core memory",
    "core_memory_replace": "correct my notes about you",
    "archival_memory_insert": "keep facts in archival memory",
    "archival_memory_search": "search archival memory",
    "conversation_search": "search what we said earlier",
    "conversation_search_date": "look up what we said on a date",
    "pause_heartbeats": "pause my timer heartbeats",
}


def _abilities(match: re.Match[str], ctx: Context) -> Turn:
    # in a fixed order: `functions` is often a set
    offered = set(_ABILITIES if ctx.functions is None else ctx.functions)
    known = [ability for name, ability in _ABILITIES.items() if name in offered]
    other = sorted(name for name in offered if name not in _ABILITIES)
    parts = known + [f"call {name}" for name in other]
    if len(parts) > 1:
        listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    else:
        listed = parts[0] if parts else "only think"
    return Turn.say(f"I can {listed}.", "List what my functions let me do.")


def _chat(match: re.Match[str], ctx: Context) -> Turn:
    said = _clean(ctx.text) or "nothing"
    who = f", {ctx.human_name}" if ctx.human_name else ""
    return Turn.say(
        f"I hear you{who}: “{said}”. Tell me more?",
        "An ordinary message. Acknowledge it and keep the conversation going.",
    )


def _whole(question: str) -> str:
    """A pattern for ``question`` as the whole message: a lead-in ("so,", "hey,",
    "and") and a trailing "again" or "then" allowed, nothing else around it."""
    lead = r"^\s*(?:(?:hey|hi|so|ok|okay|and|well|please)\b[\s,]*)*"
    return lead + "(?:" + question + r")(?:[\s,]+(?:again|then|now))?\s*[?.!]*\s*$"


_IS = r"(?:'s|’s|\s+is)"

BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(r"\bmy name is\s+(.+)", _my_name),
    Rule(r"\bremember that\s+(.+)", _remember),
    Rule(
        _whole(
            r"what (?:do|did) you (?:remember|know)(?: about me)?|tell me what you know about me"
        ),
        _what_i_remember,
    ),
    Rule(r"\bwhat do you remember about\s+(.+)", _recall_archival),
    Rule(r"\bwhat did i say about\s+(.+)", _recall_conversation),
    Rule(
        _whole(
            rf"what{_IS} my name|who am i|(?:do you )?(?:know|remember) my name"
            r"|do you (?:know|remember) what my name is|tell me my name"
        ),
        _users_name,
    ),
    Rule(
        _whole(
            rf"what{_IS} your name|who are you|what should i call you|what do i call you"
            r"|what are you called|tell me your name"
        ),
        _own_name,
    ),
    Rule(
        _whole(
            r"what can you do(?: for me)?|what are you able to do|how can you help(?: me)?"
            r"|what are your (?:functions|abilities|skills)|what (?:functions|tools) do you have"
        ),
        _abilities,
    ),
)
_FALLBACK = Rule(r"", _chat)


def _follow_up(call: dict[str, Any], packet: dict[str, Any], ctx: Context) -> Turn:
    """The step after a function call: tell the user how it went."""
    name = call.get("name", "")
    args = call_arguments(call) or {}
    result = str(packet.get("message", ""))
    if packet.get("status") != "OK":
        return Turn.say(
            f"Sorry, that didn't work: {result}", f"{name} failed. Tell the user plainly."
        )
    if name == "send_message":  # already said; a heartbeat after it has nothing to report
        return Turn("My message is sent. Nothing more needs doing.")
    if name in ("core_memory_append", "core_memory_replace") and args.get("name") == "human":
        new = args.get("content") or args.get("new_content") or ""
        person = _name_of(str(new)) or ctx.human_name
        if person:
            return Turn.say(
                f"Nice to meet you, {person}! I've written your name down.",
                "Saved. Now greet them by name.",
            )
        return Turn.say("Noted — I've updated what I know about you.", "Saved.")
    if name == "archival_memory_insert":
        return Turn.say(
            f"Got it — I'll remember that {_second_person(args.get('content', ''))}.",
            "Stored. Confirm it to the user.",
        )
    if name in ("archival_memory_search", "conversation_search", "conversation_search_date"):
        topic = args.get("query") or "that"
        lines = _results(result)
        shown = len(lines)
        total = _total(result)
        if name == "conversation_search":  # what the user said, not the question itself
            lines = [ln for ln in lines if not ln.startswith("assistant: ")]
            lines = [ln for ln in lines if "what did i say about" not in ln.lower()]
        if not lines:
            return Turn.say(
                f"I don't have anything about {_second_person(topic)} yet.",
                "Nothing found. Say so honestly."
                if not shown
                else f"The search showed {_count(shown, 'result')}, none worth sharing. Say so.",
            )
        found = "; ".join(_second_person(ln) for ln in lines)
        of_total = f" of {total}" if total is not None and total != shown else ""
        thought = f"The search showed {_count(shown, 'result')}{of_total}."
        if len(lines) != shown:
            thought += f" {_count(len(lines), 'is', 'are')} what the user said: share those."
        else:
            thought += " Share it." if shown == 1 else " Share them."
        return Turn.say(f"Here's what I have about {_second_person(topic)}: {found}", thought)
    return Turn.say(f"Done: {result}", f"{name} returned. Report the result.")


def _count(n: int, one: str, many: str | None = None) -> str:
    """``"1 result"``, ``"3 results"``; with ``many``, ``"1 is"`` / ``"2 are"``."""
    if many is not None:
        return f"{n} {one if n == 1 else many}"
    return f"{n} {one}{'' if n == 1 else 's'}"


class ScriptedModel:
    """A deterministic offline model, driven by rules (see the module docstring).

    Args:
        rules: extra rules, tried in order before the built-in ones.
        builtin_rules: set False to use only ``rules`` (then the fallback reply).
        context_window: if set, prompts estimated over it raise
            :class:`ContextWindowExceededError`, as a real endpoint would.
        name: the model name reported in responses.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        builtin_rules: bool = True,
        context_window: int | None = None,
        name: str = "scripted",
    ) -> None:
        self.rules = [*rules, *(BUILTIN_RULES if builtin_rules else ())]
        self.context_window = context_window
        self.name = name
        self.calls = 0
        self._message_tokens = TokenEstimator()
        self._function_tokens = TokenEstimator()

    def __repr__(self) -> str:
        return f"ScriptedModel(rules={len(self.rules)}, context_window={self.context_window})"

    def chat(
        self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls += 1
        prompt_tokens = self._message_tokens(messages) + self._function_tokens(functions)
        if self.context_window is not None and prompt_tokens > self.context_window:
            raise ContextWindowExceededError(
                f"prompt of ~{prompt_tokens} tokens exceeds the context window of {self.context_window}"
            )
        available = {str(f.get("name")) for f in functions} if functions else None
        return self.respond(messages, available).completion(prompt_tokens, self.name)

    def respond(
        self, messages: Sequence[Message], available: Collection[str] | None = None
    ) -> Turn:
        """The :class:`Turn` this model answers ``messages`` with.

        ``available`` names the functions the agent offers (None: any). A built-in
        behaviour whose function is missing says so instead of calling it, as a
        real model only calls what it is offered; users' rules are played as given.
        """
        if not messages:
            raise LLMError("the model was given no messages")
        system = str(messages[0].get("content") or "")
        if system.startswith(SUMMARY_REQUEST_MARKER):
            return Turn(self._summarise(messages[1:]))
        ctx = self._context(messages, available)
        last = messages[-1]
        role = last.get("role")
        if role in ("function", "tool"):
            return self._after_call(messages, len(messages) - 1, ctx)
        kind = ctx.packet.get("type")
        if kind == "login":
            return _greet(ctx)
        if kind == "heartbeat":
            if len(messages) >= 2 and messages[-2].get("role") in ("function", "tool"):
                return self._after_call(messages, len(messages) - 2, ctx)
            return Turn(f"Heartbeat ({ctx.packet.get('reason', 'timer')}). Nothing needs doing.")
        if kind == "system_alert":
            if "close to the context window" in ctx.text:
                if available is not None and "archival_memory_insert" not in available:
                    return Turn("Memory is getting full, and I have no archival memory. Carry on.")
                return Turn(
                    "Memory is getting full. Save what matters about the user.",
                    "archival_memory_insert",
                    {
                        "content": f"Core facts about the user: {ctx.human_block}".strip(),
                        "request_heartbeat": False,
                    },
                )
            return Turn("A system alert. Noted.")
        for rule in self.rules:
            match = rule.match(ctx.text)
            if match:
                turn = rule.answer(match, ctx)
                if rule in BUILTIN_RULES and not _offered(turn, available):
                    return Turn.say(
                        f"I'd like to, but I can't here: I have no {turn.function} function.",
                        f"{turn.function} is not among my functions. Say so.",
                    )
                return turn
        if ctx.first_message:
            return _greet(ctx)
        return _FALLBACK.answer(re.match("", ""), ctx)  # type: ignore[arg-type]

    def _context(
        self, messages: Sequence[Message], available: Collection[str] | None = None
    ) -> Context:
        blocks = dict(_CORE_BLOCK.findall(str(messages[0].get("content") or "")))
        packet = _parse(messages[-1].get("content"))
        text = str(packet.get("message") or "")
        first = not any(m.get("role") == "assistant" for m in messages[1:-1])
        return Context(
            messages,
            packet,
            text,
            _name_of(blocks.get("human", "")),
            _name_of(blocks.get("persona", "")),
            blocks.get("human", ""),
            first,
            available,
            blocks.get("persona", ""),
        )

    def _after_call(self, messages: Sequence[Message], index: int, ctx: Context) -> Turn:
        result = _parse(messages[index].get("content"))
        for message in reversed(messages[:index]):
            call = message.get("function_call")
            if message.get("role") == "assistant" and call:
                return _follow_up(call, result, ctx)
        return Turn("A function result with no call before it. Ignoring it.")

    @staticmethod
    def _summarise(messages: Sequence[Message]) -> str:
        # only what the user said: system alerts (earlier summaries, warnings) are user-role too
        packets = [_parse(m.get("content")) for m in messages if m.get("role") == "user"]
        said = [p.get("message") for p in packets if p.get("type") == "user_message"]
        texts: list[str] = [s for s in said if isinstance(s, str) and s]
        replies = sum(sent_text(m) is not None for m in messages)
        topics = "; ".join(s[:60] for s in texts[-5:]) or "nothing in particular"
        return f"{len(texts)} user messages and {replies} replies. The user talked about: {topics}."


class ReplayModel:
    """Plays back an exact list of responses, one per call.

    Each response is a :class:`Turn`, a string (sent with ``send_message``),
    or a whole chat-completion dict returned as is.

    Raises:
        LLMError: when called after the last response.
    """

    def __init__(
        self, responses: Iterable[Turn | str | dict[str, Any]], name: str = "replay"
    ) -> None:
        self.responses = list(responses)
        self.position = 0
        self.name = name

    def __repr__(self) -> str:
        return f"ReplayModel(played={self.position}/{len(self.responses)})"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str = "replay") -> ReplayModel:
        """Responses from a file: a JSON list, or JSON lines, of strings or completion dicts.

        Raises:
            LLMError: the file is missing, is not JSON, or holds something else.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LLMError(f"cannot read replay file {path}: {exc.strerror or exc}") from None
        try:
            loaded = _json.loads(text)
            items = loaded if isinstance(loaded, list) else [loaded]
        except ValueError:
            try:
                items = [_json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError as exc:
                raise LLMError(
                    f"replay file {path} is neither JSON nor JSON lines: {exc}"
                ) from None
        for number, item in enumerate(items, 1):
            if not isinstance(item, (str, dict)):
                raise LLMError(
                    f"replay file {path}: response {number} must be a string or a completion "
                    f"object, not {type(item).__name__}"
                )
        return cls(items, name=name)

    def chat(
        self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        if self.position >= len(self.responses):
            raise LLMError(
                f"ReplayModel has no more responses: all {len(self.responses)} were played"
            )
        response = self.responses[self.position]
        self.position += 1
        if isinstance(response, dict):
            return response
        turn = Turn.say(response) if isinstance(response, str) else response
        prompt_tokens = estimate_tokens(list(messages)) + estimate_tokens(list(functions))
        return turn.completion(prompt_tokens, self.name)
