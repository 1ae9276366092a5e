"""Sweep: every combination of presets, models, personas and humans over conversations.

The runs go to any :class:`concurrent.futures.Executor`; this module schedules
nothing itself. Finished runs are written to ``results_dir`` by the process that
called :meth:`Sweep.run` (workers need no shared disk), each atomically and as
soon as it arrives, so a sweep killed at any moment keeps every run it finished
and a second :meth:`Sweep.run` does only the rest.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import LabError, PresetError, UnknownNameError
from memgpt_lab.sweep.conversations import (
    Conversation,
    ConversationError,
    load_conversations,
    parse_conversations,
)
from memgpt_lab.sweep.result import SweepResult
from memgpt_lab.sweep.runner import RunSpec, execute_run, run_record, unrun_turns

__all__ = [
    "TRAFFIC_FORMATS",
    "ResultStore",
    "Sweep",
    "SweepError",
    "default_executor",
    "load_sweep",
    "offline_model",
]

_SWEEP_FIELDS = ("conversations", "presets", "models", "personas", "humans", "repeats", "results")


class SweepError(LabError, ValueError):
    """A sweep that cannot run as asked: an empty axis, a bad setting, an unusable
    ``results_dir``, or a sweep file that does not validate (the message names it)."""


def _write_jsonl(frames: list[dict[str, Any]], path: Path) -> None:
    # ensure_ascii: a lone surrogate a conversation carried must not make the file unwritable
    path.write_text("".join(json.dumps(frame) + "\n" for frame in frames), encoding="utf-8")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _write_har(frames: list[dict[str, Any]], path: Path) -> None:
    from memgpt_lab.recorder import Frame, Recording

    recording = Recording()
    for frame in frames:
        recording.append(Frame.from_dict(frame))
    recording.to_har(path)


def _read_har(path: Path) -> list[dict[str, Any]]:
    from memgpt_lab.recorder import Recording

    return [frame.to_dict() for frame in Recording.from_har(path)]


#: How a run's traffic is saved in ``results_dir``: format -> (suffix, writer, reader).
TRAFFIC_FORMATS: dict[
    str,
    tuple[str, Callable[[list[dict[str, Any]], Path], None], Callable[[Path], list[Any]]],
] = {
    "jsonl": (".jsonl", _write_jsonl, _read_jsonl),
    "har": (".har", _write_har, _read_har),  # opens in a browser's DevTools, or Recording.load
}


class ResultStore:
    """Finished runs on disk: ``runs/<run_id>.json`` (the run without its traffic) and
    ``traffic/<run_id>.jsonl`` (its frames, :meth:`Recording.to_jsonl`'s format).

    Both are written to a temporary name and renamed, traffic first, so a run file
    exists only for a run whose traffic is complete: that file is what "finished" means.
    """

    def __init__(self, directory: str | os.PathLike[str], traffic_format: str = "jsonl") -> None:
        if traffic_format not in TRAFFIC_FORMATS:
            raise SweepError(
                f"unknown traffic format {traffic_format!r}; known: {', '.join(TRAFFIC_FORMATS)}"
            )
        self.directory = Path(directory)
        self.traffic_format = traffic_format
        self.suffix, self._write, self._read = TRAFFIC_FORMATS[traffic_format]
        try:
            (self.directory / "runs").mkdir(parents=True, exist_ok=True)
            (self.directory / "traffic").mkdir(exist_ok=True)
        except OSError as exc:
            raise SweepError(f"cannot use results_dir {self.directory}: {exc}") from None

    def run_path(self, run_id: str) -> Path:
        return self.directory / "runs" / f"{run_id}.json"

    def traffic_path(self, run_id: str) -> Path:
        return self.directory / "traffic" / f"{run_id}{self.suffix}"

    def finished(self) -> set[str]:
        """The ids of the runs stored."""
        return {path.stem for path in (self.directory / "runs").glob("*.json")}

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The stored run (its traffic read back), or None if it is not stored."""
        path = self.run_path(run_id)
        try:
            run = _json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:  # not ours, or edited by hand: run it again
            raise SweepError(f"{path} is not a run this sweep wrote ({exc}); delete it") from None
        traffic = self.traffic_path(run_id)
        run["traffic"] = self._read(traffic) if traffic.exists() else []
        return run

    def save(self, run: dict[str, Any]) -> None:
        """Store a finished run, traffic first; each file atomically."""
        run_id = run["run_id"]
        traffic = self.traffic_path(run_id)
        temporary = traffic.with_name(traffic.name + ".part")
        self._write(run["traffic"], temporary)
        os.replace(temporary, traffic)
        body = {k: v for k, v in run.items() if k != "traffic"}
        path = self.run_path(run_id)
        temporary = path.with_name(path.name + ".part")
        temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)


