"""PresetBuilder: put a preset together (prompt, functions), pick the agent's texts, create it.

The widget's parts, top to bottom: a preset to start from; the preset's name
and description; the system prompt (a named one, editable); the functions
(one checkbox each, from :data:`~memgpt_lab.functions.DEFAULT_FUNCTIONS`);
the persona and human texts (named ones, editable, with character counts);
the model and the context window; a Create button; a path with Save and Load
buttons for the preset's YAML file.

Problems (an empty persona, a block over its limit, an unknown function, no
``send_message``...) are listed in the status line, never raised as a
traceback from a button. The Python methods raise
:class:`~memgpt_lab.errors.PresetError` with the same message, after showing it.

A preset holds the prompt and the functions; the persona, human and model
belong to the agent, so :meth:`PresetBuilder.save` does not write them.
Named texts are read once, when the builder is made, so choosing one in a
dropdown does no file I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.agent import AgentConfig
from memgpt_lab.errors import LabError, PresetError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.humans import DEFAULT_HUMAN, get_human_text, list_humans
from memgpt_lab.llm.base import ChatModel, list_models
from memgpt_lab.personas import DEFAULT_PERSONA, get_persona_text, list_personas
from memgpt_lab.presets import (
    DEFAULT_PRESET,
    Preset,
    create_agent_from_preset,
    get_system_prompt,
    list_presets,
    list_system_prompts,
    load_preset,
    save_preset,
)
from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent

__all__ = ["CUSTOM", "PresetBuilder"]

#: The dropdown value meaning "my own text" (the Textarea's, not a named one).
CUSTOM = ""
_GIVEN = "\x00given"  # the model passed to the constructor
_DEFAULTS = AgentConfig()


def _texts(names: Iterable[str], read: Callable[[str], str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = read(name)
        except (LabError, OSError):  # an unreadable user file: leave it out of the list
            continue
    return out


def _choices(texts: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, name) for name in texts] + [("(custom)", CUSTOM)]


class PresetBuilder(widgets.VBox):
    """Build a preset and an agent from it, in a form.

    Args:
        preset: the preset to start from (a name, a path or a :class:`Preset`).
        persona / human: names of the texts to start from.
        model: a model name (``"scripted"``, offline, the default) or a
            :class:`~memgpt_lab.llm.ChatModel` used for every agent created.
        clock: timestamps of the agents created (a FixedClock for determinism).
        interface_factory: makes the interface of each agent created (none by default).

    Attributes:
        agent: the last agent created, or None.
    """

    def __init__(
        self,
        preset: str | Preset = DEFAULT_PRESET,
        persona: str = DEFAULT_PERSONA,
        human: str = DEFAULT_HUMAN,
        *,
        model: str | ChatModel = "scripted",
        clock: system.Clock = system.system_clock,
        interface_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.agent: Agent | None = None
        self._clock = clock
        self._interface_factory = interface_factory
        self._callbacks: list[Callable[[Agent], object]] = []
        self._shown_error: LabError | None = None
        self._unknown_functions: list[str] = []
        self._presets: dict[str, Preset] = {}
        for name in list_presets():
            try:
                self._presets[name] = load_preset(name)
            except LabError:  # a broken user preset: leave it out of the list
                continue
        self._prompts = _texts(list_system_prompts(), get_system_prompt)
        self._personas = _texts(list_personas(), get_persona_text)
        self._humans = _texts(list_humans(), get_human_text)

        layout = widgets.Layout(width="100%")
        style = {"description_width": "110px"}
        self._start = widgets.Dropdown(
            options=[*self._presets, ("(none)", CUSTOM)],
            value=None,
            description="Start from",
            style=style,
        )
        self._start.add_class("mlab-builder-start")
        self.preset_name = widgets.Text(description="Preset name", style=style)
        self.preset_name.add_class("mlab-builder-name")
        self.description_text = widgets.Text(description="Description", style=style, layout=layout)
        self._prompt_choice = widgets.Dropdown(
            options=_choices(self._prompts), value=CUSTOM, description="System prompt", style=style
        )
        self._prompt_choice.add_class("mlab-builder-prompt-choice")
        self.prompt_text = widgets.Textarea(rows=6, layout=layout)
        self.prompt_text.add_class("mlab-builder-prompt")
        self._function_boxes = {
            name: widgets.Checkbox(
                value=False,
                description=name,
                indent=False,
                tooltip=spec.schema.get("description", ""),
                layout=widgets.Layout(width="230px"),
            )
            for name, spec in DEFAULT_FUNCTIONS.items()
        }
        for name, box in self._function_boxes.items():
            box.add_class(f"mlab-builder-fn-{name}")
        self._persona_choice = widgets.Dropdown(
            options=_choices(self._personas), value=CUSTOM, description="Persona", style=style
        )
        self.persona_text = widgets.Textarea(rows=5, layout=layout)
        self.persona_text.add_class("mlab-builder-persona")
        self._persona_count = widgets.HTML()
        self._human_choice = widgets.Dropdown(
            options=_choices(self._humans), value=CUSTOM, description="Human", style=style
        )
        self.human_text = widgets.Textarea(rows=4, layout=layout)
        self.human_text.add_class("mlab-builder-human")
        self._human_count = widgets.HTML()

        # Room for endpoints later: list_models() grows, the dropdown follows.
        self._given_model = None if isinstance(model, str) else model
        model_options = [(name, name) for name in list_models()]
        if self._given_model is not None:
            model_options.insert(0, (f"{self._given_model.name} (given)", _GIVEN))
        self.model = widgets.Dropdown(
            options=model_options,
            value=_GIVEN if self._given_model is not None else model,
            description="Model",
            style=style,
        )
        self.model.add_class("mlab-builder-model")
        self.context_window = widgets.IntText(
            value=_DEFAULTS.context_window, description="Context window", style=style
        )
        self.context_window.add_class("mlab-builder-context-window")
        self.persona_limit = widgets.IntText(
            value=_DEFAULTS.persona_char_limit, description="Persona limit", style=style
        )
        self.human_limit = widgets.IntText(
            value=_DEFAULTS.human_char_limit, description="Human limit", style=style
        )
        self._create = widgets.Button(description="Create agent", button_style="primary")
        self._create.add_class("mlab-builder-create")
        self.path = widgets.Text(placeholder="my_preset.yaml", description="File", style=style)
        self.path.add_class("mlab-builder-path")
        self._save = widgets.Button(description="Save", layout=widgets.Layout(width="auto"))
        self._save.add_class("mlab-builder-save")
        self._load = widgets.Button(description="Load", layout=widgets.Layout(width="auto"))
        self._load.add_class("mlab-builder-load")
        self._status = widgets.HTML()
        self._status.add_class("mlab-builder-status")

        self._start.observe(self._on_start, "value")
        self._prompt_choice.observe(self._on_prompt_choice, "value")
        self._persona_choice.observe(self._on_persona_choice, "value")
        self._human_choice.observe(self._on_human_choice, "value")
        for watched in (self.persona_text, self.human_text, self.persona_limit, self.human_limit):
            watched.observe(lambda _change: self._update_counts(), "value")
        self._create.on_click(lambda _b: self._guard(self.create_agent))
        self._save.on_click(lambda _b: self._guard(lambda: self.save(self.path.value)))
        self._load.on_click(lambda _b: self._guard(lambda: self.load(self.path.value)))

        def title(text: str) -> widgets.HTML:
            return widgets.HTML(f'<div class="mlab-section-title">{text}</div>')

        super().__init__(
            children=[
                style_tag(),
                widgets.HBox([self._start, self.preset_name]),
                self.description_text,
                title("System prompt"),
                self._prompt_choice,
                self.prompt_text,
                title("Functions"),
                widgets.GridBox(
                    list(self._function_boxes.values()),
                    layout=widgets.Layout(grid_template_columns="repeat(3, 240px)"),
                ),
                title("Persona"),
                self._persona_choice,
                self.persona_text,
                self._persona_count,
                title("Human"),
                self._human_choice,
                self.human_text,
                self._human_count,
                title("Model and limits"),
                widgets.HBox([self.model, self.context_window]),
                widgets.HBox([self.persona_limit, self.human_limit]),
                widgets.HBox([self._create]),
                widgets.HBox([self.path, self._save, self._load]),
                self._status,
            ]
        )
        self.add_class("mlab-preset-builder")

        if isinstance(preset, Preset):
            self._show_preset(preset)
        elif preset in self._presets:
            self._start.value = preset
        else:
            self._show_preset(load_preset(preset))
        self._persona_choice.value = persona if persona in self._personas else CUSTOM
        self._human_choice.value = human if human in self._humans else CUSTOM
        self._update_counts()

    def __repr__(self) -> str:
        return f"<PresetBuilder preset={self.preset_name.value!r}>"

    # -- public API ---------------------------------------------------------

    @property
    def functions(self) -> list[str]:
        """The ticked functions, in library order (plus any unknown names that were set)."""
        ticked = [name for name, box in self._function_boxes.items() if box.value]
        return ticked + self._unknown_functions

    @functions.setter
    def functions(self, names: Iterable[str]) -> None:
        names = list(names)
        with self.hold_sync():
            for name, box in self._function_boxes.items():
                box.value = name in names
        # Kept (not dropped) so that validation can name them.
        self._unknown_functions = [n for n in names if n not in self._function_boxes]

    @property
    def status(self) -> str:
        """The status line's markup: the last problem or success."""
        return str(self._status.value)

    def on_create(self, callback: Callable[[Agent], object]) -> None:
        """Call ``callback(agent)`` whenever an agent is created."""
        self._callbacks.append(callback)

    def build_preset(self) -> Preset:
        """The preset the form describes.

        Raises:
            PresetError: the form has problems (all of them are listed).
        """
        problems = self._preset_problems()
        if problems:
            raise self._fail("The preset is not valid", problems)
        prompt = self.prompt_text.value.strip()
        chosen = self._prompt_choice.value
        data: dict[str, Any] = {
            "name": self.preset_name.value.strip(),
            "description": self.description_text.value.strip(),
            "functions": self.functions,
        }
        # A named prompt left as it is stays a reference; an edited one is saved inline.
        if chosen != CUSTOM and prompt == self._prompts.get(chosen, "").strip():
            data["system_prompt"] = chosen
        else:
            data["system_prompt_text"] = prompt
        try:
            return Preset.from_mapping(data, "from the builder")
        except PresetError as exc:
            raise self._fail("The preset is not valid", [str(exc)]) from None

    def agent_config(self) -> AgentConfig:
        """The agent settings of the form.

        Raises:
            PresetError: a setting out of range.
        """
        try:
            return AgentConfig(
                name=self.preset_name.value.strip() or "agent",
                context_window=int(self.context_window.value),
                persona_char_limit=int(self.persona_limit.value),
                human_char_limit=int(self.human_limit.value),
            )
        except ValueError as exc:
            raise self._fail("The settings are not valid", [str(exc)]) from None

    def create_agent(self) -> Agent:
        """Create an agent from the form; it becomes :attr:`agent` and ``on_create`` hooks run.

        Raises:
            PresetError: the form has problems (all of them are listed).
        """
        problems = self._preset_problems() + self._agent_problems()
        if problems:
            raise self._fail("Cannot create the agent", problems)
        preset = self.build_preset()
        config = self.agent_config()
        model: str | ChatModel | None = str(self.model.value)
        if self.model.value == _GIVEN:
            model = self._given_model
        interface = self._interface_factory() if self._interface_factory is not None else None
        try:
            agent = create_agent_from_preset(
                preset,
                config,
                model,
                self.persona_text.value,
                self.human_text.value,
                interface,
                clock=self._clock,
            )
        except (LabError, ValueError) as exc:
            raise self._fail("Cannot create the agent", [str(exc)]) from None
        self.agent = agent
        self._set_status(
            f"Created agent {esc(agent.name)} from preset {esc(preset.name)} "
            f"({len(preset.functions)} functions).",
            ok=True,
        )
        for callback in list(self._callbacks):
            callback(agent)
        return agent

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the preset as YAML to ``path`` (a file, or a directory for ``<name>.yaml``).

        Raises:
            PresetError: the form has problems, or there is no path.
            OSError: the file cannot be written.
        """
        if not os.fspath(path).strip():
            raise self._fail("Cannot save", ["give a file path to save the preset to"])
        preset = self.build_preset()
        try:
            target = save_preset(preset, path)
        except OSError as exc:
            raise self._fail("Cannot save", [str(exc)]) from None
        self._set_status(f"Saved preset {esc(preset.name)} as {esc(target.name)}.", ok=True)
        return target

    def load(self, path: str | os.PathLike[str]) -> Preset:
        """Fill the form from a preset file (or a preset name).

        Raises:
            PresetError: no path, or the file does not load or validate.
        """
        if not os.fspath(path).strip():
            raise self._fail("Cannot load", ["give the path of a preset file to load"])
        try:
            preset = load_preset(path)
        except LabError as exc:
            raise self._fail("Cannot load", [str(exc)]) from None
        with self.hold_sync():
            self._show_preset(preset)
        self._set_status(f"Loaded preset {esc(preset.name)}.", ok=True)
        return preset

    def close(self) -> None:
        """Close the builder and every widget in it."""
        for child in self._all_children():
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    def _all_children(self) -> list[widgets.Widget]:
        out: list[widgets.Widget] = []
        stack = list(self.children)
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(getattr(child, "children", ()))
        return out

    def _preset_problems(self) -> list[str]:
        problems = []
        if not self.preset_name.value.strip():
            problems.append("give the preset a name")
        if not self.prompt_text.value.strip():
            problems.append("the system prompt is empty: choose one or write one")
        if self._unknown_functions:
            problems.append(
                f"unknown function(s) {', '.join(self._unknown_functions)}; "
                f"available: {', '.join(self._function_boxes)}"
            )
        if "send_message" not in self.functions:
            problems.append("tick send_message: without it the agent cannot speak to the user")
        return problems

    def _agent_problems(self) -> list[str]:
        problems = []
        for block, text, limit in (
            ("persona", self.persona_text.value, self.persona_limit.value),
            ("human", self.human_text.value, self.human_limit.value),
        ):
            if block == "persona" and not text.strip():
                problems.append("the persona is empty: choose one or write who the agent is")
            if len(text) > limit:
                problems.append(
                    f"the {block} text is {len(text)} characters, over its limit of {limit}: "
                    f"shorten it or raise the {block} limit"
                )
        return problems

    def _fail(self, what: str, problems: list[str]) -> PresetError:
        message = f"{what}: {'; '.join(problems)}."
        self._set_status(esc(message), ok=False)
        self._shown_error = PresetError(message)
        return self._shown_error

    def _guard(self, action: Callable[[], object]) -> None:
        # Buttons show problems in the status line; they never raise into the notebook.
        try:
            action()
        except LabError as exc:
            if exc is not self._shown_error:  # _fail showed its own; others (a hook's) not yet
                self._set_status(esc(str(exc)), ok=False)
        except Exception as exc:  # a button must never raise into the notebook
            self._set_status(esc(f"{type(exc).__name__}: {exc}"), ok=False)

    def _set_status(self, markup: str, ok: bool) -> None:
        self._status.value = status_html(markup, ok)

    def _show_preset(self, preset: Preset) -> None:
        self.preset_name.value = preset.name
        self.description_text.value = preset.description
        self.functions = preset.functions
        name = preset.system_prompt_name
        if name is not None and name in self._prompts:
            self._prompt_choice.value = name
        else:
            self._prompt_choice.value = CUSTOM
        self.prompt_text.value = preset.system_prompt

    def _update_counts(self) -> None:
        for text, limit, out in (
            (self.persona_text.value, self.persona_limit.value, self._persona_count),
            (self.human_text.value, self.human_limit.value, self._human_count),
        ):
            over = len(text) > limit
            css = "mlab-count mlab-count-over" if over else "mlab-count"
            out.value = f'<span class="{css}">{len(text)} / {limit} characters</span>'

    def _on_start(self, change: dict[str, Any]) -> None:
        preset = self._presets.get(change["new"])
        if preset is not None:
            with self.hold_sync():
                self._show_preset(preset)

    def _on_prompt_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.prompt_text.value = self._prompts[change["new"]]

    def _on_persona_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.persona_text.value = self._personas[change["new"]]

    def _on_human_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.human_text.value = self._humans[change["new"]]
