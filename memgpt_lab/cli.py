"""The ``memgpt-lab`` command.

``memgpt-lab demo``
    A short offline conversation (a greeting, a name, a fact remembered, a fact
    searched) through :class:`SyncWebSocketInterface` into a
    :class:`MockWebSocket`; prints the captured frames as a table. The same
    output on every run.
``memgpt-lab serve [--host 127.0.0.1] [--port 8282] [--token TOKEN] [--model POLICY] ...``
    The WebSocket server, hosting agents on loopback (a token is required to
    bind any other address), speaking MemGPT 0.2's WebSocket protocol. The
    model policy is ``scripted`` (the default: every agent offline), a model
    string (every agent on it) or ``as-requested``; ``--agent NAME[=PRESET]``
    creates named agents at start; ``--db PATH`` keeps the agents in a SQLite
    file, so a restarted server has them (with their memory and history); the
    limits (``--max-queued-bytes``...) are listed by ``memgpt-lab serve --help``.
``memgpt-lab serve-llm [--host 127.0.0.1] [--port 8484] [--model scripted] [--api-key KEY] ...``
    An OpenAI-compatible chat-completions endpoint (``/v1``) answering with an
    offline model (``scripted``, ``replay:FILE`` or ``cassette:FILE``), with
    faults to inject (``--rate-limit N``, ``--overflow-after N``...; see
    ``memgpt-lab serve-llm --help``). Any OpenAI client pointed at it works
    offline. An API key is required to bind beyond loopback.
``memgpt-lab sweep sweep.yaml [--workers N] [--scheduler tcp://host:port] [--results DIR]``
    Run a sweep file (conversations x presets x models...; see
    :func:`memgpt_lab.sweep.load_sweep`) on local processes (threads for remote
    models) or a Dask cluster, print pass rates and the failing turns, and exit
    1 when a check failed or a run raised: a CI gate.
``memgpt-lab replay FILE --url ws://127.0.0.1:8282 [--snapshot GOLDEN] [--save NEW]``
    Replays a captured session (HAR or JSON lines) against a live server
    (:func:`memgpt_lab.ws.replay.replay`) and prints its differences; exits 0
    when there are none, 1 when there are (or an answer did not come), 2 on bad
    input (a bad URL or timeout, an unreadable file, nothing to replay), 3 when
    the replay could not run (the server unreachable or its handshake refused).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording

__all__ = ["DEMO_MESSAGES", "main", "run_demo"]

#: The user's side of the demo conversation.
DEMO_MESSAGES = (
    "Hello, is anyone there?",
    "My name is Ada.",
    "Remember that my favourite language is OCaml.",
    "What do you remember about my favourite language?",
)


#: What ``memgpt-lab --help`` says first (plain text: argparse prints it as it is).
DESCRIPTION = "memgpt-lab: a testbench for MemGPT-style agents, offline by default."
#: The examples under ``memgpt-lab --help``.
EXAMPLES = """examples:
  memgpt-lab demo                       an offline conversation and the frames it sent
  memgpt-lab demo --width 200           the same, previews up to 200 columns wide
  memgpt-lab serve                      agents on ws://127.0.0.1:8282 (MemGPT 0.2's protocol)
  memgpt-lab serve --agent sam --db lab.sqlite
                                        a named agent, kept in a file across restarts
  memgpt-lab serve-llm --port 8484      an OpenAI-compatible endpoint, offline
  memgpt-lab serve-llm --rate-limit 2   ... whose first two answers are 429s
  memgpt-lab sweep notebooks/sweeps/sweep.yaml --workers 2
                                        conversations x presets x models, checked: a CI gate
  memgpt-lab replay traffic.har --url ws://127.0.0.1:8282
                                        a captured session again against a server, diffed

Each command has its own help: memgpt-lab serve --help."""


def _terminal_width() -> int:
    """The terminal's width (COLUMNS when set), 110 when it cannot be told."""
    return shutil.get_terminal_size((110, 24)).columns


def _useful_text(frame: Frame) -> str:
    """What a frame says, first: its ``message`` (or ``status``), then the other fields."""
    value = frame.json
    if not isinstance(value, dict):
        return frame.preview(10_000)
    said = value.get("message", value.get("status"))
    rest = {
        k: v
        for k, v in value.items()
        if k not in ("type", "message_type", "message", "status", "seq")
    }
    extra = " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in rest.items()
    )
    text = said if isinstance(said, str) else ("" if said is None else json.dumps(said))
    return " · ".join(part for part in (" ".join(text.split()), extra) if part)