def offline_model(model: str) -> bool:
    """Whether a model string runs on this machine's CPU (scripted, replayed, a cassette):
    processes suit it. Any other model waits on a server: threads suit it."""
    return model == "scripted" or model.startswith(("replay:", "cassette:"))


def default_executor(
    models: Iterable[str], workers: int | None = None, runs: int | None = None
) -> concurrent.futures.Executor:
    """The executor :meth:`Sweep.run` uses when given none: processes when every model
    is offline (one per CPU by default), threads when any model is remote (8 by
    default: remote runs wait on the network, and the provider's rate limit is the
    bound, not this machine); never more than ``runs`` workers."""
    cap = runs if runs else None
    if all(offline_model(m) for m in models):
        methods = multiprocessing.get_all_start_methods()
        # forkserver (spawn elsewhere): forking a process that runs threads (a Jupyter
        # kernel, a SyncWebSocketInterface) can deadlock the child
        method = "forkserver" if "forkserver" in methods else "spawn"
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers or os.cpu_count() or 1, cap or 1 << 16),
            mp_context=multiprocessing.get_context(method),
        )
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=min(workers or 8, cap or 1 << 16), thread_name_prefix="memgpt_lab-sweep"
    )


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(
        json.dumps(parts, sort_keys=True).encode("ascii"), digest_size=8
    ).hexdigest()


def _is_path(preset: str) -> bool:
    """Whether a preset is named by its file (as :func:`~memgpt_lab.presets.load_preset` decides)."""
    return preset.endswith((".yaml", ".yml")) or os.sep in preset or "/" in preset


def _resolve_preset(preset: str, base: Path) -> tuple[str | None, str]:
    """A preset's file (resolved against ``base``; None for a name) and a digest of its
    content: its fields and system prompt."""
    from memgpt_lab.presets import load_preset

    path = os.path.normpath(base / preset) if _is_path(preset) else None
    loaded = load_preset(path or preset)
    return path, _digest(loaded.to_mapping(), loaded.system_prompt)


def _resolve_model(model: str, base: Path) -> tuple[str | None, str]:
    """A model string checked without connecting anywhere: the string to build (a
    ``replay:`` / ``cassette:`` path resolved against ``base``; None: the model as
    given) and a digest of what it reads (the file's content; else the string).

    Raises:
        SweepError: a model string that does not parse, an unknown provider, a
            replay or cassette file that cannot be read.
    """
    from memgpt_lab.llm.providers import parse_model_string

    if model == "scripted":
        return None, _digest(model)
    kind, sep, rest = model.partition(":")
    if sep and kind in ("replay", "cassette"):
        if not rest.strip():
            raise SweepError(f"model {model!r} names no file after '{kind}:'")
        path = Path(os.path.normpath(base / rest))
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SweepError(
                f"model {model!r}: cannot read {path}: {exc.strerror or exc}"
            ) from None
        return f"{kind}:{path}", _digest(kind, hashlib.blake2b(content).hexdigest())
    try:
        parse_model_string(model)
    except (ValueError, UnknownNameError) as exc:
        raise SweepError(f"model {model!r}: {exc}") from None
    return None, _digest(model)


