"""The memgpt_lab pytest plugin: fixtures and assertion helpers, run in a generated project."""

from __future__ import annotations

import re

import pytest

import memgpt_lab.testing as lab_testing
from memgpt_lab.errors import RecordingAssertionError
from memgpt_lab.llm.cassette import CASSETTE_MODE_ENV
from memgpt_lab.recorder import ANY, Recording, matches

pytest_plugins = ["pytester"]


def test_reexports_the_matching_and_errors() -> None:
    assert lab_testing.ANY is ANY and lab_testing.matches is matches
    assert lab_testing.Recording is Recording
    assert lab_testing.RecordingAssertionError is RecordingAssertionError
    assert sorted(lab_testing.__all__) == lab_testing.__all__
    for name in lab_testing.__all__:
        assert hasattr(lab_testing, name), name


def test_module_functions_delegate_to_the_recording() -> None:
    rec = lab_testing.deterministic_recording()
    rec.record("out", '{"type":"agent_response_start"}')
    rec.record("out", '{"type":"agent_response_end"}')
    assert lab_testing.assert_sent(rec, {"type": "agent_response_end"}).seq == 2
    lab_testing.assert_not_sent(rec, {"type": "server_error"})
    assert len(lab_testing.assert_sequence(rec, [{"type": ANY}, {"type": ANY}])) == 2
    lab_testing.assert_frames(rec, [{"type": "agent_response_start"}, re.compile("_end")])
    with pytest.raises(RecordingAssertionError):
        lab_testing.assert_frames(rec, [{"type": "agent_response_start"}])


def test_deterministic_recording_clocks() -> None:
    rec = lab_testing.deterministic_recording()
    first, second = rec.record("out", "a"), rec.record("out", "b")
    assert (first.time, second.time) == (0.0, 0.001)
    assert first.wall_time == lab_testing.WALL_CLOCK_START


def test_fixtures_in_a_generated_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        from memgpt_lab.testing import ANY, assert_sequence


        def test_turn(ws_recording, mock_websocket):
            recording = ws_recording
            assert mock_websocket.recording is recording and mock_websocket.id == "c1"

            async def turn():
                await mock_websocket.send('{"type":"agent_response_start"}')
                await mock_websocket.send('{"type":"agent_response","message_type":"assistant_message","message":"hi"}')
                await mock_websocket.send('{"type":"agent_response_end"}')

            asyncio.run(turn())
            assert_sequence(recording, [
                {"type": "agent_response_start"},
                {"message_type": "assistant_message", "message": ANY},
                {"type": "agent_response_end"},
            ])
            assert [f.time for f in recording] == [0.0, 0.001, 0.002]


        def test_fresh_recording_per_test(ws_recording):
            assert len(ws_recording) == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_old_fixture_names_still_work_and_warn(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_old_names(recording, mock_ws, ws_recording, mock_websocket):
            assert recording is ws_recording and mock_ws is mock_websocket
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*DeprecationWarning: the 'recording' fixture is now 'ws_recording'*",
            "*DeprecationWarning: the 'mock_ws' fixture is now 'mock_websocket'*",
        ]
    )
    strict = pytester.runpytest("-p", "no:cacheprovider", "-W", "error::DeprecationWarning")
    strict.assert_outcomes(errors=1)


def test_the_fixtures_have_their_names(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--fixtures")
    for name in ("ws_recording", "mock_websocket", "ws_snapshot", "cassette"):
        result.stdout.fnmatch_lines([f"{name}*"])


def test_a_failing_assertion_shows_the_frames_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        from memgpt_lab.testing import assert_sent


        def test_missing_end(ws_recording, mock_websocket):
            asyncio.run(mock_websocket.send('{"type":"agent_response_start"}'))
            mock_websocket.feed('{"type":"user_message","message":"hello"}')
            assert_sent(ws_recording, {"type": "agent_response_end"}, direction="out")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            """*RecordingAssertionError: no 'out' frame matched {"type": "agent_response_end"}""",
            "*Frames seen (1):",
            "*seq        ms dir type*message_type*size preview",
            "*1       0.0 out agent_response_start*31",
        ]
    )
    # Only the 'out' frames are listed, and the helper's own frames are hidden.
    error_lines = [line for line in result.outlines if line.startswith("E ")]
    assert error_lines and not any("user_message" in line for line in error_lines)
    assert "def assert_sent" not in result.stdout.str()


# --- the cassette fixture --------------------------------------------------------------

