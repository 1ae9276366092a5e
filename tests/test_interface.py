"""Agent interfaces: collecting, fanning out, printing, dispatch by kind."""

from __future__ import annotations

import io

import pytest

from memgpt_lab.interface import (
    EVENT_KINDS,
    AgentEvent,
    AgentInterface,
    CollectingInterface,
    MultiInterface,
    PrintingInterface,
)


def send_all(interface: AgentInterface) -> None:
    interface.user_message("hello", {"role": "user"})
    interface.internal_monologue("thinking")
    interface.function_message("Running send_message({'message': 'hi'})")
    interface.assistant_message("hi")
    interface.function_message("Success: None")


def test_base_interface_does_nothing() -> None:
    interface = AgentInterface()
    send_all(interface)
    interface.emit("assistant_message", "ignored")


def test_collecting_interface_keeps_events_in_order() -> None:
    interface = CollectingInterface()
    send_all(interface)
    assert interface.kinds() == [
        "user_message",
        "internal_monologue",
        "function_message",
        "assistant_message",
        "function_message",
    ]
    assert interface.events[0] == AgentEvent("user_message", "hello")
    assert interface.events[0].msg_obj == {"role": "user"}
    assert interface.events[3] == AgentEvent("assistant_message", "hi", {"ignored": "in =="})
    interface.clear()
    assert interface.events == []


def test_emit_dispatches_by_kind() -> None:
    interface = CollectingInterface()
    for kind in EVENT_KINDS:
        interface.emit(kind, kind.upper(), {"k": kind})
    assert [(e.kind, e.message, e.msg_obj) for e in interface.events] == [
        (kind, kind.upper(), {"k": kind}) for kind in EVENT_KINDS
    ]


@pytest.mark.parametrize("kind", ["shout", "emit", "", "__init__"])
def test_emit_with_a_bad_kind(kind: str) -> None:
    interface = CollectingInterface()
    with pytest.raises(ValueError, match=f"unknown event kind {kind!r}; expected one of"):
        interface.emit(kind, "x")
    assert interface.events == []


def test_multi_interface_fans_out_in_order() -> None:
    log: list[str] = []

    class Tagged(AgentInterface):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def assistant_message(self, msg: str, msg_obj: dict | None = None) -> None:
            log.append(f"{self.tag}:{msg}")

    first, second = CollectingInterface(), CollectingInterface()
    multi = MultiInterface([first, Tagged("a"), second, Tagged("b")])
    send_all(multi)
    assert first.events == second.events
    assert len(first.events) == 5
    assert log == ["a:hi", "b:hi"]
    multi.emit("internal_monologue", "via emit")
    assert first.events[-1] == second.events[-1] == AgentEvent("internal_monologue", "via emit")
    with pytest.raises(ValueError):
        multi.emit("nope", "x")


def test_multi_interface_nests_and_may_be_empty() -> None:
    inner = CollectingInterface()
    MultiInterface([MultiInterface([inner])]).assistant_message("deep")
    assert inner.events == [AgentEvent("assistant_message", "deep")]
    MultiInterface([]).user_message("nobody listens")


def test_printing_interface_output() -> None:
    out = io.StringIO()
    send_all(PrintingInterface(out))
    assert out.getvalue().splitlines() == [
        "[    user] hello",
        "[  thinks] thinking",
        "[function] Running send_message({'message': 'hi'})",
        "[    says] hi",
        "[function] Success: None",
    ]


def test_printing_interface_can_hide_users_and_defaults_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    send_all(PrintingInterface(out, show_user=False))
    assert "hello" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 4
    PrintingInterface().assistant_message("to stdout")
    assert capsys.readouterr().out == "[    says] to stdout\n"