def _names(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names:
        raise SweepError(f"{what} is empty; give at least one")
    for name in names:
        if not isinstance(name, str) or not name:
            raise SweepError(
                f"{what} must be names (text), not {name!r}: runs travel to other processes "
                "and machines as plain data"
            )
    if len(set(names)) != len(names):
        raise SweepError(f"{what} lists a name twice: {', '.join(names)}")
    return names


def _conversations(
    value: str | os.PathLike[str] | Conversation | Iterable[Conversation | Mapping[str, Any]],
    base: Path | None = None,
) -> list[Conversation]:
    if isinstance(value, (str, os.PathLike)):
        return load_conversations(value if base is None else base / value)
    if isinstance(value, Conversation):
        return [value]
    items = list(value)
    if items and all(isinstance(item, Conversation) for item in items):
        conversations = [item for item in items if isinstance(item, Conversation)]
        names = [c.name for c in conversations]
        if len(set(names)) != len(names):
            raise ConversationError("<inline>", "two conversations have the same name")
        return conversations
    return parse_conversations(
        [item.to_mapping() if isinstance(item, Conversation) else item for item in items]
    )


class Sweep:
    """The same conversations run against every combination of presets, models,
    personas and humans, ``repeats`` times each; every run a fresh agent.

    Args:
        conversations: a conversation file's path (YAML or JSON lines), a list of
            :class:`Conversation`, or a list of mappings as a file holds them.
        presets: preset names or ``.yaml`` paths.
        models: model strings (``scripted``, ``replay:FILE``, ``cassette:FILE``,
            ``openai:gpt-4o-mini``...; see :func:`~memgpt_lab.llm.list_models`).
        personas / humans: persona and human names.
        repeats: runs of each combination (useful with models that are not deterministic).
        results_dir: where finished runs are kept; a sweep run again skips them.
        traffic_format: how traffic is saved there (see :data:`TRAFFIC_FORMATS`).
        base_dir: what relative paths (the conversation file, preset files, ``replay:``
            and ``cassette:`` files) are relative to; default: the working directory.
            :func:`load_sweep` gives the sweep file's directory.

    Runs are labelled with the presets and models as given (``cassette:../c.jsonl``
    stays so), and a run's id covers those labels, the conversation and the content
    of what the run reads (see :attr:`RunSpec.inputs`), not where the files are: the
    same sweep resumes from any working directory, and editing a preset, a persona, a
    human or a replayed model's file makes the runs that read it new.

    Raises:
        SweepError: an empty list, a name that is not text, ``repeats`` below 1, a
            model string that does not parse (checked without connecting) or a
            ``replay:`` / ``cassette:`` file that cannot be read.
        ConversationError: conversations that do not validate.
        UnknownNameError, PresetError: a preset, persona or human that does not exist.
    """

    def __init__(
        self,
        conversations: (
            str | os.PathLike[str] | Conversation | Iterable[Conversation | Mapping[str, Any]]
        ),
        presets: str | Sequence[str] = ("memgpt_chat",),
        models: str | Sequence[str] = ("scripted",),
        personas: str | Sequence[str] = ("sam_pov",),
        humans: str | Sequence[str] = ("basic",),
        repeats: int = 1,
        results_dir: str | os.PathLike[str] | None = None,
        traffic_format: str = "jsonl",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        base = Path(base_dir) if base_dir is not None else None
        self.conversations = _conversations(conversations, base)
        self.presets = _names(presets, "presets")
        self.models = _names(models, "models")
        self.personas = _names(personas, "personas")
        self.humans = _names(humans, "humans")
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise SweepError(f"repeats must be a whole number of 1 or more, not {repeats!r}")
        self.repeats = repeats
        if traffic_format not in TRAFFIC_FORMATS:
            raise SweepError(
                f"unknown traffic format {traffic_format!r}; known: {', '.join(TRAFFIC_FORMATS)}"
            )
        self.traffic_format = traffic_format
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.base_dir = Path(os.path.abspath(base if base is not None else Path.cwd()))
        # fail here, once, rather than in every run
        self._read_inputs()

    def _read_inputs(self) -> None:
        """Resolve the preset and model files and note a digest of what each run reads;
        again at each :meth:`run`, so a file edited since is seen."""
        from memgpt_lab.humans import get_human_text
        from memgpt_lab.personas import get_persona_text

        root = self.base_dir
        self._presets = {preset: _resolve_preset(preset, root) for preset in self.presets}
        self._models = {model: _resolve_model(model, root) for model in self.models}
        self._personas = {p: _digest(get_persona_text(p)) for p in self.personas}
        self._humans = {h: _digest(get_human_text(h)) for h in self.humans}

    def __repr__(self) -> str:
        return (
            f"<Sweep {len(self.specs())} runs: {len(self.conversations)} conversations x "
            f"{len(self.presets)} presets x {len(self.models)} models x "
            f"{len(self.personas)} personas x {len(self.humans)} humans x {self.repeats} repeats>"
        )

    def specs(self) -> list[RunSpec]:
        """Every run, in a fixed order: preset, model, persona, human, conversation, repeat."""
        return [
            RunSpec(
                preset,
                model,
                persona,
                human,
                conversation,
                repeat,
                preset_path=self._presets[preset][0],
                model_target=self._models[model][0],
                inputs=_digest(
                    self._presets[preset][1],
                    self._models[model][1],
                    self._personas[persona],
                    self._humans[human],
                ),
            )
            for preset in self.presets
            for model in self.models
            for persona in self.personas
            for human in self.humans
            for conversation in self.conversations
            for repeat in range(self.repeats)
        ]

    def run(
        self,
        executor: concurrent.futures.Executor | None = None,
        progress: bool = True,
        *,
        workers: int | None = None,
        retry_errors: bool = False,
    ) -> SweepResult:
        """Run what is not finished yet and return every run.

        Args:
            executor: any :class:`concurrent.futures.Executor`: a process or thread
                pool, or a Dask cluster's ``distributed.Client(address).get_executor()``.
                It is left open. None: :func:`default_executor` (processes for offline
                models, threads when one is remote), shut down at the end.
            progress: show a progress bar (tqdm's: a widget in Jupyter, text elsewhere).
            workers: the size of the default executor; with ``executor`` given, an
                error (size that executor instead).
            retry_errors: run again the stored runs that raised (a server that was
                down...); by default a stored run is finished whatever its status.

        A run that raises inside (its model failed...) is a finished run with its
        error. An executor that fails a run (a worker process killed, a cluster
        lost) gives a run with that error which is *not* stored, so the next
        :meth:`run` tries it again. Ctrl-C cancels the runs not started; those
        finished are kept.
        """
        from tqdm.auto import tqdm

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # A process pool's worker importing a script that runs its sweep without
            # `if __name__ == "__main__":`. Stop it quietly (not one traceback per worker):
            # the pool breaks, and the sweep's own process says why, once.
            raise SystemExit(1)
        if executor is not None and workers is not None:
            raise SweepError(
                f"workers={workers!r} sizes the default executor, and an executor was given: "
                "size that executor instead"
            )
        self._read_inputs()
        specs = self.specs()
        store = (
            ResultStore(self.results_dir, self.traffic_format)
            if self.results_dir is not None
            else None
        )
        results: dict[str, dict[str, Any]] = {}
        if store is not None:
            finished = store.finished()
            for spec in specs:
                if spec.run_id in finished:
                    run = store.load(spec.run_id)
                    if run is not None and not (retry_errors and run["status"] == "error"):
                        results[spec.run_id] = run
        todo = [spec for spec in specs if spec.run_id not in results]
        skipped = len(specs) - len(todo)
        own = executor is None and bool(todo)
        pool = default_executor(self.models, workers, len(todo)) if own else executor
        bar = tqdm(
            total=len(specs), initial=skipped, disable=not progress, desc="sweep", unit="run"
        )
        futures: dict[concurrent.futures.Future[dict[str, Any]], RunSpec] = {}
        try:
            if todo:
                assert pool is not None
                futures = {pool.submit(execute_run, spec): spec for spec in todo}
            problems = 0
            broken: list[BaseException] = []
            for future in concurrent.futures.as_completed(futures):
                spec = futures.pop(future)  # let go of it: a Dask result leaves the cluster
                try:
                    run = future.result()
                except Exception as exc:  # the executor failed the run: not stored
                    run = _executor_failure(spec, exc)
                    if isinstance(exc, concurrent.futures.BrokenExecutor):
                        broken.append(exc)
                else:
                    if store is not None:
                        store.save(run)
                results[spec.run_id] = run
                problems += run["status"] != "passed"
                bar.update(1)
                if problems:
                    bar.set_postfix(failing=problems, refresh=False)
            if todo and len(broken) == len(todo):
                raise SweepError(_broken_message(broken[0], pool))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
            if own and pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return SweepResult(
            [results[spec.run_id] for spec in specs], executed=len(todo), skipped=skipped
        )


def _broken_message(exc: BaseException, pool: concurrent.futures.Executor | None) -> str:
    message = (
        f"every run was lost: the executor broke ({type(exc).__name__}: "
        f"{str(exc) or 'no message'}); nothing was kept, so run() again retries them"
    )
    if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        message += (
            ". In a plain script, a process pool's workers import the script again: put the "
            'code that runs the sweep under `if __name__ == "__main__":`'
        )
    return message


def _executor_failure(spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    error = {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "turn": None,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "executor": True,
    }
    return run_record(spec, error, unrun_turns(spec, 1, error), {}, [], 0.0)


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """A :class:`Sweep` from a YAML sweep file::

        conversations: conversations.yaml   # a file (relative to this one), or a list inline
        # preset files, replay: and cassette: files are relative to this file too
        presets: [memgpt_chat, memgpt_minimal]
        models: [scripted]
        personas: [sam_pov]                 # optional, as are humans and repeats
        humans: [basic]
        repeats: 1
        results: results/                   # optional: results_dir, relative to this file

    Raises:
        SweepError: the file is missing, not YAML, or a field is wrong (named): a
            ``results`` that is not text, an unknown preset, persona or human, a
            model string that does not parse; the message names the file.
        ConversationError: the conversations do not validate.
    """
    import yaml

    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read sweep file {source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep file {source}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise SweepError(f"sweep file {source}: expected a mapping of settings")
    unknown = sorted(set(data) - set(_SWEEP_FIELDS))
    if unknown:
        raise SweepError(
            f"sweep file {source}: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(_SWEEP_FIELDS)}"
        )
    if "conversations" not in data:
        raise SweepError(f"sweep file {source}: missing 'conversations' (a file or a list)")
    conversations = data["conversations"]
    if isinstance(conversations, str):
        pass  # relative to base_dir
    elif isinstance(conversations, list):
        conversations = parse_conversations(conversations, str(source))
    else:
        raise SweepError(
            f"sweep file {source}: 'conversations' must be a file name or a list of conversations"
        )
    options: dict[str, Any] = {}
    for key in ("presets", "models", "personas", "humans"):
        if key in data:
            value = data[key]
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                raise SweepError(f"sweep file {source}: {key!r} must be a list of names")
            options[key] = value
    if "repeats" in data:
        options["repeats"] = data["repeats"]
    results = data.get("results")
    if results is not None:
        if not isinstance(results, str) or not results.strip():
            raise SweepError(
                f"sweep file {source}: 'results' must be a directory name (text), not {results!r}"
            )
        options["results_dir"] = source.parent / results
    try:
        return Sweep(conversations, base_dir=source.parent, **options)
    except (SweepError, UnknownNameError, PresetError) as exc:
        raise SweepError(f"sweep file {source}: {exc}") from None
