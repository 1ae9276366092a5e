"""Message packaging: MemGPT's JSON field names, explicit times, FixedClock determinism."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from memgpt_lab import system
from memgpt_lab.system import FixedClock, format_time

T0 = datetime(2026, 3, 4, 15, 5, 6, tzinfo=UTC)
T0_TEXT = "2026-03-04 03:05:06 PM UTC+0000"


def test_format_time_of_aware_naive_and_string() -> None:
    assert format_time(T0) == T0_TEXT
    # a naive time is taken as UTC
    assert format_time(T0.replace(tzinfo=None)) == T0_TEXT
    assert format_time("yesterday, 5pm") == "yesterday, 5pm"
    morning = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert format_time(morning) == "2026-01-01 12:30:00 AM UTC+0000"


def test_format_time_keeps_the_offset_of_an_aware_time() -> None:
    plus_two = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two).endswith("+0200")
    assert format_time(plus_two).startswith("2026-01-01 09:00:00 AM")


def test_format_time_reads_the_clock_only_when_no_time_is_given() -> None:
    clock = FixedClock(T0)
    assert format_time(None, clock) == T0_TEXT
    assert format_time(T0 + timedelta(days=1), clock).startswith("2026-03-05")
    assert clock.now == T0 + timedelta(seconds=1)  # read once, by the first call only


def test_fixed_clock_steps_and_is_deterministic() -> None:
    a, b = FixedClock(), FixedClock()
    first = [a() for _ in range(3)]
    assert first == [b() for _ in range(3)]
    assert first[0] == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert first[1] - first[0] == timedelta(seconds=1)
    slow = FixedClock(T0, step=timedelta(minutes=5))
    assert [slow(), slow()] == [T0, T0 + timedelta(minutes=5)]
    assert "now=2026-03-04T15:15:06" in repr(slow)


def test_system_clock_is_timezone_aware() -> None:
    assert system.system_clock().tzinfo is not None


def test_package_user_message_fields() -> None:
    packet = json.loads(system.package_user_message("hi there", T0))
    assert packet == {"type": "user_message", "message": "hi there", "time": T0_TEXT}
    assert list(packet) == ["type", "message", "time"]
    named = json.loads(system.package_user_message("hi", T0, name="Ada"))
    assert named == {"type": "user_message", "message": "hi", "time": T0_TEXT, "name": "Ada"}


def test_package_user_message_keeps_non_ascii_and_reads_the_clock() -> None:
    text = system.package_user_message("café ☕", clock=FixedClock(T0))
    assert "café ☕" in text  # ensure_ascii=False
    assert json.loads(text)["time"] == T0_TEXT


def test_heartbeat_and_its_reasons() -> None:
    assert json.loads(system.get_heartbeat(time=T0)) == {
        "type": "heartbeat",
        "reason": "Automated timer",
        "time": T0_TEXT,
    }
    packet = json.loads(system.get_heartbeat(reason=system.REQ_HEARTBEAT_MESSAGE, time=T0))
    assert packet["reason"] == "request_heartbeat == true"
    failed = json.loads(system.get_heartbeat(system.FUNC_FAILED_HEARTBEAT_MESSAGE, T0))
    assert failed["reason"] == "Function call failed"


def test_login_event() -> None:
    assert json.loads(system.get_login_event(time=T0)) == {
        "type": "login",
        "last_login": "Never (first login)",
        "time": T0_TEXT,
    }
    again = json.loads(system.get_login_event("2026-01-01 09:00:00 AM UTC+0000", T0))
    assert again["last_login"] == "2026-01-01 09:00:00 AM UTC+0000"


@pytest.mark.parametrize(("ok", "status"), [(True, "OK"), (False, "Failed")])
def test_function_response_status(ok: bool, status: str) -> None:
    packet = json.loads(system.package_function_response(ok, "None", timestamp=T0))
    assert packet == {"status": status, "message": "None", "time": T0_TEXT}


def test_function_response_time_from_clock_or_string() -> None:
    clock = FixedClock(T0)
    assert json.loads(system.package_function_response(True, "x", clock=clock))["time"] == T0_TEXT
    assert json.loads(system.package_function_response(True, "x", "now"))["time"] == "now"


def test_summarize_message() -> None:
    packet = json.loads(system.package_summarize_message("they like tea", 7, 10, 16, T0))
    assert packet["type"] == "system_alert"
    assert packet["time"] == T0_TEXT
    message = packet["message"]
    assert "10 earlier messages (of 16 in all)" in message
    assert "(7 messages summarised)" in message
    assert message.endswith("\nthey like tea")
    assert "conversation_search" in message


def test_token_limit_warning() -> None:
    packet = json.loads(system.get_token_limit_warning(T0))
    assert set(packet) == {"type", "message", "time"}
    assert packet["type"] == "system_alert"
    assert "context window" in packet["message"]
    assert "archival memory" in packet["message"]
    assert packet["time"] == T0_TEXT


def test_same_clock_same_text() -> None:
    def messages(clock: FixedClock) -> list[str]:
        return [
            system.package_user_message("hello", clock=clock),
            system.get_heartbeat(clock=clock),
            system.get_login_event(clock=clock),
            system.package_function_response(True, "ok", clock=clock),
            system.get_token_limit_warning(clock=clock),
        ]

    first, second = messages(FixedClock()), messages(FixedClock())
    assert first == second
    times = [json.loads(m)["time"] for m in first]
    assert len(set(times)) == len(times)  # the clock moved on each call


def test_format_time_names_a_fixed_offset_once() -> None:
    moment = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-01-01 09:00:00 AM UTC+0200"
