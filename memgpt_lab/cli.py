"""The ``memgpt-lab`` command.

``memgpt-lab demo``
    A short offline conversation (a greeting, a name, a fact remembered, a fact
    searched) through :class:`SyncWebSocketInterface` into a
    :class:`MockWebSocket`; prints the captured frames as a table. The same
    output on every run.
``memgpt-lab serve [--host 127.0.0.1] [--port 8282] [--token TOKEN]``
    The WebSocket server, hosting agents on loopback (a token is required to
    bind any other address).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["DEMO_MESSAGES", "main", "run_demo"]

#: The user's side of the demo conversation.
DEMO_MESSAGES = (
    "Hello, is anyone there?",
    "My name is Ada.",
    "Remember that my favourite language is OCaml.",
    "What do you remember about my favourite language?",
)


def run_demo(out: TextIO, width: int = 110) -> int:
    """Run the demo conversation and print its frames to ``out``. Returns the frame count."""
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
    print(recording.table(width=width, show_time=False), file=out)
    return len(recording)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memgpt-lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = commands.add_parser("demo", help="a short offline conversation, its frames printed")
    demo.add_argument("--width", type=int, default=110, help="table width (default 110)")
    serve = commands.add_parser("serve", help="the WebSocket server on loopback")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8282, help="port (default 8282)")
    serve.add_argument("--token", default=None, help="require this token from clients")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        run_demo(sys.stdout, args.width)
        return 0
    from memgpt_lab.errors import LabError
    from memgpt_lab.ws.server import serve_forever

    try:
        serve_forever(host=args.host, port=args.port, token=args.token)
    except (LabError, ValueError, OSError) as exc:  # bad settings, port in use
        print(f"memgpt-lab serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