CASSETTE_TESTS = """
from datetime import datetime, timezone

import pytest

from memgpt_lab.llm.scripted import ScriptedModel
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
from memgpt_lab.system import FixedClock


class Exploding:
    name = "exploding"

    def chat(self, messages, functions):
        raise AssertionError("the model was called")


def talk(cassette, text, year):
    model = cassette.wrap(Exploding() if cassette.mode == "none" else ScriptedModel())
    clock = FixedClock(datetime(year, 1, 1, tzinfo=timezone.utc))
    agent = create_agent_from_preset(
        DEFAULT_PRESET, None, model, "Name: Sam", "Name: unknown", clock=clock
    )
    replies = agent.turn(text).replies
    assert replies
    if cassette.mode == "none":
        assert cassette.played > 0 and cassette.recorded == 0
    else:
        assert cassette.recorded > 0 and cassette.played == 0
    return replies


def test_greeting(cassette):
    talk(cassette, "MESSAGE", YEAR)


@pytest.mark.parametrize("who", ["Ana Lee", "Bo/Z"])
def test_names(cassette, who):
    talk(cassette, f"my name is {who}", YEAR)


class TestGrouped:
    def test_in_a_class(self, cassette):
        talk(cassette, "How are you?", YEAR)
"""


def cassette_tests(message: str = "Hello?", year: int = 2026) -> str:
    return CASSETTE_TESTS.replace("MESSAGE", message).replace("YEAR", str(year))


@pytest.fixture
def no_cassette_mode_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CASSETTE_MODE_ENV, raising=False)


@pytest.mark.usefixtures("no_cassette_mode_env")
def test_the_cassette_fixture_records_then_replays(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm_calls=cassette_tests())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    folder = pytester.path / "cassettes" / "test_llm_calls"
    assert sorted(p.name for p in folder.iterdir()) == [
        "TestGrouped.test_in_a_class.jsonl",
        "test_greeting.jsonl",
        "test_names[Ana_Lee].jsonl",
        "test_names[Bo_Z].jsonl",
    ]
    recorded = (folder / "test_greeting.jsonl").read_bytes()

    # replay only, on another clock: the model is never called and nothing is written
    pytester.makepyfile(test_llm_calls=cassette_tests(year=2031))
    result = pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "none")
    result.assert_outcomes(passed=4)
    assert (folder / "test_greeting.jsonl").read_bytes() == recorded


@pytest.mark.usefixtures("no_cassette_mode_env")
def test_a_changed_request_fails_with_a_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm_calls=cassette_tests())
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=4)

    pytester.makepyfile(test_llm_calls=cassette_tests("Goodbye?"))
    result = pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "none")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteMismatchError: cassette *test_greeting.jsonl (mode 'none') has no recording*",
            "*Closest recorded request: line 2, whose first 1 of 2 messages are the same*",
            '*-    "message": "Hello?",',
            '*+    "message": "Goodbye?",',
            '*mode="new_episodes"*',
        ]
    )

    # new_episodes records the new request beside the old one; then both replay
    pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "new_episodes")
    result = pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "none")
    result.assert_outcomes(passed=4)


def test_the_cassette_mode_comes_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_llm_calls=cassette_tests())
    monkeypatch.setenv(CASSETTE_MODE_ENV, "none")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*the file does not exist*"])
    # the option wins over the environment
    pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "once").assert_outcomes(
        passed=4
    )


def test_the_cassette_mode_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--help")
    result.stdout.fnmatch_lines(["memgpt_lab*", "*--cassette-mode={once,none,new_episodes,all}*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--cassette-mode", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'sometimes'*"])


@pytest.mark.parametrize(
    ("test_name", "file_name"),
    [
        ("test_x", "test_x"),
        ("test_x[a b]", "test_x[a_b]"),
        ("test_x[../etc/passwd]", "test_x[.._etc_passwd]"),
        ("TestA::test_y[1-2]", "TestA.test_y[1-2]"),
        ("test_ü[é]", "test_ü[é]"),
    ],
)
def test_cassette_file_names(test_name: str, file_name: str) -> None:
    assert lab_testing.cassette_file_name(test_name) == file_name


def test_long_cassette_file_names_stay_distinct() -> None:
    first = lab_testing.cassette_file_name("test_x[" + "a" * 300 + "]")
    second = lab_testing.cassette_file_name("test_x[" + "a" * 299 + "b]")
    assert len(first) <= 120 and len(second) <= 120 and first != second
