"""One run of a sweep: a fresh agent, one conversation, everything it did, as plain data.

:func:`execute_run` is what an executor runs. It takes a :class:`RunSpec` (strings
and a frozen :class:`~memgpt_lab.sweep.conversations.Conversation`) and returns a
JSON-able dict, so it travels to a process pool or a Dask worker and back by
pickling plain data only; nothing live (threads, sockets, models) crosses.

Inside, the run is what the lab does by hand: an agent from a preset, its events
through a :class:`~memgpt_lab.ws.interface.SyncWebSocketInterface` into a
:class:`~memgpt_lab.recorder.MockWebSocket`, each user message fed in as a
client's ``user_message`` frame and each turn bracketed by
``agent_response_start`` / ``agent_response_end`` as the server does. The agent's
clock is a :class:`~memgpt_lab.system.FixedClock`, so with the scripted or a
replayed model a run gives the same messages and frames on every machine; only
the times (frame times, latencies, the run's duration) differ, and
:func:`normalise_run` blanks them for comparisons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_lab.interface import AgentInterface, MultiInterface
from memgpt_lab.messages import function_call_of, packet_of
from memgpt_lab.sweep.conversations import Conversation

if TYPE_CHECKING:
    from memgpt_lab.llm.base import ChatModel

__all__ = [
    "RUN_STATUSES",
    "RunSpec",
    "execute_run",
    "normalise_run",
    "run_record",
    "unrun_turns",
]

#: A run's ``status``: every check passed, a check failed, or the run raised.
RUN_STATUSES = ("passed", "failed", "error")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class RunSpec:
    """What one run is: a preset, a model string, a persona and a human (names), a
    conversation, and which repeat. Plain data; :attr:`run_id` names it."""

    preset: str
    model: str
    persona: str
    human: str
    conversation: Conversation
    repeat: int = 0
    #: where the preset is read from when it is a file (its path resolved); None: ``preset``
    preset_path: str | None = None
    #: the model string built, its ``replay:`` / ``cassette:`` path resolved; None: ``model``
    model_target: str | None = None
    #: a digest of what the run reads besides the conversation: the preset (its fields and
    #: system prompt), the persona's and the human's texts, a replayed model's file content
    inputs: str = ""

    def key(self) -> dict[str, Any]:
        """The fields that label the run (the conversation by name): as the sweep says
        them, whatever the working directory."""
        return {
            "preset": self.preset,
            "model": self.model,
            "persona": self.persona,
            "human": self.human,
            "conversation": self.conversation.name,
            "repeat": self.repeat,
        }

    @property
    def run_id(self) -> str:
        """A readable, file-safe id; its hash covers the labels, the conversation's turns
        and checks, and :attr:`inputs` (the preset, persona, human and replay file
        contents), never a resolved path: the same sweep gives the same ids from any
        working directory, and editing what a run reads makes its runs new (a resumed
        sweep reruns them)."""
        identity = {
            **self.key(),
            "turns": self.conversation.to_mapping()["turns"],
            "inputs": self.inputs,
        }
        digest = hashlib.blake2b(
            json.dumps(identity, sort_keys=True).encode("ascii"),  # lone surrogates escaped
            digest_size=6,
        ).hexdigest()
        readable = ".".join(
            [self.conversation.name, self.preset, self.model, self.persona, self.human]
        )
        slug = _UNSAFE.sub("_", readable).strip("._")[:80]
        return f"{slug}.r{self.repeat}.{digest}"


class _StepMeter(AgentInterface):
    """Notes each step's model call (latency, tokens) as the step ends."""

    def __init__(self) -> None:
        self.agent: Any = None
        self.steps: list[dict[str, Any]] = []

    def step_done(self) -> None:
        call = self.agent.last_call
        usage = self.agent.last_usage
        if call is None:
            return
        reported = call.reported_prompt_tokens
        self.steps.append(
            {
                "model": call.model,
                "latency": call.latency,
                "prompt_tokens": reported if reported is not None else call.estimated_prompt_tokens,
                "completion_tokens": usage.get("completion_tokens"),
                "tokens_estimated": reported is None,
            }
        )


