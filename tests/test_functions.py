"""The function library: schemas derived from signatures and docstrings, registration, lookup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, Optional

import pytest

from memgpt_lab import functions
from memgpt_lab.errors import UnknownNameError
from memgpt_lab.functions import (
    DEFAULT_FUNCTIONS,
    FunctionSpec,
    generate_schema,
    register_function,
    resolve_functions,
)
from memgpt_lab.presets import Preset, create_agent_from_preset
from memgpt_lab.system import FixedClock

BUILTINS = [
    "send_message",
    "pause_heartbeats",
    "core_memory_append",
    "core_memory_replace",
    "conversation_search",
    "conversation_search_date",
    "archival_memory_insert",
    "archival_memory_search",
]


@pytest.fixture
def restore_functions() -> Iterator[None]:
    """Undo whatever a test registers in the shared library."""
    saved = dict(DEFAULT_FUNCTIONS)
    yield
    DEFAULT_FUNCTIONS.clear()
    DEFAULT_FUNCTIONS.update(saved)


def schema(name: str) -> dict[str, Any]:
    return DEFAULT_FUNCTIONS[name].schema


def test_builtin_library_names_in_order() -> None:
    assert list(DEFAULT_FUNCTIONS)[: len(BUILTINS)] == BUILTINS
    for name in BUILTINS:
        spec = DEFAULT_FUNCTIONS[name]
        assert spec.name == name == spec.schema["name"]
        assert spec.fn is getattr(functions, name)


def test_send_message_schema() -> None:
    assert schema("send_message") == {
        "name": "send_message",
        "description": "Send a message to the user. This is the only way the user sees "
        "anything you say.",
        "parameters": {
            "type": "object",
            "properties": {
                "message": {
                    "type": "string",
                    "description": "the message, in your own voice; full sentences.",
                }
            },
            "required": ["message"],
        },
    }


def test_pause_heartbeats_schema_has_no_heartbeat_flag() -> None:
    params = schema("pause_heartbeats")["parameters"]
    assert params["properties"] == {
        "minutes": {"type": "integer", "description": "how long to pause, at most 360 minutes."}
    }
    assert params["required"] == ["minutes"]


@pytest.mark.parametrize(
    ("name", "properties", "required"),
    [
        ("core_memory_append", {"name": "string", "content": "string"}, ["name", "content"]),
        (
            "core_memory_replace",
            {"name": "string", "old_content": "string", "new_content": "string"},
            ["name", "old_content", "new_content"],
        ),
        ("conversation_search", {"query": "string", "page": "integer"}, ["query"]),
        (
            "conversation_search_date",
            {"start_date": "string", "end_date": "string", "page": "integer"},
            ["start_date", "end_date"],
        ),
        ("archival_memory_insert", {"content": "string"}, ["content"]),
        ("archival_memory_search", {"query": "string", "page": "integer"}, ["query"]),
    ],
)
def test_memory_function_schemas(
    name: str, properties: dict[str, str], required: list[str]
) -> None:
    spec = schema(name)
    params = spec["parameters"]
    assert params["type"] == "object"
    expected = {**properties, "request_heartbeat": "boolean"}
    assert {k: v["type"] for k, v in params["properties"].items()} == expected
    assert list(params["properties"]) == list(expected)  # signature order, flag last
    assert params["required"] == [*required, "request_heartbeat"]
    for prop in params["properties"].values():
        assert prop["description"].strip()
    assert spec["description"] and "\n" not in spec["description"]


def test_descriptions_come_from_the_docstring() -> None:
    assert schema("core_memory_replace")["description"] == (
        "Replace text in a core memory block. An empty new_content deletes the old text."
    )
    date_props = schema("conversation_search_date")["parameters"]["properties"]
    assert date_props["end_date"]["description"] == "the last day, written YYYY-MM-DD (inclusive)."
    # a description continued on the next line is joined
    append = schema("core_memory_append")["parameters"]["properties"]["content"]
    assert append["description"] == (
        "the line to add. Keep it short; blocks have a character limit."
    )


# --- generate_schema ---------------------------------------------------------------------


def well_documented(self: Any, city: str, days: int = 3, metric: Optional[bool] = None) -> str:  # noqa: UP045
    """Look up the weather.

    A second paragraph of description.

    Args:
        city: where,
            spelled in full.
        days (int): how many days ahead.
        metric: use degrees Celsius.

    Returns:
        the forecast.
    """
    return f"{city}: sunny"


def test_generate_schema_of_a_documented_function() -> None:
    result = generate_schema(well_documented, heartbeat=False)
    assert result == {
        "name": "well_documented",
        "description": "Look up the weather. A second paragraph of description.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "where, spelled in full."},
                "days": {"type": "integer", "description": "how many days ahead."},
                "metric": {"type": "boolean", "description": "use degrees Celsius."},
            },
            "required": ["city"],
        },
    }
    renamed = generate_schema(well_documented, name="weather")
    assert renamed["name"] == "weather"
    assert renamed["parameters"]["required"] == ["city", "request_heartbeat"]
    assert renamed["parameters"]["properties"]["request_heartbeat"]["type"] == "boolean"


def test_generate_schema_types() -> None:
    def typed(self: Any, a: float, b: list[str], c: dict[str, int], d: str | None = None) -> None:
        """Types.

        Args:
            a: a.
            b: b.
            c: c.
            d: d.
        """

    props = generate_schema(typed)["parameters"]["properties"]
    assert {k: v["type"] for k, v in props.items()} == {
        "a": "number",
        "b": "array",
        "c": "object",
        "d": "string",
        "request_heartbeat": "boolean",
    }


def test_generate_schema_needs_a_docstring() -> None:
    def bare(self: Any, x: str) -> None:
        pass

    with pytest.raises(ValueError, match="function bare needs a docstring"):
        generate_schema(bare)


def test_generate_schema_needs_every_parameter_documented() -> None:
    def half(self: Any, x: str, y: str) -> None:
        """Half documented.

        Args:
            x: documented.
        """

    with pytest.raises(ValueError, match="do not describe 'y'"):
        generate_schema(half)


def test_generate_schema_needs_annotations() -> None:
    def loose(self, x) -> None:  # type: ignore[no-untyped-def]
        """Loose.

        Args:
            x: a thing.
        """

    with pytest.raises(TypeError, match="parameter 'x' needs a type annotation"):
        generate_schema(loose)


@pytest.mark.parametrize("annotation", [bytes, "int | str", Literal["a", "b"], set])
def test_generate_schema_unsupported_types(annotation: Any) -> None:
    def odd(self: Any, x: Any) -> None:
        """Odd.

        Args:
            x: a thing.
        """

    odd.__annotations__["x"] = annotation
    with pytest.raises(TypeError, match="function odd, parameter 'x'"):
        generate_schema(odd)


def test_generate_schema_rejects_star_args() -> None:
    def star(self: Any, *args: str) -> None:
        """Star.

        Args:
            args: things.
        """

    def double_star(self: Any, **kwargs: str) -> None:
        """Double star.

        Args:
            kwargs: things.
        """

    for fn in (star, double_star):
        with pytest.raises(TypeError, match=r"\*args and \*\*kwargs"):
            generate_schema(fn)


# --- register_function and resolve_functions ----------------------------------------------


def roll_dice(self: Any, sides: int) -> str:
    """Roll a die.

    Args:
        sides: how many sides the die has.
    """
    return f"rolled {sides}"


def test_register_function_plain(restore_functions: None) -> None:
    assert register_function(roll_dice) is roll_dice
    spec = DEFAULT_FUNCTIONS["roll_dice"]
    assert spec.fn is roll_dice
    assert spec.schema["parameters"]["required"] == ["sides", "request_heartbeat"]
    assert spec(None, sides=6) == "rolled 6"  # type: ignore[arg-type]


def test_register_function_decorator_with_options(restore_functions: None) -> None:
    @register_function(name="shout", heartbeat=False)
    def loud(self: Any, text: str) -> str:
        """Shout.

        Args:
            text: what to shout.
        """
        return text.upper()

    assert loud(None, "hi") == "HI"  # the function itself is returned
    assert "loud" not in DEFAULT_FUNCTIONS
    assert DEFAULT_FUNCTIONS["shout"].schema["parameters"]["required"] == ["text"]

    @register_function
    def whisper(self: Any, text: str) -> str:
        """Whisper.

        Args:
            text: what to whisper.
        """
        return text.lower()

    assert DEFAULT_FUNCTIONS["whisper"].fn is whisper


def test_register_function_checks_the_schema_at_once(restore_functions: None) -> None:
    def bad(self: Any, x: str) -> None:
        pass

    with pytest.raises(ValueError, match="docstring"):
        register_function(bad)
    assert "bad" not in DEFAULT_FUNCTIONS


def test_registered_function_is_usable_from_a_preset(restore_functions: None) -> None:
    from memgpt_lab.llm import ReplayModel, Turn

    register_function(roll_dice)
    preset = Preset.from_mapping(
        {
            "name": "dice",
            "system_prompt_text": "You roll dice.",
            "functions": ["send_message", "roll_dice"],
        }
    )
    model = ReplayModel([Turn("Rolling.", "roll_dice", {"sides": 20})])
    agent = create_agent_from_preset(preset, None, model, "I roll.", "", clock=FixedClock())
    assert [s["name"] for s in agent.function_schemas] == ["send_message", "roll_dice"]
    result = agent.step("roll a d20")
    assert not result.function_failed
    assert '"status": "OK", "message": "rolled 20"' in result.messages[-1]["content"]


def test_unregistered_function_is_unknown_to_presets() -> None:
    from memgpt_lab.errors import PresetError

    with pytest.raises(PresetError, match="unknown function"):
        Preset.from_mapping(
            {
                "name": "dice",
                "system_prompt_text": "x",
                "functions": ["send_message", "roll_dice"],
            }
        )


def test_resolve_functions_names_functions_and_specs() -> None:
    spec = FunctionSpec("custom", roll_dice, generate_schema(roll_dice, "custom"))
    resolved = resolve_functions(["send_message", roll_dice, spec])
    assert list(resolved) == ["send_message", "roll_dice", "custom"]
    assert resolved["send_message"] is DEFAULT_FUNCTIONS["send_message"]
    assert resolved["custom"] is spec
    assert "roll_dice" not in DEFAULT_FUNCTIONS  # resolving does not register
    only = resolve_functions(["mine"], available={"mine": spec})
    assert only == {"custom": spec}


def test_resolve_functions_unknown_name() -> None:
    with pytest.raises(UnknownNameError) as caught:
        resolve_functions(["send_message", "teleport"])
    assert caught.value.kind == "function"
    assert caught.value.name == "teleport"
    assert "send_message" in caught.value.available
    assert "unknown function 'teleport'; available: archival_memory_insert" in str(caught.value)
    with pytest.raises(TypeError, match="expected a function name"):
        resolve_functions([42])  # type: ignore[list-item]