def demo_table(recording: Recording, width: int) -> str:
    """The demo's frames, one line each: seq, direction, kind (the message_type, else the
    type), size, then what the frame says, cut to ``width`` columns."""
    head = f"{'seq':>4} {'dir':<3} {'kind':<20} {'size':>5} "
    room = max(width - len(head), 10)
    lines = [head + "says"]
    for frame in recording.frames():
        kind = frame.message_type or frame.type or f"({frame.opcode})"
        text = _useful_text(frame)
        if len(text) > room:
            text = text[: room - 1] + "…"
        lines.append(
            f"{frame.seq:>4} {frame.direction:<3} {kind:<20} {frame.size:>5} {text}".rstrip()
        )
    return "\n".join(lines)


def run_demo(out: TextIO, width: int | None = None) -> int:
    """Run the demo conversation and print its frames to ``out``. Returns the frame count.

    ``width`` is the table's width; by default the terminal's.
    """
    from memgpt_lab import system
    from memgpt_lab.humans import get_human_text
    from memgpt_lab.personas import get_persona_text
    from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
    from memgpt_lab.recorder import MockWebSocket, Recording, TickClock
    from memgpt_lab.ws.interface import SyncWebSocketInterface

    recording = Recording(clock=TickClock(), wall_clock=TickClock(1_767_258_000.0))
    ws = MockWebSocket(recording)
    with SyncWebSocketInterface() as interface:
        interface.register_client(ws)
        agent = create_agent_from_preset(
            DEFAULT_PRESET,
            {"name": "sam"},
            "scripted",
            get_persona_text("sam_pov"),
            get_human_text("basic"),
            interface,
            clock=system.FixedClock(),
            id="demo",
        )
        for message in DEMO_MESSAGES:
            print(f"user> {message}", file=out)
            turn = agent.turn(message)
            interface.flush()
            for reply in turn.replies:
                print(f"{agent.name}> {reply}", file=out)
    print(f"\n{len(recording)} frames captured by the mock socket:\n", file=out)
    print(demo_table(recording, width if width is not None else _terminal_width()), file=out)
    return len(recording)


