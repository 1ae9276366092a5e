"""The memgpt_lab pytest plugin: fixtures and assertion helpers, run in a generated project."""

from __future__ import annotations

import re

import pytest

import memgpt_lab.testing as lab_testing
from memgpt_lab.errors import RecordingAssertionError
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


        def test_turn(recording, mock_ws):
            assert mock_ws.recording is recording and mock_ws.id == "c1"

            async def turn():
                await mock_ws.send('{"type":"agent_response_start"}')
                await mock_ws.send('{"type":"agent_response","message_type":"assistant_message","message":"hi"}')
                await mock_ws.send('{"type":"agent_response_end"}')

            asyncio.run(turn())
            assert_sequence(recording, [
                {"type": "agent_response_start"},
                {"message_type": "assistant_message", "message": ANY},
                {"type": "agent_response_end"},
            ])
            assert [f.time for f in recording] == [0.0, 0.001, 0.002]


        def test_fresh_recording_per_test(recording):
            assert len(recording) == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_failing_assertion_shows_the_frames_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        from memgpt_lab.testing import assert_sent


        def test_missing_end(recording, mock_ws):
            asyncio.run(mock_ws.send('{"type":"agent_response_start"}'))
            mock_ws.feed('{"type":"user_message","message":"hello"}')
            assert_sent(recording, {"type": "agent_response_end"}, direction="out")
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
