"""PresetBuilder: put a preset together (prompt, functions), pick the agent's texts, create it.

The widget's parts, top to bottom: a preset to start from; the preset's name
and description; the system prompt (a named one, editable); the functions
(one checkbox each, from :data:`~memgpt_lab.functions.DEFAULT_FUNCTIONS`);
the persona and human texts (named ones, editable, with character counts);
the model (provider, model name, base URL, and the *name* of the environment
variable holding the key, never the key) with a Test connection button; the
context window and block limits; a Create button; a path with Save and Load
buttons for the preset's YAML file.

Problems (an empty persona, a block over its limit, an unknown function, no
``send_message``...) are listed in the status line, never raised as a
traceback from a button. The Python methods raise
:class:`~memgpt_lab.errors.PresetError` with the same message, after showing it.

A preset holds the prompt, the functions and (unless it is the offline
``scripted`` one) the model's settings; the persona and human belong to the
agent, so :meth:`PresetBuilder.save` does not write them. The key is never in
the form, the preset or its file: only the variable's name is.
Named texts are read once, when the builder is made, so choosing one in a
dropdown does no file I/O; the only network I/O is Test connection, which runs
in a background thread and shows its result by setting the widgets' values.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.agent import AgentConfig
from memgpt_lab.errors import LabError, LLMError, PresetError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.humans import DEFAULT_HUMAN, get_human_text, list_humans
from memgpt_lab.llm.base import ChatModel, get_model
from memgpt_lab.llm.providers import PROVIDERS, ModelSpec
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
_SCRIPTED = "scripted"
_DEFAULTS = AgentConfig()
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Seconds Test connection waits for the server.
CONNECT_TIMEOUT = 10.0
#: Model ids named in the Test connection result; the rest are counted.
_SHOWN_MODELS = 8


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
        model: the model to start with: a model string (``"ollama:llama3.1"``,
            ``"openai-compatible:m@http://host:8000/v1"``), a
            :class:`~memgpt_lab.llm.providers.ModelSpec`, or a
            :class:`~memgpt_lab.llm.ChatModel` object used as it is (listed as
            "(given)"; it is not saved in the preset). ``"scripted"`` (the
            default) means the preset's own model if it names one, else the
            offline model.
        clock: timestamps of the agents created (a FixedClock for determinism).
        interface_factory: makes the interface of each agent created (none by default).

    Attributes:
        agent: the last agent created, or None.
        agent_factory: makes a fresh agent as the last one was made (the same
            preset, settings, model and texts), or None before the first; the
            :class:`~memgpt_lab.widgets.Lab`'s Reset uses it.
        start_from: the dropdown of presets to start from (``"(blank)"``, value
            :data:`CUSTOM`, clears the form).
        prompt_choice / persona_choice / human_choice: the dropdowns of named
            texts; choosing one fills its Textarea, and editing the text away from
            the named one shows ``"(custom)"`` (value :data:`CUSTOM`).
        agent_name: the name of the agents created (``"agent"`` when empty).
        provider: the provider dropdown (``"scripted"`` or a key of
            :data:`~memgpt_lab.llm.providers.PROVIDERS`).
        model_name / base_url / api_key_env: the model's text fields; empty
            ``base_url`` and ``api_key_env`` mean the provider's defaults (shown
            as placeholders).
    """

    def __init__(
        self,
        preset: str | Preset = DEFAULT_PRESET,
        persona: str = DEFAULT_PERSONA,
        human: str = DEFAULT_HUMAN,
        *,
        model: str | ModelSpec | ChatModel = _SCRIPTED,
        clock: system.Clock = system.system_clock,
        interface_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.agent: Agent | None = None
        self.agent_factory: Callable[[], Agent] | None = None
        self._clock = clock
        self._interface_factory = interface_factory
        self._callbacks: list[Callable[[Agent], object]] = []
        self._shown_error: LabError | None = None
        self._testing: Future[list[str]] | None = None
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

        # "auto" (not 100%): a full-width box plus its margin would overflow its column
        layout = widgets.Layout(width="auto")
        style = {"description_width": "110px"}
        # (label, value) pairs throughout: a bare name among pairs shows as a tuple
        self.start_from = widgets.Dropdown(
            options=[(name, name) for name in self._presets] + [("(blank)", CUSTOM)],
            value=None,
            description="Start from",
            style=style,
        )
        self.start_from.add_class("mlab-builder-start")
        self.preset_name = widgets.Text(description="Preset name", style=style)
        self.preset_name.add_class("mlab-builder-name")
        self.agent_name = widgets.Text(
            description="Agent name", placeholder="agent", style=style, layout=layout
        )
        self.agent_name.add_class("mlab-builder-agent-name")
        self.description_text = widgets.Text(description="Description", style=style, layout=layout)
        self.prompt_choice = widgets.Dropdown(
            options=_choices(self._prompts), value=CUSTOM, description="System prompt", style=style
        )
        self.prompt_choice.add_class("mlab-builder-prompt-choice")
        self.prompt_text = widgets.Textarea(rows=6, layout=layout)
        self.prompt_text.add_class("mlab-builder-prompt")
        self._function_boxes = {
            name: widgets.Checkbox(
                value=False,
                description=name,
                indent=False,
                tooltip=spec.schema.get("description", ""),
                layout=widgets.Layout(width="auto"),
            )
            for name, spec in DEFAULT_FUNCTIONS.items()
        }
        for name, box in self._function_boxes.items():
            box.add_class(f"mlab-builder-fn-{name}")
        self.persona_choice = widgets.Dropdown(
            options=_choices(self._personas), value=CUSTOM, description="Persona", style=style
        )
        self.persona_text = widgets.Textarea(rows=5, layout=layout)
        self.persona_text.add_class("mlab-builder-persona")
        self._persona_count = widgets.HTML()
        self.human_choice = widgets.Dropdown(
            options=_choices(self._humans), value=CUSTOM, description="Human", style=style
        )
        self.human_text = widgets.Textarea(rows=4, layout=layout)
        self.human_text.add_class("mlab-builder-human")
        self._human_count = widgets.HTML()

        self._given_model: ChatModel | None = None
        if isinstance(model, str) and model.partition(":")[0] in ("replay", "cassette"):
            self._given_model = get_model(model)  # a file of answers: usable, not saveable
        elif not isinstance(model, (str, ModelSpec)):
            self._given_model = model
        provider_options = [("scripted (offline)", _SCRIPTED)] + [
            (p.label, name) for name, p in PROVIDERS.items()
        ]
        if self._given_model is not None:
            provider_options.insert(0, (f"{self._given_model.name} (given)", _GIVEN))
        self.provider = widgets.Dropdown(
            options=provider_options, value=_SCRIPTED, description="Provider", style=style
        )
        self.provider.add_class("mlab-builder-provider")
        self.model_name = widgets.Text(
            description="Model name",
            placeholder="as the server lists it",
            tooltip="the model's name on the server (Test connection lists them)",
            style=style,
        )
        self.model_name.add_class("mlab-builder-model-name")
        self.base_url = widgets.Text(description="Base URL", style=style)
        self.base_url.add_class("mlab-builder-base-url")
        self.api_key_env = widgets.Text(
            description="Key variable",
            tooltip="the NAME of the environment variable that holds the key, never the key",
            style=style,
        )
        self.api_key_env.add_class("mlab-builder-key-env")
        self._key_note = widgets.HTML(
            '<span class="mlab-count">The key stays in the environment: give the name of the '
            "variable that holds it. Presets save the name, never the key.</span>"
        )
        self._test = widgets.Button(
            description="Test connection",
            tooltip="List the server's models (GET /v1/models)",
            layout=widgets.Layout(width="auto"),
        )
        self._test.add_class("mlab-builder-test")
        self._connection = widgets.HTML()
        self._connection.add_class("mlab-builder-connection")
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

        self.start_from.observe(self._on_start, "value")
        self.provider.observe(lambda _change: self._update_model_fields(), "value")
        for watched in (self.model_name, self.base_url, self.api_key_env):
            watched.observe(lambda _change: self._clear_connection(), "value")
        self._test.on_click(lambda _b: self.test_connection())
        self.prompt_choice.observe(self._on_prompt_choice, "value")
        self.persona_choice.observe(self._on_persona_choice, "value")
        self.human_choice.observe(self._on_human_choice, "value")
        for watched in (self.persona_text, self.human_text, self.persona_limit, self.human_limit):
            watched.observe(lambda _change: self._update_counts(), "value")
        # a dropdown names the text only while the text is that text
        for text, choice, named in (
            (self.prompt_text, self.prompt_choice, self._prompts),
            (self.persona_text, self.persona_choice, self._personas),
            (self.human_text, self.human_choice, self._humans),
        ):
            text.observe(
                lambda change, choice=choice, named=named: _follow_text(
                    choice, named, change["new"]
                ),
                "value",
            )
        self._create.on_click(lambda _b: self._guard(self.create_agent))
        self._save.on_click(lambda _b: self._guard(lambda: self.save(self.path.value)))
        self._load.on_click(lambda _b: self._guard(lambda: self.load(self.path.value)))

        def title(text: str) -> widgets.HTML:
            return widgets.HTML(f'<div class="mlab-section-title">{text}</div>')

        super().__init__(
            children=[
                style_tag(),
                widgets.HBox(
                    [self.start_from, self.preset_name], layout=widgets.Layout(flex_flow="row wrap")
                ),
                self.description_text,
                self.agent_name,
                title("System prompt"),
                self.prompt_choice,
                self.prompt_text,
                title("Functions"),
                widgets.GridBox(
                    list(self._function_boxes.values()),
                    layout=widgets.Layout(
                        grid_template_columns="repeat(auto-fill, minmax(210px, 1fr))"
                    ),
                ),
                title("Persona"),
                self.persona_choice,
                self.persona_text,
                self._persona_count,
                title("Human"),
                self.human_choice,
                self.human_text,
                self._human_count,
                title("Model"),
                widgets.HBox([self.provider, self.model_name]),
                widgets.HBox([self.base_url, self.api_key_env]),
                self._key_note,
                widgets.HBox([self._test, self._connection]),
                title("Limits"),
                widgets.HBox([self.context_window]),
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
            self.start_from.value = preset
        else:
            self._show_preset(load_preset(preset))
        # The preset's model (shown above, if it names one) unless another was asked for.
        if self._given_model is not None:
            self.provider.value = _GIVEN
        elif isinstance(model, ModelSpec):
            self._show_model(model)
        elif model != _SCRIPTED:
            self._show_model(ModelSpec.parse(model))
        self._update_model_fields()
        self.persona_choice.value = persona if persona in self._personas else CUSTOM
        self.human_choice.value = human if human in self._humans else CUSTOM
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

    @property
    def connection_status(self) -> str:
        """The markup of the Test connection result (empty until a test, or after an edit)."""
        return str(self._connection.value)

    def model_spec(self) -> ModelSpec | None:
        """The model the form names, as a preset saves it; None for the offline or a given model.

        Raises:
            PresetError: the model fields have problems (all of them are listed).
        """
        problems = self._model_problems()
        if problems:
            raise self._fail("The model is not valid", problems)
        provider = str(self.provider.value)
        if provider in (_SCRIPTED, _GIVEN):
            return None
        return ModelSpec(
            provider,
            self.model_name.value.strip(),
            self.base_url.value.strip() or None,
            self.api_key_env.value.strip() or None,
        )

    def test_connection(self, *, wait: bool = False) -> Future[list[str]]:
        """Ask the form's server for its models (``GET /v1/models``), in a background thread.

        The result shows next to the button: "Connected to URL: 3 models (a, b,
        c)", or what went wrong in plain words (cannot connect, a refused key
        naming its variable...). The button is disabled until the answer
        comes. While a test runs, calling again returns the same future.

        Args:
            wait: return only once the result is shown.

        Returns:
            A future of the model ids; it holds the error instead when the test
            failed. The result is shown before the future completes.
        """
        running = self._testing
        if running is not None and not running.done():
            if wait:
                running.exception()
            return running
        future: Future[list[str]] = Future()
        provider = str(self.provider.value)
        if provider == _SCRIPTED:
            self._show_connection("The offline model needs no connection.", ok=True)
            future.set_result([])
            return future
        try:
            if provider == _GIVEN:
                model: Any = self._given_model
                if not callable(getattr(model, "list_models", None)):
                    self._show_connection(
                        "The given model is not behind a server: nothing to test.", ok=True
                    )
                    future.set_result([])
                    return future
            else:
                problems = self._model_problems()
                if problems:
                    raise PresetError(f"Cannot test the connection: {'; '.join(problems)}.")
                spec = self.model_spec()
                assert spec is not None
                model = spec.build(timeout=CONNECT_TIMEOUT)
        except (LabError, ValueError) as exc:
            self._show_connection(str(exc), ok=False)
            future.set_exception(exc)
            return future
        where = str(getattr(model, "base_url", "the server"))
        self._testing = future
        self._test.disabled = True
        self._test.description = "Testing…"
        self._show_connection(f"Connecting to {where}…", ok=True)
        thread = threading.Thread(
            target=self._run_test,
            args=(model, where, future),
            name="memgpt_lab PresetBuilder test connection",
            daemon=True,
        )
        thread.start()
        if wait:
            future.exception()
        return future

    def allow_create(self, allowed: bool, why: str = "") -> None:
        """Turn the Create agent button on or off (the Lab turns it off while a turn
        runs); ``why`` becomes its tooltip while it is off."""
        self._create.disabled = not allowed
        self._create.tooltip = None if allowed else (why or None)

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
        spec = self.model_spec()
        prompt = self.prompt_text.value.strip()
        chosen = self.prompt_choice.value
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
        if spec is not None:
            data["model"] = spec.to_mapping()
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
                # the agent's own name: named after the preset, the header read
                # "memgpt_chat · preset memgpt_chat"
                name=self.agent_name.value.strip() or "agent",
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
        interface = self._interface_factory() if self._interface_factory is not None else None
        try:
            model: str | ChatModel | None = _SCRIPTED
            if self.provider.value == _GIVEN:
                model = self._given_model
            elif preset.model is not None:
                model = preset.model.build()  # no I/O: the client connects on the first call
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
        self.agent_factory = self._factory_like(preset, config, agent.model)
        on_model = f" on {esc(preset.model)}" if preset.model is not None else ""
        self._set_status(
            f"Created agent {esc(agent.name)} from preset {esc(preset.name)} "
            f"({len(preset.functions)} functions){on_model}.",
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
        """Fill the form from a preset file (or a preset name), its model included.

        A preset without a model sets the offline one (a given model stays chosen).

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
            if preset.model is None and self.provider.value != _GIVEN:
                self._show_model(None)
        self._set_status(f"Loaded preset {esc(preset.name)}.", ok=True)
        return preset

    def close(self) -> None:
        """Close the builder and every widget in it."""
        for child in self._all_children():
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    def _factory_like(
        self, preset: Preset, config: AgentConfig, model: ChatModel
    ) -> Callable[[], Agent]:
        """A maker of fresh agents as the one just made (the texts as they were then)."""
        persona, human = self.persona_text.value, self.human_text.value
        interface_factory, clock = self._interface_factory, self._clock

        def make() -> Agent:
            interface = interface_factory() if interface_factory is not None else None
            return create_agent_from_preset(
                preset, config, model, persona, human, interface, clock=clock
            )

        return make

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
        return problems + self._model_problems()

    def _model_problems(self) -> list[str]:
        provider = str(self.provider.value)
        if provider in (_SCRIPTED, _GIVEN):
            return []
        problems = []
        url = self.base_url.value.strip()
        variable = self.api_key_env.value.strip()
        if not self.model_name.value.strip():
            problems.append(
                "give the model's name as the server knows it (Test connection lists them)"
            )
        if url and not url.startswith(("http://", "https://")):
            problems.append("the base URL must start with http:// or https://")
        elif not url and provider == "openai-compatible":
            problems.append(
                "an OpenAI-compatible server needs its base URL, e.g. http://127.0.0.1:8484/v1"
            )
        if variable and not _ENV_NAME.fullmatch(variable):
            # Never echo the text: it may be a key pasted in the wrong field.
            problems.append(
                "the key variable must be the NAME of an environment variable "
                "(letters, digits, _; e.g. OPENAI_API_KEY), never the key itself"
            )
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

    def _show_connection(self, message: str, ok: bool) -> None:
        self._connection.value = status_html(esc(message), ok)

    def _clear_connection(self) -> None:
        running = self._testing
        if running is None or running.done():  # a test under way reports when it ends
            self._connection.value = ""

    def _run_test(self, model: Any, where: str, future: Future[list[str]]) -> None:
        # The background thread: only trait updates here, never `with out:`.
        ids: list[str] = []
        error: Exception | None = None
        try:
            ids = [str(i) for i in model.list_models()]
        except Exception as exc:  # LLMError in plain words; anything else, named
            error = exc
        try:
            if error is None:
                self._show_connection(_connected(where, ids, getattr(model, "model", None)), True)
            elif isinstance(error, LLMError):
                self._show_connection(str(error), ok=False)
            else:
                self._show_connection(f"{type(error).__name__}: {error}", ok=False)
            self._end_test()
        finally:  # whatever happened to the widgets, the future completes
            if error is None:
                future.set_result(ids)
            else:
                future.set_exception(error)

    def _end_test(self) -> None:
        self._test.description = "Test connection"
        self._test.disabled = False

    def _show_model(self, spec: ModelSpec | None) -> None:
        if spec is None or spec.provider == _SCRIPTED:
            self.provider.value = _SCRIPTED
            self.model_name.value = self.base_url.value = self.api_key_env.value = ""
            return
        self.provider.value = spec.provider
        self.model_name.value = spec.model
        self.base_url.value = spec.base_url or ""
        self.api_key_env.value = spec.api_key_env or ""

    def _update_model_fields(self) -> None:
        provider = str(self.provider.value)
        profile = PROVIDERS.get(provider)
        off = profile is None  # scripted, or a given model: nothing to set
        for field in (self.model_name, self.base_url, self.api_key_env):
            field.disabled = off
        if profile is None:
            self.base_url.placeholder = self.api_key_env.placeholder = ""
        else:
            if profile.base_url:
                url_hint = profile.base_url
            elif provider == "openai-compatible":
                url_hint = "required, e.g. http://127.0.0.1:8484/v1"
            else:
                url_hint = "https://api.openai.com/v1"
            self.base_url.placeholder = url_hint
            self.api_key_env.placeholder = profile.api_key_env or "none needed"
        self._clear_connection()

    def _show_preset(self, preset: Preset) -> None:
        # A preset without a model leaves the model fields as they are (see load()).
        if preset.model is not None:
            self._show_model(preset.model)
        self.preset_name.value = preset.name
        self.description_text.value = preset.description
        self.functions = preset.functions
        name = preset.system_prompt_name
        if name is not None and name in self._prompts:
            self.prompt_choice.value = name
        else:
            self.prompt_choice.value = CUSTOM
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
        with self.hold_sync():
            if preset is not None:
                self._show_preset(preset)
            elif change["new"] == CUSTOM:  # "(blank)": a preset from nothing
                self.preset_name.value = self.description_text.value = ""
                self.prompt_choice.value = CUSTOM
                self.prompt_text.value = ""
                self.functions = ["send_message"]

    def _on_prompt_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.prompt_text.value = self._prompts[change["new"]]

    def _on_persona_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.persona_text.value = self._personas[change["new"]]

    def _on_human_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM:
            self.human_text.value = self._humans[change["new"]]


def _follow_text(choice: widgets.Dropdown, named: dict[str, str], text: str) -> None:
    """Show "(custom)" in ``choice`` once ``text`` is no longer the chosen named text."""
    if choice.value != CUSTOM and named.get(choice.value) != text:
        choice.value = CUSTOM


def _connected(where: str, ids: list[str], wanted: str | None) -> str:
    """The Test connection success line: the server, its models, whether ``wanted`` is one."""
    shown = ", ".join(ids[:_SHOWN_MODELS])
    if len(ids) > _SHOWN_MODELS:
        shown += f", … {len(ids) - _SHOWN_MODELS} more"
    count = f"{len(ids)} model{'' if len(ids) == 1 else 's'}"
    line = f"Connected to {where}: {count} ({shown})" if ids else f"Connected to {where}: no models"
    if wanted and ids and wanted not in ids:
        line += f"; {wanted!r} is not among them"
    return line + "."