def _parser() -> argparse.ArgumentParser:
    from memgpt_lab import __version__

    parser = argparse.ArgumentParser(
        prog="memgpt-lab",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memgpt-lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = commands.add_parser(
        "demo",
        help="a short offline conversation, its frames printed",
        description="A short offline conversation with the scripted model, then the frames "
        "a WebSocket client would have received, one line each. The same on every run.",
    )
    demo.add_argument(
        "--width",
        type=_positive,
        default=None,
        metavar="COLUMNS",
        help="table width (default: the terminal's)",
    )
    _add_serve(commands)
    _add_serve_llm(commands)
    _add_sweep(commands)
    _add_replay(commands)
    return parser


def _add_sweep(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a sweep file; exit 1 when a check fails (a CI gate)",
        description="Run every conversation of a sweep file against every combination of its "
        "presets, models, personas and humans; print pass rates and the failing turns. Exit "
        "status: 0 all passed, 1 a check failed or a run raised, 2 a bad sweep file.",
    )
    add = sweep.add_argument
    add("file", help="the sweep file (YAML)")
    add(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="local workers (default: one process per CPU; 8 threads when a model is remote); "
        "not with --scheduler",
    )
    add(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on this Dask scheduler (tcp://host:port) instead of local workers",
    )
    add(
        "--results",
        default=None,
        metavar="DIR",
        help="keep finished runs here; a run again "
        "skips them (default: the file's 'results', else nothing kept)",
    )
    add("--no-progress", action="store_true", help="no progress bar")


def _sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memgpt_lab.errors import LabError
    from memgpt_lab.sweep import load_sweep

    if args.scheduler is not None and args.workers is not None:
        print(
            "memgpt-lab sweep: --workers sizes the local workers; with --scheduler the "
            "cluster's workers run the sweep (size the cluster instead): give one or the other",
            file=sys.stderr,
        )
        return 2
    try:
        sweep = load_sweep(args.file)
        if args.results is not None:
            sweep.results_dir = Path(args.results)
        if args.scheduler is not None:
            from distributed import Client

            try:
                client = Client(args.scheduler)
            except ValueError as exc:  # an address that does not parse
                print(
                    f"memgpt-lab sweep: --scheduler {args.scheduler!r} is not a Dask scheduler "
                    f"address ({exc}); give tcp://host:port",
                    file=sys.stderr,
                )
                return 2
            with client:
                result = sweep.run(client.get_executor(), progress=not args.no_progress)
        else:
            result = sweep.run(progress=not args.no_progress, workers=args.workers)
    except (LabError, OSError) as exc:
        print(f"memgpt-lab sweep: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.passed else 1


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _not_negative(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _add_serve(commands: Any) -> None:
    from memgpt_lab.ws import server as defaults

    serve = commands.add_parser(
        "serve",
        help="the WebSocket server on loopback, speaking MemGPT 0.2's WebSocket protocol",
        description="The agent server: MemGPT 0.2's WebSocket protocol, plus additive fields and "
        "commands. Runs until Ctrl-C or SIGTERM.",
    )
    add = serve.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8282, help="port (default 8282; 0 picks a free one)")
    add("--token", default=None, help="require this token from clients")
    add(
        "--model",
        default="scripted",
        metavar="POLICY",
        help="the model agents run on: scripted (default; every agent offline), a model string "
        "for every agent (e.g. ollama:llama3.1), or as-requested (the model each client asks "
        "for; a bare OpenAI name like gpt-4-1106-preview means openai:gpt-4-1106-preview)",
    )
    add(
        "--agent",
        action="append",
        default=[],
        metavar="NAME[=PRESET]",
        help="create an agent of this name at start (repeatable); PRESET is a preset name or "
        "a .yaml path",
    )
    add(
        "--db",
        default=None,
        metavar="PATH",
        help="keep agents in this SQLite file (created if missing): loaded at start, every "
        "step saved, so a restarted server has them; default: in memory, lost on exit",
    )
    add("--preset-dir", action="append", default=[], metavar="DIR", help="more preset files")
    add("--persona-dir", action="append", default=[], metavar="DIR", help="more persona texts")
    add("--human-dir", action="append", default=[], metavar="DIR", help="more human texts")
    limits = serve.add_argument_group("limits")
    add = limits.add_argument
    add(
        "--max-workers",
        type=_not_negative,
        default=None,
        metavar="N",
        help="worker threads: agents stepping at once (turns of one agent run one at a time); "
        "0 steps them on the server's own thread, the fastest for offline agents "
        f"(default: 0 with --model scripted, else {defaults.DEFAULT_MAX_WORKERS})",
    )
    add(
        "--max-size",
        type=_positive,
        default=defaults.DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest frame a client may send; bigger ones close with 1009 "
        f"(default {defaults.DEFAULT_MAX_SIZE})",
    )
    add(
        "--max-queued-bytes",
        type=_positive,
        default=defaults.DEFAULT_MAX_QUEUED_BYTES,
        metavar="BYTES",
        help="frames queued for one connection before it counts as not reading and is closed "
        f"with 1008 (default {defaults.DEFAULT_MAX_QUEUED_BYTES})",
    )
    add(
        "--max-turns-in-flight",
        type=_positive,
        default=defaults.DEFAULT_MAX_TURNS_IN_FLIGHT,
        metavar="N",
        help="requests one connection may have queued or running; more are refused as busy "
        f"(default {defaults.DEFAULT_MAX_TURNS_IN_FLIGHT})",
    )
    add(
        "--max-agents",
        type=_positive,
        default=defaults.DEFAULT_MAX_AGENTS,
        metavar="N",
        help=f"agents hosted at most (default {defaults.DEFAULT_MAX_AGENTS})",
    )
    add(
        "--max-rejections",
        type=_positive,
        default=defaults.DEFAULT_MAX_REJECTIONS,
        metavar="N",
        help=f"refused handshakes remembered (default {defaults.DEFAULT_MAX_REJECTIONS})",
    )
    add(
        "--resume-buffer-bytes",
        type=_not_negative,
        default=defaults.DEFAULT_RESUME_BUFFER_BYTES,
        metavar="BYTES",
        help="recent turn frames kept per agent for resume and repeated requests "
        f"(default {defaults.DEFAULT_RESUME_BUFFER_BYTES}; 0 keeps none)",
    )
    add(
        "--max-remembered-requests",
        type=_positive,
        default=defaults.DEFAULT_MAX_REMEMBERED_REQUESTS,
        metavar="N",
        help="request_ids remembered per agent, so a repeated request is not run twice "
        f"(default {defaults.DEFAULT_MAX_REMEMBERED_REQUESTS})",
    )


def _agent_option(text: str) -> dict[str, str]:
    name, sep, preset = text.partition("=")
    if not name or (sep and not preset):
        raise ValueError(f"--agent takes NAME or NAME=PRESET, not {text!r}")
    return {"name": name, "preset": preset} if preset else {"name": name}


def _add_serve_llm(commands: Any) -> None:
    serve_llm = commands.add_parser(
        "serve-llm",
        help="an OpenAI-compatible endpoint on loopback, answering with an offline model",
        description="An OpenAI-compatible chat-completions endpoint (/v1) answering with an "
        "offline model, with faults to inject for tests. Runs until Ctrl-C or SIGTERM.",
    )
    add = serve_llm.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8484, help="port (default 8484; 0 picks a free one)")
    add(
        "--model",
        default="scripted",
        help="the model answering: scripted (default), replay:FILE (a JSON list or JSON lines "
        "of responses) or cassette:FILE",
    )
    add(
        "--served-model-name",
        default=None,
        metavar="NAME",
        help="the model name clients must ask for (default: the model's own name)",
    )
    add("--api-key", default=None, metavar="KEY", help="require 'Authorization: Bearer KEY'")
    faults = serve_llm.add_argument_group("faults (for tests; none by default)")
    add = faults.add_argument
    add(
        "--overflow-after",
        type=int,
        default=None,
        metavar="N",
        help="prompts estimated above N tokens get the context-overflow error",
    )
    add(
        "--error-style",
        default="openai",
        choices=["openai", "vllm", "llamacpp", "lmstudio"],
        help="whose context-overflow error body to send (default openai)",
    )
    add(
        "--rate-limit",
        type=int,
        default=0,
        metavar="N",
        help="the first N requests get 429 rate_limit_exceeded with Retry-After",
    )
    add(
        "--retry-after",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds the 429 answers ask clients to wait (default 1)",
    )
    add(
        "--fail",
        type=int,
        default=0,
        metavar="N",
        help="the next N requests get a server error (status --fail-status)",
    )
    add(
        "--fail-status",
        type=int,
        default=500,
        metavar="CODE",
        help="the status of --fail errors (default 500)",
    )
    add(
        "--delay",
        type=float,
        default=0.0,
        metavar="S",
        help="wait S seconds before answering each request",
    )
    add(
        "--malformed",
        type=int,
        default=0,
        metavar="N",
        help="the first N answers are a JSON body cut short",
    )
    add(
        "--drop-stream",
        type=int,
        default=0,
        metavar="N",
        help="the first N streamed answers stop half-way (connection cut)",
    )
    add(
        "--truncate-context",
        type=int,
        default=None,
        metavar="N",
        help="silently drop the oldest messages until the prompt fits N tokens, as Ollama does",
    )


def _serve_llm(args: argparse.Namespace) -> int:
    from memgpt_lab.errors import LabError
    from memgpt_lab.llm.server import Faults, serve_forever

    try:
        faults = Faults(
            overflow_after=args.overflow_after,
            error_style=args.error_style,
            rate_limit=args.rate_limit,
            retry_after=args.retry_after,
            fail=args.fail,
            fail_status=args.fail_status,
            delay=args.delay,
            malformed=args.malformed,
            drop_stream=args.drop_stream,
            truncate_context=args.truncate_context,
        )
        serve_forever(
            args.model,
            host=args.host,
            port=args.port,
            faults=faults,
            served_model_name=args.served_model_name,
            api_key=args.api_key,
        )
    except (LabError, ValueError, OSError) as exc:  # bad settings, unreadable file, port in use
        print(f"memgpt-lab serve-llm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _add_replay(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="replay a captured session against a live server; exit 1 on a difference",
        description="Sends each connection's client frames to a live server in recorded order, "
        "waiting for each answer, and compares what comes back with the recording (times and "
        "ids normalised). Exit status: 0 no difference; 1 a difference (or an answer that did "
        "not come); 2 bad input (URL, timeout, an unreadable file, a recording without client "
        "frames); 3 the replay could not run (the server unreachable, its handshake refused).",
    )
    add = replay.add_argument
    add("file", help="the captured session: HAR or JSON lines")
    add("--url", required=True, help="the live server, e.g. ws://127.0.0.1:8282")
    add(
        "--snapshot",
        default=None,
        metavar="GOLDEN",
        help="compare with this golden file instead of FILE (a recording, or a ws_snapshot "
        ".json file); written from this run when missing",
    )
    add(
        "--save",
        default=None,
        metavar="NEW",
        help="write this run's recording (.har or JSON lines)",
    )
    add(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a handshake header to send (the recording's own are masked), repeatable",
    )
    add(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        help="seconds to wait for each answer (default 30)",
    )


def _positive_seconds(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _compare_with_snapshot(result: Any, path: str) -> bool:
    """Point ``result``'s diff at the golden file ``path``; write it when missing (True).

    A ``.json`` file is a ``ws_snapshot`` golden file (normalised frames); anything
    else a recording (HAR or JSON lines).
    """
    import os

    from memgpt_lab.recorder import Recording
    from memgpt_lab.recorder.diff import diff_frames
    from memgpt_lab.recorder.normalise import Normaliser
    from memgpt_lab.recorder.snapshot import dump_snapshot, load_snapshot

    is_snapshot = path.endswith(".json")
    if not os.path.exists(path):
        if is_snapshot:
            with open(path, "w", encoding="utf-8") as file:
                file.write(dump_snapshot(result.recording, Normaliser()))
        else:
            result.recording.save(path)
        return True
    if is_snapshot:
        with open(path, encoding="utf-8") as file:
            golden = load_snapshot(file.read())
        fresh = load_snapshot(dump_snapshot(result.recording, Normaliser()))
        # Both sides are normalised already: compare them as they stand.
        result.diff = diff_frames(golden, fresh, Normaliser(times=False, ids=False, uuids=False))
    else:
        result.original = Recording.load(path)
        result.diff = result.original.diff(result.recording)
    return False


def _replay(args: argparse.Namespace) -> int:
    from memgpt_lab.errors import LabError
    from memgpt_lab.recorder import Recording
    from memgpt_lab.ws.replay import replay

    try:
        headers = {}
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--header takes 'NAME: VALUE', not {header!r}")
            headers[name.strip()] = value.strip()
        recording = Recording.load(args.file)
        result = replay(recording, args.url, timeout=args.timeout, additional_headers=headers)
        if args.save:
            result.recording.save(args.save)
        if result.unreachable:
            # The replay did not run: no diff to show, and no golden file to write from it.
            for line in result.unreachable:
                print(f"memgpt-lab replay: could not run the replay: {line}", file=sys.stderr)
            return 3
        if args.snapshot and _compare_with_snapshot(result, args.snapshot):
            print(f"memgpt-lab replay: wrote {args.snapshot} ({len(result.recording)} frames)")
            return 1 if result.incomplete else 0
    except (LabError, ValueError, OSError) as exc:  # unreadable file, bad URL
        print(f"memgpt-lab replay: {exc}", file=sys.stderr)
        return 2
    print(result)
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        run_demo(sys.stdout, args.width)
        return 0
    if args.command == "serve-llm":
        return _serve_llm(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "replay":
        return _replay(args)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from memgpt_lab.errors import LabError
    from memgpt_lab.ws.server import serve_forever

    try:
        serve_forever(
            host=args.host,
            port=args.port,
            token=args.token,
            model=args.model,
            agents=[_agent_option(text) for text in args.agent],
            db=args.db,
            preset_directories=args.preset_dir,
            persona_directories=args.persona_dir,
            human_directories=args.human_dir,
            max_size=args.max_size,
            max_queued_bytes=args.max_queued_bytes,
            max_turns_in_flight=args.max_turns_in_flight,
            max_agents=args.max_agents,
            max_rejections=args.max_rejections,
            resume_buffer_bytes=args.resume_buffer_bytes,
            max_remembered_requests=args.max_remembered_requests,
            max_workers=args.max_workers,
        )
    except (LabError, ValueError, OSError) as exc:  # bad settings, port in use
        print(f"memgpt-lab serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
