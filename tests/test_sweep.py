"""Sweeps: conversation files, runs on any executor, resuming, errors, results, the CLI gate."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import distributed
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memgpt_lab.cli import main
from memgpt_lab.errors import LabError, UnknownNameError
from memgpt_lab.recorder import Recording
from memgpt_lab.sweep import (
    Conversation,
    ConversationError,
    ConversationTurn,
    Expect,
    ResultStore,
    Sweep,
    SweepError,
    SweepResult,
    default_executor,
    execute_run,
    load_conversations,
    load_sweep,
    normalise_run,
)

CONVERSATIONS = [
    {
        "name": "greeting",
        "turns": [{"user": "Hello, is anyone there?", "expect": {"max_steps": 2}}],
    },
    {
        "name": "name_and_fact",
        "turns": [
            {
                "user": "My name is Ada.",
                "expect": {
                    "reply": "Ada",
                    "calls": ["core_memory_replace"],
                    "core_memory": {"human": "Ada"},
                },
            },
            {
                "user": "Remember that my favourite language is OCaml.",
                "expect": {"calls": ["archival_memory_insert"], "not_calls": ["pause_heartbeats"]},
            },
            "What do you remember about my favourite language?",
        ],
    },
    {"name": "unicode", "turns": ["Grüße, 世界! 🎉 Ça va?", "Ünïcödé again: ∑ ≠ ∞"]},
]


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def conversations_file(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "conversations.yaml", {"conversations": CONVERSATIONS})


def small_sweep(conversations_file: Path, **options: Any) -> Sweep:
    return Sweep(conversations_file, presets=["memgpt_chat", "memgpt_minimal"], **options)


def normalised(runs: Any) -> list[dict[str, Any]]:
    return [normalise_run(run) for run in runs]


# --------------------------------------------------------------------------- conversation files


def test_a_yaml_file_and_a_jsonl_file_give_the_same_conversations(tmp_path, conversations_file):
    lines = tmp_path / "conversations.jsonl"
    lines.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n\n" for c in CONVERSATIONS), "utf-8"
    )
    from_yaml = load_conversations(conversations_file)
    assert from_yaml == load_conversations(lines)
    assert [c.name for c in from_yaml] == ["greeting", "name_and_fact", "unicode"]
    turn = from_yaml[1].turns[0]
    assert turn == ConversationTurn(
        "My name is Ada.",
        Expect(reply="Ada", calls=("core_memory_replace",), core_memory=(("human", "Ada"),)),
    )
    assert from_yaml[1].checks == 5
    assert from_yaml[2].turns[1].expect == Expect()
    # the mapping round-trips
    assert [Conversation.from_mapping(c.to_mapping()) for c in from_yaml] == from_yaml


BAD_TURNS = [
    (5, "a turn is a user message"),
    ({"user": ""}, "'user' must be the user's message"),
    ({"user": "hi", "expect": {"replies": "x"}}, "unknown check(s) replies"),
    ({"user": "hi", "expect": {"reply": "(unclosed"}}, "not a valid regular expression"),
    ({"user": "hi", "expect": {"calls": ["send_mesage"]}}, "unknown function(s) send_mesage"),
    ({"user": "hi", "expect": {"calls": 3}}, "'calls' must be a non-empty list of function names"),
    (
        {"user": "hi", "expect": {"calls": ["send_message"], "not_calls": ["send_message"]}},
        "both in 'calls' and 'not_calls'",
    ),
    ({"user": "hi", "expect": {"core_memory": {"soul": "x"}}}, "no core memory block 'soul'"),
    ({"user": "hi", "expect": {"core_memory": ["human"]}}, "'core_memory' must map"),
    ({"user": "hi", "expect": {"max_steps": 0}}, "'max_steps' must be a whole number"),
    ({"user": "hi", "expect": {"max_steps": True}}, "'max_steps' must be a whole number"),
    ({"user": "hi", "then": 1}, "unknown field(s) then"),
    # a check that is there must check something: these would pass whatever the agent did
    ({"user": "hi", "expect": []}, "'expect' must be a mapping of checks, not []"),
    ({"user": "hi", "expect": 0}, "'expect' must be a mapping of checks, not 0"),
    ({"user": "hi", "expect": {}}, "'expect' holds no check"),
    ({"user": "hi", "expect": None}, "'expect' must be a mapping of checks, not None"),
    ({"user": "hi", "expect": {"reply": ""}}, "an empty one matches any reply"),
    ({"user": "hi", "expect": {"reply": None}}, "'reply' must be a regular expression"),
    ({"user": "hi", "expect": {"calls": []}}, "'calls' must be a non-empty list"),
    ({"user": "hi", "expect": {"not_calls": None}}, "'not_calls' must be a non-empty list"),
    ({"user": "hi", "expect": {"core_memory": []}}, "'core_memory' must map"),
    ({"user": "hi", "expect": {"core_memory": {}}}, "'core_memory' must map"),
    ({"user": "hi", "expect": {"core_memory": {"human": ""}}}, "'core_memory' must map"),
    ({"user": "hi", "expect": {"max_steps": None}}, "'max_steps' must be a whole number"),
]


@pytest.mark.parametrize(("turn", "problem"), BAD_TURNS)
def test_a_bad_turn_is_named_by_file_conversation_and_turn(tmp_path, turn, problem):
    path = write_yaml(
        tmp_path / "bad.yaml",
        [{"name": "fine", "turns": ["hi"]}, {"name": "b", "turns": ["ok", turn]}],
    )
    with pytest.raises(ConversationError) as info:
        load_conversations(path)
    error = info.value
    assert (error.source, error.conversation, error.turn) == (str(path), "'b'", 2)
    assert problem in str(error)
    assert str(error).startswith(f"{path}: conversation 'b', turn 2: ")


@pytest.mark.parametrize(
    ("content", "problem", "conversation"),
    [
        ("[", "not valid YAML", None),
        ("{}", "a mapping with only 'conversations'", None),
        ("conversations: []", "non-empty list of conversations", None),
        ("- 3", "must be a mapping with 'name' and 'turns'", "#1"),
        ("- {turns: [hi]}", "needs a 'name'", "#1"),
        ("- {name: 5, turns: [hi]}", "'name' must be non-empty text, not 5", "#1"),
        ("- {name: a, turns: []}", "needs 'turns'", "'a'"),
        ("- {name: a, turns: [hi], extra: 1}", "unknown field(s) extra", "'a'"),
        ("- {name: a, turns: [hi]}\n- {name: a, turns: [ho]}", "used twice", "'a'"),
    ],
)
def test_a_bad_file_is_named(tmp_path, content, problem, conversation):
    path = tmp_path / "conversations.yaml"
    path.write_text(content, "utf-8")
    with pytest.raises(ConversationError) as info:
        load_conversations(path)
    assert problem in str(info.value)
    assert info.value.source == str(path) and info.value.conversation == conversation


def test_bad_jsonl_and_missing_and_unknown_files(tmp_path):
    lines = tmp_path / "c.jsonl"
    lines.write_text('{"name": "a", "turns": ["hi"]}\n{"name": \n', "utf-8")
    with pytest.raises(ConversationError, match=r"c\.jsonl, line 2: not JSON") as info:
        load_conversations(lines)
    assert info.value.line == 2 and info.value.conversation is None
    # a conversation that does not validate is named by its line too (blank lines counted)
    good = '{"name": "a", "turns": ["hi"]}'
    lines.write_text(f'{good}\n\n{{"name": "b", "turns": ["ok", {{"user": ""}}]}}\n', "utf-8")
    with pytest.raises(ConversationError) as info:
        load_conversations(lines)
    assert (info.value.line, info.value.conversation, info.value.turn) == (3, "'b'", 2)
    assert str(info.value).startswith(f"{lines}, line 3: conversation 'b', turn 2: ")
    lines.write_text(f"{good}\n{good}\n", "utf-8")
    with pytest.raises(ConversationError, match=r"line 2: conversation 'a': the name is used"):
        load_conversations(lines)
    with pytest.raises(ConversationError, match="cannot read the file"):
        load_conversations(tmp_path / "missing.yaml")
    text = tmp_path / "c.txt"
    text.write_text("hi", "utf-8")
    with pytest.raises(ConversationError, match=r"YAML \(.yaml, .yml\) or JSON lines"):
        load_conversations(text)
    assert issubclass(ConversationError, LabError) and issubclass(ConversationError, ValueError)


def test_checks_evaluate_every_check_and_say_what_failed():
    expect = Expect(
        reply="(?i)ocaml",
        calls=("archival_memory_search",),
        not_calls=("send_message",),
        core_memory=(("human", "Ada"), ("persona", "Sam")),
        max_steps=1,
    )
    outcomes = expect.evaluate(
        ["It is Python."], ["send_message"], {"human": "Name: Ada", "persona": "Bob"}, 2
    )
    assert [(o["check"], o["passed"]) for o in outcomes] == [
        ("reply", False),
        ("calls", False),
        ("not_calls", False),
        ("core_memory", True),
        ("core_memory", False),
        ("max_steps", False),
    ]
    assert outcomes[1]["detail"] == "not called: archival_memory_search"
    assert outcomes[5]["detail"] == "took 2 steps"
    assert expect.count == 6


def test_a_calls_check_needs_a_call_that_succeeded(tmp_path):
    expect = Expect(calls=("core_memory_replace", "send_message"))
    ok, *_ = expect.evaluate([], ["core_memory_replace", "send_message"], {}, 2)
    assert ok["passed"]
    once, *_ = expect.evaluate(
        [],
        ["core_memory_replace", "core_memory_replace", "send_message"],
        {},
        3,
        ["core_memory_replace"],
    )
    assert once["passed"]  # failed once, then succeeded
    failed, *_ = expect.evaluate(
        [], ["core_memory_replace", "send_message"], {}, 2, ["core_memory_replace"]
    )
    assert not failed["passed"] and failed["detail"] == "failed: core_memory_replace"
    # through a real run: an edit of text the block does not hold fails
    call = {
        "name": "core_memory_replace",
        "arguments": json.dumps(
            {
                "name": "human",
                "old_content": "NOT THERE",
                "new_content": "Ada",
                "request_heartbeat": True,
            }
        ),
    }
    completion = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "Noting it.", "function_call": call},
                "finish_reason": "function_call",
            }
        ]
    }
    replay = tmp_path / "answers.json"
    replay.write_text(json.dumps([completion, "Noted, Ada."]), "utf-8")
    conversation = Conversation(
        "c", (ConversationTurn("My name is Ada.", Expect(calls=("core_memory_replace",))),)
    )
    run = execute_run(Sweep([conversation], models=[f"replay:{replay}"]).specs()[0])
    turn = run["turns"][0]
    assert turn["functions"][0] == "core_memory_replace"
    assert turn["failed_functions"] == ["core_memory_replace"]
    assert run["status"] == "failed"
    assert turn["checks"][0]["detail"] == "failed: core_memory_replace"


# --------------------------------------------------------------------------- the same on any executor


@pytest.fixture
def reference(conversations_file: Path) -> list[dict[str, Any]]:
    """Every run of the small sweep, executed in this process one after another."""
    return [execute_run(spec) for spec in small_sweep(conversations_file).specs()]


def test_runs_in_process_are_deterministic_and_keep_everything(conversations_file, reference):
    again = [execute_run(spec) for spec in small_sweep(conversations_file).specs()]
    assert normalised(again) == normalised(reference)
    assert again[0]["traffic"][0]["time"] != 0.0  # real times, blanked only by normalising
    run = next(r for r in reference if r["conversation"] == "name_and_fact")
    assert run["preset"] == "memgpt_chat" and run["status"] == "passed"
    first = run["turns"][0]
    assert first["functions"][0] == "core_memory_replace" and "Ada" in " ".join(first["replies"])
    assert all(step["latency"] > 0 and step["prompt_tokens"] > 0 for step in first["steps"])
    assert "Ada" in run["core_memory"]["human"]
    # the traffic: the client's message in, then the turn bracketed as the server does
    types = [json.loads(f["text"]).get("type") for f in run["traffic"]]
    assert types[:2] == ["user_message", "agent_response_start"]
    assert types.count("agent_response_start") == types.count("agent_response_end") == 3
    assert all(
        f["direction"] == "in" for f in run["traffic"] if f["text"].startswith('{"type": "user')
    )
    # a run with an agent lacking archival memory fails the check it cannot meet
    minimal = next(
        r
        for r in reference
        if (r["conversation"], r["preset"]) == ("name_and_fact", "memgpt_minimal")
    )
    assert minimal["status"] == "failed"
    assert [c["passed"] for c in minimal["turns"][1]["checks"]] == [False, True]


def test_thread_pool_and_process_pool_give_identical_results(conversations_file, reference):
    sweep = small_sweep(conversations_file)
    with concurrent.futures.ThreadPoolExecutor(3) as threads:
        by_threads = sweep.run(threads, progress=False)
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as processes:
        by_processes = sweep.run(processes, progress=False)
    assert normalised(by_threads) == normalised(reference)
    assert normalised(by_processes) == normalised(reference)
    assert by_threads.executed == by_processes.executed == 6


def test_a_dask_local_cluster_gives_identical_results(conversations_file, reference):
    # a free loopback port: the scheduler serves HTTP even without a dashboard, on 8787
    # unless told, and warns (leaking a socket) when another cluster on the machine has it
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = small_sweep(conversations_file).run(client.get_executor(), progress=False)
        workers = len(client.scheduler_info()["workers"])
    assert workers == 2
    assert normalised(result) == normalised(reference)


def test_the_default_executor_suits_the_models():
    with default_executor(["scripted", "replay:x.json", "cassette:c.jsonl"], 2) as pool:
        assert isinstance(pool, concurrent.futures.ProcessPoolExecutor)
    with default_executor(["scripted", "ollama:llama3.1"]) as pool:
        assert isinstance(pool, concurrent.futures.ThreadPoolExecutor)
        assert pool._max_workers == 8
    with default_executor(["ollama:llama3.1"], runs=3) as pool:
        assert pool._max_workers == 3  # no more workers than runs


def test_the_default_executor_runs_the_sweep(conversations_file, reference):
    result = small_sweep(conversations_file).run(progress=False, workers=2)
    assert normalised(result) == normalised(reference)


# --------------------------------------------------------------------------- resuming


def replay_file(path: Path, *answers: str) -> Path:
    path.write_text(json.dumps(list(answers)), "utf-8")
    return path


def open_writer(fifo: Path, process: subprocess.Popen[bytes], deadline: float) -> int:
    """Open ``fifo`` for writing once the sweep's run opens it for reading."""
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if process.poll() is not None:
                raise AssertionError(f"the sweep ended early: {process.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"the sweep never opened {fifo}") from None
            time.sleep(0.005)


def test_a_killed_sweep_run_again_finishes_only_what_was_missing(tmp_path):
    """Six runs, one per model. The sweep runs in a subprocess on one thread whose runs
    each wait first for a byte from their own FIFO, which this test writes: after three
    its fourth run blocks, and the process is killed (SIGKILL: no clean-up at all)."""
    replays = [
        replay_file(tmp_path / f"answers{i}.json", "Hi there!", "Still here.") for i in range(6)
    ]
    fifos = [tmp_path / f"gate{i}" for i in range(6)]
    for fifo in fifos:
        os.mkfifo(fifo)
    conversation = [{"name": "two", "turns": [{"user": "hi", "expect": {"reply": "Hi"}}, "and?"]}]
    conversations = write_yaml(tmp_path / "conversations.yaml", conversation)
    results = tmp_path / "results"
    models = [f"replay:{replay}" for replay in replays]
    script = tmp_path / "sweep_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import concurrent.futures
            import itertools
            from memgpt_lab.sweep import Sweep

            class Gated(concurrent.futures.ThreadPoolExecutor):
                gates = itertools.count()

                def submit(self, fn, /, *args, **kwargs):
                    gate = {str(tmp_path)!r} + f"/gate{{next(self.gates)}}"

                    def gated():
                        with open(gate, "rb") as fifo:
                            fifo.read()
                        return fn(*args, **kwargs)

                    return super().submit(gated)

            sweep = Sweep({str(conversations)!r}, models={models!r}, results_dir={str(results)!r})
            sweep.run(Gated(1), progress=False)
            """
        ),
        "utf-8",
    )
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        for fifo in fifos[:3]:
            descriptor = open_writer(fifo, process, deadline)
            os.write(descriptor, b"go")
            os.close(descriptor)
        runs = results / "runs"
        while len(list(runs.glob("*.json"))) < 3:  # the third run's file, written by the driver
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.005)
        process.kill()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    sweep = Sweep(conversations, models=models, results_dir=results)
    specs = sweep.specs()
    assert sorted(p.stem for p in runs.glob("*.json")) == sorted(s.run_id for s in specs[:3])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        resumed = sweep.run(pool, progress=False)
    assert (resumed.skipped, resumed.executed) == (3, 3)
    assert [run["run_id"] for run in resumed] == [spec.run_id for spec in specs]
    assert all(run["status"] == "passed" for run in resumed)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        whole = Sweep(conversations, models=models, results_dir=tmp_path / "fresh").run(
            pool, progress=False
        )
    assert whole.executed == 6
    assert normalised(resumed) == normalised(whole)
    # and a third run has nothing left to do
    again = sweep.run(concurrent.futures.ThreadPoolExecutor(1), progress=False)
    assert (again.skipped, again.executed) == (6, 0)
    assert not list(results.rglob("*.part"))


# --------------------------------------------------------------------------- failures


def test_a_failing_run_is_recorded_with_its_error_and_the_sweep_goes_on(tmp_path):
    short = replay_file(tmp_path / "short.json", "Only one answer.")
    enough = replay_file(tmp_path / "enough.json", "One.", "Two.")
    conversation = Conversation(
        "two_turns",
        (ConversationTurn("hi", Expect(reply="One")), ConversationTurn("more", Expect(reply="."))),
    )
    results = tmp_path / "results"
    sweep = Sweep(
        [conversation], models=[f"replay:{short}", f"replay:{enough}"], results_dir=results
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        result = sweep.run(pool, progress=False)
    failed, fine = result
    assert fine["status"] == "passed"
    assert failed["status"] == "error"
    assert failed["error"]["type"] == "LLMError" and failed["error"]["turn"] == 2
    assert "no more responses" in failed["error"]["message"]
    assert "Traceback" in failed["error"]["traceback"]
    assert result.status_counts() == {"passed": 1, "failed": 0, "error": 1}
    assert not result.passed and result.failures == [failed]
    # the error reached the client as the server would send it
    error_frame = result.recording(failed["run_id"]).assert_sent({"type": "agent_response_error"})
    assert "no more responses" in error_frame.json["message"]
    table = result.to_pandas()
    row = table[(table["run_id"] == failed["run_id"]) & (table["turn"] == 2)].iloc[0]
    assert row["error"].startswith("LLMError: ReplayModel has no more responses")
    assert not row["passed"] and row["failed_checks"][0].startswith("reply: LLMError")
    assert "raised" in result.summary() and "two_turns turn 2" in result.summary()
    by_error = result.pass_rates("error")
    assert sorted(by_error["turns"].tolist()) == [1, 3]  # the turn that raised; the others
    assert by_error["turns_passed"].sum() == 2  # "Only one answer." lacks "One"
    # stored: finished, so skipped next time, unless asked to retry errors
    again = sweep.run(concurrent.futures.ThreadPoolExecutor(1), progress=False)
    assert (again.skipped, again.executed) == (2, 0)
    assert normalised(again) == normalised(result)
    retried = sweep.run(concurrent.futures.ThreadPoolExecutor(1), progress=False, retry_errors=True)
    assert (retried.skipped, retried.executed) == (1, 1)


def test_a_run_that_cannot_start_is_an_error_of_turn_0(tmp_path):
    conversation = Conversation(
        "c", (ConversationTurn("hi", Expect(reply="x")), ConversationTurn("ho"))
    )
    broken = tmp_path / "broken.json"
    broken.write_text("not JSON {", "utf-8")
    sweep = Sweep([conversation], models=[f"replay:{broken}"])
    result = sweep.run(concurrent.futures.ThreadPoolExecutor(1), progress=False)
    run = result[0]
    assert run["status"] == "error" and run["error"]["turn"] == 0
    assert run["error"]["type"] == "LLMError"
    assert [t["error"] for t in run["turns"]] == [
        f"the run could not start: LLMError: {run['error']['message']}",
        "not run: the run stopped with LLMError",
    ]
    assert "is neither JSON nor JSON lines" in run["error"]["message"]
    assert "could not start: LLMError: replay file" in result.summary()
    assert result.pass_rates("model")["pass_rate"].tolist() == [0.0]


def test_the_summary_shows_why_a_run_could_not_start(tmp_path, capsys):
    spec = Sweep([Conversation("c", (ConversationTurn("hi"),))]).specs()[0]
    run = execute_run(dataclasses.replace(spec, model="nosuch:model"))  # past Sweep's checks
    summary = SweepResult([run]).summary()
    assert "could not start: UnknownNameError: unknown provider 'nosuch'; available: " in summary
    # and in the CLI's summary
    (tmp_path / "broken.json").write_text("not JSON {", "utf-8")
    path = sweep_file(tmp_path, presets=["memgpt_chat"], models=["replay:broken.json"])
    assert main(["sweep", str(path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "greeting turn 1 [memgpt_chat, replay:broken.json" in out
    assert "could not start: LLMError: replay file" in out and "neither JSON nor JSON" in out


class FailingExecutor(concurrent.futures.Executor):
    """An executor whose worker dies: the futures from the ``lose``-th on fail, as a broken
    pool's do; those before run in this thread."""

    def __init__(self, lose: int = 0) -> None:
        self.lose = lose
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.submitted += 1
        if self.submitted > self.lose:
            future.set_exception(BrokenProcessPool("worker died"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def test_traffic_saved_as_har_reads_back_the_same(tmp_path, conversations_file, reference):
    results = tmp_path / "results"
    first = small_sweep(conversations_file, results_dir=results, traffic_format="har")
    ran = first.run(concurrent.futures.ThreadPoolExecutor(2), progress=False)
    files = sorted((results / "traffic").iterdir())
    assert files and all(f.suffix == ".har" for f in files)
    assert len(Recording.load(files[0])) == len(ran[0]["traffic"])
    again = small_sweep(conversations_file, results_dir=results, traffic_format="har").run(
        concurrent.futures.ThreadPoolExecutor(2), progress=False
    )
    assert (again.skipped, again.executed) == (len(reference), 0)
    assert normalised(again) == normalised(ran) == normalised(reference)


def test_a_run_the_executor_lost_is_reported_but_not_stored(tmp_path, conversations_file):
    results = tmp_path / "results"
    sweep = Sweep(conversations_file, results_dir=results)
    lost = sweep.run(FailingExecutor(lose=1), progress=False)
    assert [run["status"] for run in lost] == ["passed", "error", "error"]
    assert lost[1]["error"]["type"] == "BrokenProcessPool" and lost[1]["error"]["executor"]
    assert [p.stem for p in (results / "runs").glob("*.json")] == [lost[0]["run_id"]]
    done = sweep.run(concurrent.futures.ThreadPoolExecutor(2), progress=False)
    assert (done.skipped, done.executed) == (1, 2) and done.passed


def test_a_sweep_whose_every_run_was_lost_says_so_once(tmp_path, conversations_file):
    sweep = Sweep(conversations_file, results_dir=tmp_path / "results")
    with pytest.raises(SweepError, match=r"every run was lost: the executor broke \(Broken"):
        sweep.run(FailingExecutor(), progress=False)
    assert sweep.run(concurrent.futures.ThreadPoolExecutor(2), progress=False).executed == 3


def test_a_plain_script_without_a_main_guard_is_told_once(tmp_path):
    """The default executor's processes import the script again (forkserver, spawn): they
    stop quietly, and the script's own process says what to do, once."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from memgpt_lab.sweep import Conversation, ConversationTurn, Sweep\n"
        "sweep = Sweep([Conversation('c', (ConversationTurn('hi'),))], presets=['memgpt_chat'])\n"
        "sweep.run(progress=False, workers=1)\n",
        "utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("memgpt_lab.sweep.core.SweepError: every run was lost")
    assert 'under `if __name__ == "__main__":`' in last


def test_bad_sweeps_fail_at_once(conversations_file):
    with pytest.raises(SweepError, match="presets is empty"):
        Sweep(conversations_file, presets=[])
    with pytest.raises(SweepError, match="models must be names"):
        Sweep(conversations_file, models=[object()])  # type: ignore[list-item]
    with pytest.raises(SweepError, match="lists a name twice"):
        Sweep(conversations_file, models=["scripted", "scripted"])
    with pytest.raises(SweepError, match="repeats must be"):
        Sweep(conversations_file, repeats=0)
    with pytest.raises(UnknownNameError, match="unknown preset 'nope'"):
        Sweep(conversations_file, presets=["nope"])
    with pytest.raises(UnknownNameError, match="persona"):
        Sweep(conversations_file, personas=["nobody"])
    with pytest.raises(SweepError, match="unknown traffic format 'pcap'; known: jsonl, har"):
        Sweep(conversations_file, traffic_format="pcap")
    # model strings are parsed up front, without connecting anywhere
    with pytest.raises(SweepError, match="model 'nosuch:m': unknown provider 'nosuch'"):
        Sweep(conversations_file, models=["scripted", "nosuch:m"])
    with pytest.raises(SweepError, match="model 'gpt-4o': .*needs a provider"):
        Sweep(conversations_file, models=["gpt-4o"])
    with pytest.raises(SweepError, match="model 'replay:missing.json': cannot read"):
        Sweep(conversations_file, models=["replay:missing.json"])
    with pytest.raises(SweepError, match="names no file after 'cassette:'"):
        Sweep(conversations_file, models=["cassette:"])


# --------------------------------------------------------------------------- results


def test_results_as_a_table_pass_rates_and_repeats(conversations_file):
    result = small_sweep(conversations_file, repeats=2).run(
        concurrent.futures.ThreadPoolExecutor(2), progress=False
    )
    assert len(result) == 12
    table = result.to_pandas()
    assert len(table) == 2 * 2 * (1 + 3 + 2)  # presets x repeats x turns
    assert list(table.columns[:8]) == [
        "run_id",
        "preset",
        "model",
        "persona",
        "human",
        "conversation",
        "repeat",
        "turn",
    ]
    assert {"reply", "functions", "failed_functions", "steps", "prompt_tokens", "latency"} <= set(
        table.columns
    )
    rates = result.pass_rates(["preset", "model"])
    chat = rates.loc[("memgpt_chat", "scripted")]
    minimal = rates.loc[("memgpt_minimal", "scripted")]
    assert chat["pass_rate"] == 1.0 and chat["runs"] == chat["runs_passed"] == 6
    assert minimal["pass_rate"] < 1.0 and minimal["runs_passed"] == 4
    by_turn = result.pass_rates("turn")
    assert by_turn["turns"].sum() == len(table)
    with pytest.raises(KeyError, match="no column colour"):
        result.pass_rates("colour")
    # by any column: lists as joined text, empty values kept
    by_functions = result.pass_rates("functions")
    assert by_functions["turns"].sum() == len(table)
    assert "core_memory_replace, send_message" in by_functions.index
    by_failed = result.pass_rates("failed_checks")
    assert by_failed["turns"].sum() == len(table)
    assert by_failed.loc[""]["pass_rate"] == 1.0
    assert by_failed.drop(index="")["pass_rate"].eq(0.0).all()
    assert result.pass_rates(["preset", "failed_functions"])["turns"].sum() == len(table)
    by_error = result.pass_rates("error")
    assert by_error["turns"].sum() == len(table) and len(by_error) == 1  # no turn raised
    assert by_error["runs_passed"].tolist() == [10]
    # the same as a plain SweepResult of the same runs
    assert SweepResult(result.runs).to_pandas().equals(table)
    assert result.transcript(result[0]["run_id"])[0]["role"] == "user"


def test_compare_says_what_was_fixed_and_what_regressed(conversations_file):
    pool = concurrent.futures.ThreadPoolExecutor(2)
    chat = Sweep(conversations_file, presets=["memgpt_chat"]).run(pool, progress=False)
    minimal = Sweep(conversations_file, presets=["memgpt_minimal"]).run(pool, progress=False)
    pool.shutdown()
    key = ["model", "persona", "human", "conversation", "repeat", "turn"]
    worse = minimal.compare(chat, on=key)
    assert len(worse) == 6
    pairs = zip(worse["conversation"], worse["turn"], strict=True)
    changes = dict(zip(pairs, worse["change"], strict=True))
    assert changes[("name_and_fact", 2)] == "regressed"
    assert changes[("greeting", 1)] == "still passing"
    assert minimal.compare(minimal, on=key)["change"].isin(["still passing", "still failing"]).all()
    better = chat.compare(minimal, on=key)
    assert (better["change"] == "fixed").sum() == (worse["change"] == "regressed").sum()
    assert set(chat.compare(minimal)["change"]) == {"new", "gone"}  # the presets differ
    with pytest.raises(ValueError, match="do not identify"):
        chat.compare(chat, on=["preset"])
    with pytest.raises(KeyError, match="cannot compare on reply"):
        chat.compare(chat, on=["reply"])


def test_the_store_writes_each_run_whole(tmp_path, conversations_file):
    run = execute_run(Sweep(conversations_file).specs()[0])
    store = ResultStore(tmp_path / "results")
    store.save(run)
    assert store.finished() == {run["run_id"]}
    assert store.load(run["run_id"]) == run
    lines = Recording.from_jsonl(store.traffic_path(run["run_id"]))
    assert [f.to_dict() for f in lines] == run["traffic"]
    assert "traffic" not in json.loads(store.run_path(run["run_id"]).read_text("utf-8"))
    store.run_path("broken").write_text("{", "utf-8")
    with pytest.raises(SweepError, match="delete it"):
        store.load("broken")


# --------------------------------------------------------------------------- sweep files and the CLI


def sweep_file(tmp_path: Path, **fields: Any) -> Path:
    write_yaml(tmp_path / "conversations.yaml", CONVERSATIONS)
    return write_yaml(tmp_path / "sweep.yaml", {"conversations": "conversations.yaml", **fields})


def test_a_sweep_file_names_its_files_relative_to_itself(tmp_path):
    replay_file(tmp_path / "answers.json", "x")
    path = sweep_file(
        tmp_path, presets=["memgpt_chat"], models=["scripted", "replay:answers.json"], results="out"
    )
    sweep = load_sweep(path)
    assert sweep.models == ("scripted", "replay:answers.json")  # the labels, as written
    replayed = sweep.specs()[-1]
    assert replayed.model == "replay:answers.json"
    assert replayed.model_target == f"replay:{tmp_path / 'answers.json'}"  # what a worker opens
    assert sweep.results_dir == tmp_path / "out"
    assert len(sweep.specs()) == 6
    inline = write_yaml(tmp_path / "inline.yaml", {"conversations": CONVERSATIONS[:1]})
    assert [c.name for c in load_sweep(inline).conversations] == ["greeting"]


def test_a_sweep_file_resumes_the_same_from_any_working_directory(tmp_path, monkeypatch):
    """Labels and run ids are what the file says, not where it was run from."""
    project = tmp_path / "project"
    (project / "presets").mkdir(parents=True)
    (project / "presets" / "mine.yaml").write_text(
        "name: mine\nsystem_prompt: memgpt_chat\nfunctions: [send_message]\n", "utf-8"
    )
    replay_file(project / "answers.json", "Hello!", "Hello again!", "And again!")
    conversations = [{"name": "hi", "turns": [{"user": "hi", "expect": {"reply": "Hello"}}]}]
    write_yaml(project / "conversations.yaml", conversations)
    path = write_yaml(
        project / "sweep.yaml",
        {
            "conversations": "conversations.yaml",
            "presets": ["memgpt_chat", "presets/mine.yaml"],
            "models": ["scripted", "replay:answers.json"],
            "results": "results",
        },
    )
    monkeypatch.chdir(tmp_path)
    first = load_sweep("project/sweep.yaml").run(
        concurrent.futures.ThreadPoolExecutor(2), progress=False
    )
    assert first.executed == 4
    assert {(r["preset"], r["model"]) for r in first} == {
        (p, m)
        for p in ("memgpt_chat", "presets/mine.yaml")
        for m in ("scripted", "replay:answers.json")
    }
    monkeypatch.chdir(project)
    again = load_sweep("sweep.yaml").run(concurrent.futures.ThreadPoolExecutor(2), progress=False)
    assert (again.skipped, again.executed) == (4, 0)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in first]
    assert "replay:answers.json" in again.summary()
    monkeypatch.chdir(project / "presets")
    assert [s.run_id for s in load_sweep(path).specs()] == [r["run_id"] for r in first]


def test_editing_what_a_run_reads_makes_its_runs_new(tmp_path):
    """The preset file, the replay file: their content is in the run id."""
    replay_file(tmp_path / "answers.json", "Hello!")
    preset = tmp_path / "mine.yaml"
    preset.write_text(
        "name: mine\nsystem_prompt: memgpt_chat\nfunctions: [send_message]\n", "utf-8"
    )
    conversation = Conversation("hi", (ConversationTurn("hi", Expect(reply="Hello")),))
    results = tmp_path / "results"

    def sweep() -> Sweep:
        return Sweep(
            [conversation],
            presets=[str(preset), "memgpt_chat"],
            models=["replay:answers.json"],
            results_dir=results,
            base_dir=tmp_path,
        )

    pool = concurrent.futures.ThreadPoolExecutor(1)
    same = sweep()
    assert same.run(pool, progress=False).executed == 2
    replay_file(tmp_path / "answers.json", "Bye!")  # a new answer: both runs are new
    changed = same.run(pool, progress=False)  # (the same Sweep reads its inputs again)
    assert (changed.skipped, changed.executed) == (0, 2)
    assert changed.status_counts()["failed"] == 2  # and they read the new file
    preset.write_text(
        "name: mine\nsystem_prompt_text: Be brief.\nfunctions: [send_message]\n", "utf-8"
    )
    edited = sweep().run(pool, progress=False)  # only the preset's runs are new
    assert (edited.skipped, edited.executed) == (1, 1)
    pool.shutdown()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"presets": {"a": 1}}, "'presets' must be a list of names"),
        ({"repeats": 0}, "repeats must be"),
        ({"results": ["a"]}, "'results' must be a directory name (text), not ['a']"),
        ({"results": 5}, "'results' must be a directory name (text), not 5"),
        ({"presets": ["memgpt_chta"]}, "unknown preset 'memgpt_chta'"),
        ({"presets": ["missing.yaml"]}, "does not exist"),
        ({"personas": ["sam_pvo"]}, "unknown persona 'sam_pvo'"),
        ({"humans": ["basik"]}, "unknown human 'basik'"),
        ({"models": ["openia:gpt-4o"]}, "model 'openia:gpt-4o': unknown provider 'openia'"),
    ],
)
def test_a_bad_sweep_file_is_named(tmp_path, fields, problem):
    path = sweep_file(tmp_path, **fields)
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    assert problem in str(info.value)
    assert str(info.value).startswith(f"sweep file {path}: ")
    assert not (tmp_path / "['a']").exists()
    assert main(["sweep", str(path), "--no-progress"]) == 2  # a bad file, not a failed sweep


def test_the_cli_gate_passes_fails_and_refuses(tmp_path, capsys):
    passing = sweep_file(tmp_path, presets=["memgpt_chat"])
    assert main(["sweep", str(passing), "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "memgpt_chat" in out and "3 runs: 3 passed" in out
    failing = write_yaml(
        tmp_path / "failing.yaml",
        {"conversations": "conversations.yaml", "presets": ["memgpt_chat", "memgpt_minimal"]},
    )
    results = tmp_path / "kept"
    assert main(["sweep", str(failing), "--results", str(results), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "failing turns:" in out and "name_and_fact turn 2 [memgpt_minimal" in out
    assert len(list((results / "runs").glob("*.json"))) == 6
    # the scheduler always serves HTTP (on 8787 unless told): a free port, so that a shared
    # machine's other clusters do not collide with it
    with distributed.LocalCluster(
        n_workers=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as cluster:
        assert main(["sweep", str(failing), "--scheduler", cluster.scheduler_address]) == 1
    assert "name_and_fact turn 2 [memgpt_minimal" in capsys.readouterr().out
    bad = write_yaml(tmp_path / "bad.yaml", {"conversations": [{"name": "x", "turns": [3]}]})
    assert main(["sweep", str(bad)]) == 2
    assert "conversation 'x', turn 1" in capsys.readouterr().err


def test_the_cli_refuses_bad_options_clearly(tmp_path, capsys):
    path = sweep_file(tmp_path)
    assert main(["sweep", str(path), "--scheduler", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler 'nonsense' is not a Dask scheduler address" in err
    assert "tcp://host:port" in err
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(path), "--workers", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--workers: must be a whole number, not 'x'" in err and "_positive" not in err
    address = "tcp://127.0.0.1:8786"
    assert main(["sweep", str(path), "--workers", "2", "--scheduler", address]) == 2
    assert "give one or the other" in capsys.readouterr().err
    with pytest.raises(SweepError, match="workers=2 sizes the default executor"):
        Sweep(path.with_name("conversations.yaml")).run(
            concurrent.futures.ThreadPoolExecutor(1), progress=False, workers=2
        )


def test_a_remote_model_runs_on_threads_and_its_warnings_stay_with_the_run(capfd):
    from memgpt_lab.llm.server import Faults, LLMServer

    conversation = Conversation(
        "alps",
        (
            ConversationTurn("I went hiking in the Alps last weekend."),
            ConversationTurn("What did I say about the Alps?"),
        ),
    )
    # a served model whose window is smaller than the agent believes: it summarises, then
    # finds nothing left to summarise and raises
    with LLMServer(faults=Faults(overflow_after=1800)) as server:
        model = f"openai-compatible:scripted@{server.base_url}"
        with default_executor([model]) as pool:
            assert isinstance(pool, concurrent.futures.ThreadPoolExecutor)
        result = Sweep([conversation], models=[model]).run(progress=False)
    run = result[0]
    assert run["status"] == "error" and run["error"]["turn"] == 2
    assert "cannot make room" in run["error"]["message"]
    assert len(run["log"]) == 1 and "summarising and trying once more" in run["log"][0]
    assert run["turns"][0]["steps"][0]["tokens_estimated"] is False  # the server's count
    assert "summarising" not in capfd.readouterr().err


_GATED_SCRIPT = """
import concurrent.futures, logging, threading
from memgpt_lab.llm.scripted import ScriptedModel
from memgpt_lab.sweep import Conversation, ConversationTurn, Sweep, execute_run

class GatedModel:
    # the scripted model, which logs a warning and then waits for `go` on its first call
    name = "gated"

    def __init__(self):
        self.model = ScriptedModel()
        self.calling = threading.Event()
        self.go = threading.Event()

    def chat(self, messages, functions):
        if not self.calling.is_set():
            logging.getLogger("memgpt_lab.test").warning("the run's own warning")
            self.calling.set()
            assert self.go.wait(60)
        return self.model.chat(messages, functions)

model = GatedModel()
spec = Sweep([Conversation("c", (ConversationTurn("hi"),))]).specs()[0]
with concurrent.futures.ThreadPoolExecutor(1) as pool:
    future = pool.submit(execute_run, spec, model)
    assert model.calling.wait(60)
    logging.getLogger("memgpt_lab.elsewhere").warning("a warning from the caller")
    model.go.set()
    run = future.result(60)
print(run["log"])
print(logging.getLogger("memgpt_lab").handlers)
"""


def test_a_run_keeps_its_own_warnings_and_silences_no_one_else(tmp_path):
    """While a run is in progress, the package's warnings from other threads print as
    they would without a sweep (Python's last resort, in a process that configured no
    logging); the run's own are kept with it, not printed."""
    script = tmp_path / "gated.py"
    script.write_text(_GATED_SCRIPT, "utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr == "a warning from the caller\n"
    assert done.stdout.splitlines() == ['["WARNING memgpt_lab.test: the run\'s own warning"]', "[]"]


#: All of Unicode, with lone surrogates drawn often (plain characters() almost never draws them).
ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.integers(0xD800, 0xDFFF).map(chr)),
    min_size=1,
    max_size=40,
).filter(str.strip)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("\ud800")
@example("a\udfff\ud83d")
@given(text=ANY_TEXT)
def test_any_text_goes_through_a_run_and_the_store(tmp_path_factory, text: str) -> None:
    """All of Unicode, surrogates included, as a conversation's name and its user's message:
    the run completes, its frames are valid UTF-8, and it is stored and read back whole."""
    conversation = Conversation(text, (ConversationTurn(text, Expect(max_steps=3)),))
    spec = Sweep([conversation]).specs()[0]
    run = execute_run(spec)
    assert run["status"] == "passed", run["error"]
    assert run["turns"][0]["user"] == text
    for frame in run["traffic"]:
        frame["text"].encode("utf-8")
    store = ResultStore(tmp_path_factory.mktemp("store"))
    store.save(run)
    assert store.finished() == {spec.run_id}
    # as JSON carries it: a pair of lone surrogates reads back as the one character they make
    assert store.load(spec.run_id) == json.loads(json.dumps(run))
    SweepResult([run]).summary()


def test_progress_is_a_text_bar_outside_jupyter(tmp_path, conversations_file, capsys):
    sweep = Sweep(conversations_file, results_dir=tmp_path / "results")
    sweep.run(concurrent.futures.ThreadPoolExecutor(2))
    bar = capsys.readouterr().err
    assert "sweep: 100%" in bar and "3/3" in bar
    sweep.run(concurrent.futures.ThreadPoolExecutor(2))  # all finished: the bar starts full
    assert "3/3" in capsys.readouterr().err
    sweep.run(concurrent.futures.ThreadPoolExecutor(2), progress=False)
    assert capsys.readouterr().err == ""
