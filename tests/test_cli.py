from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

import memgpt_lab
from memgpt_lab.cli import DEMO_MESSAGES, main, run_demo


def test_demo_is_the_same_on_every_run():
    first, second = io.StringIO(), io.StringIO()
    frames = run_demo(first)
    run_demo(second)
    assert first.getvalue() == second.getvalue()
    assert frames == 25


def test_demo_shows_the_conversation_and_its_frames():
    out = io.StringIO()
    run_demo(out)
    text = out.getvalue()
    for message in DEMO_MESSAGES:
        assert f"user> {message}" in text
    assert "sam> Nice to meet you, Ada!" in text
    assert (
        "sam> Here's what I have about your favourite language: your favourite language is OCaml"
        in text
    )
    table = text.split("frames captured by the mock socket:", 1)[1].strip().splitlines()
    assert table[0].split() == ["seq", "dir", "kind", "size", "says"]
    rows = table[1:]
    assert len(rows) == 25
    assert [int(row.split()[0]) for row in rows] == list(range(1, 26))
    kinds = [row.split()[2] for row in rows]
    assert kinds[:4] == [
        "internal_monologue",
        "function_message",
        "assistant_message",
        "function_message",
    ]
    assert kinds.count("assistant_message") == len(DEMO_MESSAGES)


def test_demo_previews_start_with_what_the_frame_says():
    out = io.StringIO()
    run_demo(out, width=200)
    rows = out.getvalue().split("frames captured by the mock socket:", 1)[1].strip().splitlines()
    said = [row for row in rows if " assistant_message " in row]
    assert said[1].endswith("Nice to meet you, Ada! I've written your name down.")
    assert not any(row.split(maxsplit=4)[-1].startswith("{") for row in rows[1:])
    # the useful text is cut only by the width asked for, not at ~50 characters
    last = said[-1]
    assert last.endswith("your favourite language is OCaml") and len(last) > 110


def test_demo_uses_the_terminal_width_by_default():
    result = subprocess.run(
        [sys.executable, "-m", "memgpt_lab.cli", "demo"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "72"},
    )
    rows = [line for line in result.stdout.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 25 and max(len(row) for row in rows) == 72


def test_help_is_plain_text_with_examples_and_a_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and "examples:" in text
    assert "memgpt-lab demo" in text and "memgpt-lab serve-llm" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memgpt-lab {memgpt_lab.__version__}"


def test_console_script_runs_the_demo():
    result = subprocess.run(
        [sys.executable, "-m", "memgpt_lab.cli", "demo", "--width", "80"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "25 frames captured" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines() if line[:5].strip().isdigit()) <= 80


def test_main_demo_returns_zero(capsys):
    assert main(["demo"]) == 0
    assert "frames captured" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    try:
        main(["dance"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an unknown command must exit with a usage error")
    assert "invalid choice" in capsys.readouterr().err


@contextlib.contextmanager
def serving(*options: str) -> Iterator[str]:
    """``memgpt-lab serve --port 0 OPTIONS`` in a process of its own; yields its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "memgpt_lab.cli", "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("memgpt-lab serving on ws://127.0.0.1:"), line + (
            server.stderr.read() if server.stderr else ""
        )
        yield line.split()[3]
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_serve_listens_on_loopback_says_nothing_first_and_stops_on_interrupt():
    with serving() as url, connect(url) as ws:
        ws.send(json.dumps({"type": "command", "command": "create_agent", "config": {}}))
        answer = json.loads(ws.recv(timeout=10))  # the first frame: the answer, no hello
        assert answer["status"] == "OK: Agent initialized"
        assert answer["model"] == "scripted"
        assert answer["seq"] == 1


def test_serve_creates_named_agents_and_applies_the_model_policy():
    options = ("--agent", "agent_26", "--agent", "mini=memgpt_minimal", "--model", "as-requested")
    with serving(*options) as url, connect(url) as ws:
        ws.send(json.dumps({"type": "command", "command": "list_agents"}))
        listed = json.loads(ws.recv(timeout=10))["agents"]
        config = {"persona": "sam_pov", "human": "basic", "model": "gpt-4-1106-preview"}
        ws.send(json.dumps({"type": "command", "command": "create_agent", "config": config}))
        created = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"type": "user_message", "message": "Hi", "agent_id": "agent_26"}))
        frames = [json.loads(ws.recv(timeout=10))]
        while frames[-1]["type"] != "agent_response_end":
            frames.append(json.loads(ws.recv(timeout=10)))
    assert [(a["name"], a["model"]) for a in listed] == [
        ("agent_26", "scripted"),
        ("mini", "scripted"),
    ]
    assert created["status"] == "OK: Agent initialized"
    assert created["model"] == "openai:gpt-4-1106-preview"  # built, not called: no key needed
    assert frames[0]["type"] == "agent_response_start"
    assert any(f.get("message_type") == "assistant_message" for f in frames)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (("--model", "gpt-9"), "unknown model 'gpt-9'"),
        (("--agent", "x=nowhere"), "could not create agent 1 (x): unknown preset 'nowhere'"),
        (("--agent", "=p"), "--agent takes NAME or NAME=PRESET"),
    ],
)
def test_serve_refuses_bad_settings_with_a_usage_error(capsys, options, says):
    assert main(["serve", "--port", "0", *options]) == 2
    assert says in capsys.readouterr().err


def test_serve_limits_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--max-queued-bytes", "0"])
    assert exited.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "token" in capsys.readouterr().err