class _RunLogs(logging.Handler):
    """Keeps the package's log records from a run's own thread (a summarising agent's
    warning...) with that run, and nothing else.

    One handler on the ``memgpt_lab`` logger while any run is in progress. A record
    from a thread that is not running a run (the caller's, another library's) is
    left as it would be without this handler: when no other handler would take it,
    Python's last-resort handler prints it, as it always does.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.runs: dict[int, list[str]] = {}
        self.guard = threading.Lock()

    def start(self) -> list[str]:
        """Keep this thread's records until :meth:`stop`; the list they go to."""
        lines: list[str] = []
        with self.guard:
            if not self.runs:
                logging.getLogger("memgpt_lab").addHandler(self)
            self.runs[threading.get_ident()] = lines
        return lines

    def stop(self) -> None:
        with self.guard:
            self.runs.pop(threading.get_ident(), None)
            if not self.runs:
                logging.getLogger("memgpt_lab").removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.runs.get(record.thread) if record.thread is not None else None
        if lines is not None:
            lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")
            return
        # not a run's: do what logging would have done had this handler not been there
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return  # another handler has it
            logger = logger.parent if logger.propagate else None
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)


_RUN_LOGS = _RunLogs()


def _functions(messages: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    called: list[str] = []
    failed: list[str] = []
    for message in messages:
        if message.get("role") == "assistant":
            call = function_call_of(message)
            if call is not None:
                called.append(str(call.get("name")))
        elif message.get("role") in ("function", "tool"):
            packet = packet_of(message.get("content")) or {}
            if packet.get("status") == "Failed":
                failed.append(str(message.get("name")))
    return called, failed


def _error(exc: BaseException, turn: int) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "turn": turn,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def execute_run(spec: RunSpec, model: ChatModel | None = None) -> dict[str, Any]:
    """Run ``spec``'s conversation on a fresh agent; return the run as plain data.

    ``model`` replaces the model ``spec.model`` names, for this process only (a
    :class:`~memgpt_lab.llm.cassette.Cassette` recording the answers that
    ``spec.model`` will replay, say); the run keeps ``spec.model`` as its name.

    Never raises for what the run does: an error (a model that fails, an unknown
    preset...) ends the run and is returned under ``"error"`` (type, message, the
    turn it happened in, 0 before the first, and the traceback).

    Returns:
        ``run_id``, the key fields (``preset``, ``model``, ``persona``, ``human``,
        ``conversation``, ``repeat``), ``status`` (one of :data:`RUN_STATUSES`),
        ``error``, ``turns`` (per turn: ``user``, ``replies``, ``functions``,
        ``failed_functions``, ``steps`` with latency and tokens, ``truncated``,
        ``checks``, ``messages``), ``core_memory`` (at the end), ``traffic`` (the
        frames, :meth:`~memgpt_lab.recorder.Frame.to_dict`), ``duration`` and ``log``
        (the package's warnings during the run, which are not printed).
    """
    log = _RUN_LOGS.start()
    try:
        return _execute(spec, model, log)
    finally:
        _RUN_LOGS.stop()


def _execute(spec: RunSpec, model: ChatModel | None, log: list[str]) -> dict[str, Any]:
    from memgpt_lab import system
    from memgpt_lab.humans import get_human_text
    from memgpt_lab.personas import get_persona_text
    from memgpt_lab.presets import create_agent_from_preset
    from memgpt_lab.recorder import MockWebSocket, Recording
    from memgpt_lab.ws.interface import SyncWebSocketInterface

    started = time.perf_counter()
    recording = Recording(clock=lambda: time.perf_counter() - started)
    ws = MockWebSocket(recording, connection_id="c1")
    meter = _StepMeter()
    turns: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    core_memory: dict[str, str] = {}
    with SyncWebSocketInterface(agent_id=spec.run_id, thread_name="memgpt_lab-sweep-run") as ws_if:
        ws_if.register_client(ws)
        try:
            agent = create_agent_from_preset(
                spec.preset_path or spec.preset,
                None,
                (spec.model_target or spec.model) if model is None else model,
                get_persona_text(spec.persona),
                get_human_text(spec.human),
                MultiInterface([ws_if, meter]),
                clock=system.FixedClock(),
                id=spec.run_id,
            )
        except Exception as exc:  # an unknown preset or model, a bad persona: the run's error
            error = _error(exc, 0)
            agent = None
        meter.agent = agent
        for number, turn in enumerate(spec.conversation.turns, 1):
            if agent is None or error is not None:
                break
            # as a client sends it: json.dumps escapes what UTF-8 cannot carry
            ws.feed(
                json.dumps({"type": "user_message", "message": turn.user, "agent_id": agent.id})
            )
            ws_if.begin_turn()
            first_step = len(meter.steps)
            try:
                result = agent.turn(turn.user)
            except Exception as exc:
                error = _error(exc, number)
                ws_if.end_turn(f"{type(exc).__name__}: {exc}")
                ws_if.flush()
                break
            ws_if.end_turn()
            ws_if.flush()
            messages = result.messages
            called, failed = _functions(messages)
            core_memory = dict(agent.memory.blocks)
            turns.append(
                {
                    "turn": number,
                    "user": turn.user,
                    "replies": result.replies,
                    "functions": called,
                    "failed_functions": failed,
                    "steps": meter.steps[first_step:],
                    "truncated": result.truncated,
                    "checks": turn.expect.evaluate(
                        result.replies, called, core_memory, len(result.steps), failed
                    ),
                    "messages": messages,
                    "error": None,
                }
            )
    if error is not None:
        turns.extend(unrun_turns(spec, len(turns) + 1, error))
    run = run_record(
        spec,
        error,
        turns,
        core_memory,
        [frame.to_dict() for frame in recording],
        time.perf_counter() - started,
    )
    run["log"] = log
    return run


def run_record(
    spec: RunSpec,
    error: dict[str, Any] | None,
    turns: list[dict[str, Any]],
    core_memory: dict[str, str],
    traffic: list[dict[str, Any]],
    duration: float,
) -> dict[str, Any]:
    """The plain-data record of a run (see :func:`execute_run`)."""
    passed = all(check["passed"] for turn in turns for check in turn["checks"])
    return {
        "run_id": spec.run_id,
        **spec.key(),
        "status": "error" if error is not None else "passed" if passed else "failed",
        "error": error,
        "turns": turns,
        "core_memory": core_memory,
        "traffic": traffic,
        "duration": duration,
        "log": [],
    }


def unrun_turns(spec: RunSpec, first: int, error: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries for the turns from ``first`` on that did not complete because of ``error``:
    no replies, and every check failed, so pass rates count what was never reached.

    The turn that raised carries the error's message; when the run stopped before its
    first turn (its agent could not be built, the executor lost it), the first turn
    carries it, so every table and summary shows what went wrong."""
    entries = []
    raised = error.get("turn")
    for number, turn in enumerate(spec.conversation.turns[first - 1 :], first):
        what = f"{error['type']}: {error['message']}"
        if number == raised:
            reason = what
        elif number == first and not raised:
            before = "lost by the executor" if error.get("executor") else "could not start"
            reason = f"the run {before}: {what}"
        else:
            reason = f"not run: the run stopped with {error['type']}"
        checks = [
            {**outcome, "passed": False, "detail": reason}
            for outcome in turn.expect.evaluate([], [], {}, 0)
        ]
        entries.append(
            {
                "turn": number,
                "user": turn.user,
                "replies": [],
                "functions": [],
                "failed_functions": [],
                "steps": [],
                "truncated": False,
                "checks": checks,
                "messages": [],
                "error": reason,
            }
        )
    return entries


def normalise_run(run: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run with what differs between identical runs blanked: the frames'
    times, the steps' latencies and the run's duration. Two runs of the scripted model
    normalise to equal dicts, on any executor."""
    out = dict(run)
    out["duration"] = 0.0
    out["traffic"] = [{**frame, "time": 0.0, "wall_time": 0.0} for frame in run["traffic"]]
    out["turns"] = [
        {**turn, "steps": [{**step, "latency": 0.0} for step in turn["steps"]]}
        for turn in run["turns"]
    ]
    return out
