"""The MemGPT WebSocket protocol's frames: constructors, encoding, parsing, replay mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memgpt_lab.errors import ProtocolError
from memgpt_lab.ws import protocol


class TestConstructors:
    def test_agent_response(self) -> None:
        frame = protocol.agent_response("assistant_message", "hi", seq=3)
        assert frame == {
            "type": "agent_response",
            "message_type": "assistant_message",
            "message": "hi",
            "seq": 3,
        }

    @pytest.mark.parametrize("message_type", protocol.AGENT_MESSAGE_TYPES)
    def test_agent_response_accepts_every_message_type(self, message_type: str) -> None:
        assert protocol.agent_response(message_type, "x")["message_type"] == message_type

    def test_agent_response_rejects_unknown_message_type(self) -> None:
        with pytest.raises(ProtocolError, match="'user_message'"):
            protocol.agent_response("user_message", "x")

    def test_start_and_end(self) -> None:
        assert protocol.agent_response_start() == {"type": "agent_response_start"}
        assert protocol.agent_response_end(turn_id="t") == {
            "type": "agent_response_end",
            "turn_id": "t",
        }

    def test_errors(self) -> None:
        assert protocol.agent_response_error("boom") == {
            "type": "agent_response_error",
            "message": "boom",
        }
        assert protocol.server_error("bad frame") == {
            "type": "server_error",
            "message": "bad frame",
        }

    def test_command_response(self) -> None:
        assert protocol.command_response("OK: Agent initialized", agent_id="a1") == {
            "type": "command_response",
            "status": "OK: Agent initialized",
            "agent_id": "a1",
        }

    def test_user_message(self) -> None:
        assert protocol.user_message("hi") == {"type": "user_message", "message": "hi"}
        assert protocol.user_message("hi", agent_id="a1", seq=1) == {
            "type": "user_message",
            "message": "hi",
            "agent_id": "a1",
            "seq": 1,
        }

    def test_command(self) -> None:
        assert protocol.command("create_agent") == {"type": "command", "command": "create_agent"}
        assert protocol.command("create_agent", {"persona": "sam"}) == {
            "type": "command",
            "command": "create_agent",
            "config": {"persona": "sam"},
        }


class TestEventFrame:
    @pytest.mark.parametrize(
        "kind", ["internal_monologue", "assistant_message", "function_message"]
    )
    def test_maps_event_kind_to_agent_response(self, kind: str) -> None:
        assert protocol.event_frame(kind, "m", seq=1, agent_id="a") == {
            "type": "agent_response",
            "message_type": kind,
            "message": "m",
            "seq": 1,
            "agent_id": "a",
        }

    def test_user_message_has_no_frame(self) -> None:
        with pytest.raises(ProtocolError, match="no server-to-client frame"):
            protocol.event_frame("user_message", "hi")

    def test_unknown_kind(self) -> None:
        with pytest.raises(ProtocolError):
            protocol.event_frame("shout", "hi")


class TestEncodeDecode:
    def test_encode_is_compact_json_keeping_unicode(self) -> None:
        text = protocol.encode(protocol.agent_response("assistant_message", "héllo ✓", seq=1))
        assert text == (
            '{"type":"agent_response","message_type":"assistant_message",'
            '"message":"héllo ✓","seq":1}'
        )

    def test_round_trip(self) -> None:
        frame = protocol.command("create_agent", {"persona": "sam", "n": [1, 2]})
        assert protocol.decode(protocol.encode(frame)) == frame

    def test_decode_bytes(self) -> None:
        assert protocol.decode(b'{"type":"agent_response_end"}') == {"type": "agent_response_end"}

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("not json", "not valid JSON"),
            (b"\xff\xfe{", "not valid JSON"),
            ("[1, 2]", "must be a JSON object, not list"),
            ('"agent_response"', "must be a JSON object, not str"),
            ('{"message": "hi"}', "no 'type' field"),
            ('{"type": 3}', "'type' must be a string, not int"),
            ('{"type": null}', "'type' must be a string, not NoneType"),
        ],
    )
    def test_decode_errors(self, text: str | bytes, match: str) -> None:
        with pytest.raises(ProtocolError, match=match):
            protocol.decode(text)

    def test_protocol_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            protocol.decode("{")


def _call(name: str, **arguments: object) -> dict[str, str]:
    return {"name": name, "arguments": json.dumps(arguments)}


class TestEventsFromMessages:
    def test_send_message_step(self) -> None:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": '{"type": "user_message", "message": "hi"}'},
            {
                "role": "assistant",
                "content": "User said hi.",
                "function_call": _call("send_message", message="Hello!"),
            },
            {"role": "function", "name": "send_message", "content": '{"status": "OK"}'},
        ]
        assert protocol.events_from_messages(messages) == [
            ("internal_monologue", "User said hi."),
            ("assistant_message", "Hello!"),
            ("function_message", '{"status": "OK"}'),
        ]

    def test_other_function_call_is_a_running_message(self) -> None:
        messages: list[dict[str, Any]] = [
            {
                "role": "assistant",
                "content": None,
                "function_call": _call("archival_memory_search", query="cats", page=0),
            }
        ]
        assert protocol.events_from_messages(messages) == [
            ("function_message", "Running archival_memory_search({'query': 'cats', 'page': 0})")
        ]

    def test_tool_calls_in_order_and_tool_results(self) -> None:
        messages: list[dict[str, Any]] = [
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Two things."}],
                "tool_calls": [
                    {"id": "1", "type": "function", "function": _call("core_memory_append")},
                    {
                        "id": "2",
                        "type": "function",
                        "function": _call("send_message", message="ok"),
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "Success: None"},
        ]
        assert protocol.events_from_messages(messages) == [
            ("internal_monologue", "Two things."),
            ("function_message", "Running core_memory_append({})"),
            ("assistant_message", "ok"),
            ("function_message", "Success: None"),
        ]

    def test_unparseable_arguments_are_shown_raw(self) -> None:
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "function_call": {"name": "send_message", "arguments": "{oops"}}
        ]
        assert protocol.events_from_messages(messages) == [
            ("function_message", "Running send_message({oops)")
        ]

    def test_empty_content_is_skipped(self) -> None:
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": ""},
            {"role": "tool", "content": None},
        ]
        assert protocol.events_from_messages(messages) == []

    def test_unknown_role(self) -> None:
        with pytest.raises(ProtocolError, match="message 1 has role 'robot'"):
            protocol.events_from_messages([{"role": "user", "content": "x"}, {"role": "robot"}])

    def test_call_without_name(self) -> None:
        with pytest.raises(ProtocolError, match="without a name"):
            protocol.events_from_messages(
                [{"role": "assistant", "function_call": {"arguments": "{}"}}]
            )

    def test_no_role(self) -> None:
        with pytest.raises(ProtocolError, match="role None"):
            protocol.events_from_messages([{"content": "x"}])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


class TestEventEncoder:
    @given(
        kind=st.sampled_from(protocol.AGENT_MESSAGE_TYPES),
        message=json_values,
        seq=st.integers(min_value=1, max_value=2**53),
        extra=st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in protocol.EVENT_FRAME_FIELDS),
            json_values,
            max_size=3,
        ),
    )
    def test_same_text_as_encode_event_frame(
        self, kind: str, message: Any, seq: int, extra: dict[str, Any]
    ) -> None:
        encoder = protocol.event_encoder(**extra)
        # the body has no seq: each consumer's Outbox adds its own, last
        body = encoder(kind, message)
        assert body == protocol.encode(protocol.event_frame(kind, message, **extra))
        assert f'{body[:-1]},"seq":{seq}}}' == protocol.encode(
            protocol.event_frame(kind, message, **extra, seq=seq)
        )

    def test_without_extra_fields(self) -> None:
        encoder = protocol.event_encoder()
        assert encoder("assistant_message", 'say "hi"\n') == (
            '{"type":"agent_response","message_type":"assistant_message",'
            '"message":"say \\"hi\\"\\n"}'
        )

    def test_extra_may_not_set_frame_fields(self) -> None:
        with pytest.raises(ProtocolError, match="may not set message, seq"):
            protocol.event_encoder(seq=1, message="x")

    def test_kind_without_frame(self) -> None:
        encoder = protocol.event_encoder()
        with pytest.raises(ProtocolError, match="no server-to-client frame"):
            encoder("user_message", "hi")
        with pytest.raises(ProtocolError, match="'shout'"):
            encoder("shout", "hi")
