"""SweepResult: a sweep's runs, as a table, pass rates and a before/after comparison.

A turn *passes* when it ran without an error and every check on it passed (a turn
without checks passes when it ran). Turns a failed run never reached count as
failing, with their checks, so a run that crashes early cannot look good.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

    from memgpt_lab.recorder import Recording

__all__ = ["KEY_COLUMNS", "SweepResult"]

#: The columns that identify a run; with ``turn`` they identify a row of :meth:`to_pandas`.
KEY_COLUMNS = ("preset", "model", "persona", "human", "conversation", "repeat")

#: The columns of :meth:`SweepResult.to_pandas` that hold lists, and how
#: :meth:`SweepResult.pass_rates` joins their items to group by them.
_LIST_COLUMNS = {"functions": ", ", "failed_functions": ", ", "failed_checks": "; "}

_CHANGES = {
    (True, True): "still passing",
    (False, False): "still failing",
    (False, True): "fixed",
    (True, False): "regressed",
}


class SweepResult(Sequence[dict[str, Any]]):
    """The runs of a sweep, in the sweep's order (each a dict; see
    :func:`~memgpt_lab.sweep.runner.execute_run`).

    Attributes:
        executed: runs executed by the last :meth:`Sweep.run`.
        skipped: runs found finished in ``results_dir`` and not run again.
    """

    def __init__(
        self, runs: Sequence[dict[str, Any]], *, executed: int = 0, skipped: int = 0
    ) -> None:
        self.runs = list(runs)
        self.executed = executed
        self.skipped = skipped
        self._by_id = {run["run_id"]: run for run in self.runs}

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):
            return self._by_id[index]
        return self.runs[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.runs)

    def __repr__(self) -> str:
        counts = self.status_counts()
        shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        return f"<SweepResult {len(self.runs)} runs: {shown or 'none'}>"

    # -- whole-sweep views ----------------------------------------------------

    def status_counts(self) -> dict[str, int]:
        """Runs by status: ``passed``, ``failed`` (a check), ``error`` (the run raised)."""
        counts = {"passed": 0, "failed": 0, "error": 0}
        for run in self.runs:
            counts[run["status"]] += 1
        return counts

    @property
    def passed(self) -> bool:
        """True when every run passed every check without an error."""
        return all(run["status"] == "passed" for run in self.runs)

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The runs that failed a check or raised."""
        return [run for run in self.runs if run["status"] != "passed"]

    def recording(self, run_id: str) -> Recording:
        """The run's traffic as a :class:`~memgpt_lab.recorder.Recording`."""
        from memgpt_lab.recorder import Frame, Recording

        recording = Recording()
        for frame in self._by_id[run_id]["traffic"]:
            recording.append(Frame.from_dict(frame))
        return recording

    def transcript(self, run_id: str) -> list[dict[str, Any]]:
        """The run's messages, turn after turn (user, assistant, function results)."""
        return [m for turn in self._by_id[run_id]["turns"] for m in turn["messages"]]

    # -- tables ---------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per run and turn: what :meth:`to_pandas` holds."""
        rows = []
        for run in self.runs:
            for turn in run["turns"]:
                checks = turn["checks"]
                steps = turn["steps"]
                failed = [
                    f"{c['check']}: {c['detail']}" if c["detail"] else c["check"]
                    for c in checks
                    if not c["passed"]
                ]
                rows.append(
                    {
                        "run_id": run["run_id"],
                        **{key: run[key] for key in KEY_COLUMNS},
                        "turn": turn["turn"],
                        "user": turn["user"],
                        "reply": "\n".join(turn["replies"]),
                        "functions": list(turn["functions"]),
                        "failed_functions": list(turn["failed_functions"]),
                        "steps": len(steps),
                        "prompt_tokens": sum(s["prompt_tokens"] or 0 for s in steps),
                        "completion_tokens": sum(s["completion_tokens"] or 0 for s in steps),
                        "latency": sum(s["latency"] for s in steps),
                        "checks": len(checks),
                        "checks_passed": len(checks) - len(failed),
                        "failed_checks": failed,
                        "passed": turn["error"] is None and not failed,
                        "error": turn["error"],
                        "status": run["status"],
                    }
                )
        return rows

    def to_pandas(self) -> pandas.DataFrame:
        """One row per run and turn: the key columns, ``turn``, ``user``, ``reply``,
        ``functions``, ``failed_functions``, ``steps``, ``prompt_tokens``,
        ``completion_tokens``, ``latency`` (seconds, over the turn's steps), ``checks``,
        ``checks_passed``, ``failed_checks``, ``passed``, ``error`` and the run's ``status``."""
        import pandas

        columns = ["run_id", *KEY_COLUMNS, "turn", "user", "reply", "functions"]
        columns += ["failed_functions", "steps", "prompt_tokens", "completion_tokens"]
        columns += ["latency", "checks", "checks_passed", "failed_checks", "passed", "error"]
        columns += ["status"]
        return pandas.DataFrame(self.rows(), columns=columns)

    def pass_rates(self, by: str | Sequence[str] = ("preset", "model")) -> pandas.DataFrame:
        """Pass rates grouped by any column(s) of :meth:`to_pandas`.

        Columns: ``turns``, ``turns_passed``, ``pass_rate`` (the fraction of turns that
        passed), ``checks``, ``checks_passed``, ``runs``, ``runs_passed``.

        A list column (``functions``, ``failed_functions``, ``failed_checks``) groups by
        its items joined as text (``"core_memory_replace, send_message"``; ``""`` for
        none); an empty value (``error`` of a turn that raised nothing) is a group too.
        """
        frame = self.to_pandas()
        keys = [by] if isinstance(by, str) else list(by)
        unknown = [key for key in keys if key not in frame.columns]
        if unknown:
            raise KeyError(
                f"no column {', '.join(unknown)}; columns: {', '.join(map(str, frame.columns))}"
            )
        joined = {
            key: frame[key].map(_LIST_COLUMNS[key].join) for key in keys if key in _LIST_COLUMNS
        }
        frame = frame.assign(run_passed=frame["status"] == "passed", **joined)
        grouped = frame.groupby(keys, sort=True, dropna=False)
        table = grouped.agg(
            turns=("passed", "size"),
            turns_passed=("passed", "sum"),
            checks=("checks", "sum"),
            checks_passed=("checks_passed", "sum"),
            runs=("run_id", "nunique"),
        )
        passing = frame[frame["run_passed"]]
        runs_passed = passing.groupby(keys, dropna=False)["run_id"].nunique()
        table["runs_passed"] = runs_passed.reindex(table.index, fill_value=0).astype(int)
        table.insert(2, "pass_rate", table["turns_passed"] / table["turns"])
        return table

    def compare(self, other: SweepResult, on: Sequence[str] | None = None) -> pandas.DataFrame:
        """A before/after of two sweeps, turn by turn: ``self`` is *after*, ``other`` *before*.

        Rows are matched on ``on`` (default: every key column and ``turn``); leave out a
        column to compare across it, e.g. ``on=["preset", "conversation", "turn"]`` to set
        one model's sweep against another's. Columns: ``on``, ``user``, ``passed_before``,
        ``passed_after``, ``change`` (``fixed``, ``regressed``, ``still passing``,
        ``still failing``, ``new``, ``gone``), ``reply_before``, ``reply_after``,
        ``reply_changed``, ``failed_checks_after``.

        Raises:
            KeyError: a column of ``on`` that is not a key column or ``turn``.
            ValueError: ``on`` does not identify rows uniquely in one of the sweeps.
        """
        import pandas

        keys = list(on) if on is not None else [*KEY_COLUMNS, "turn"]
        allowed = {*KEY_COLUMNS, "turn"}
        unknown = [key for key in keys if key not in allowed]
        if unknown:
            raise KeyError(
                f"cannot compare on {', '.join(unknown)}; use key columns: "
                f"{', '.join([*KEY_COLUMNS, 'turn'])}"
            )
        wanted = [*keys, "user", "passed", "reply", "failed_checks"]
        after = self.to_pandas()[wanted]
        before = other.to_pandas()[wanted]
        for name, frame in (("this sweep", after), ("the other sweep", before)):
            if frame.duplicated(keys).any():
                raise ValueError(
                    f"{', '.join(keys)} do not identify {name}'s turns uniquely; add the "
                    "columns that differ between its runs to 'on'"
                )
        merged = pandas.merge(
            before, after, on=keys, how="outer", suffixes=("_before", "_after"), indicator=True
        )

        def change(row: Any) -> str:
            if row["_merge"] == "left_only":
                return "gone"
            if row["_merge"] == "right_only":
                return "new"
            return _CHANGES[(bool(row["passed_before"]), bool(row["passed_after"]))]

        merged["change"] = merged.apply(change, axis=1) if len(merged) else []
        merged["user"] = merged["user_after"].fillna(merged["user_before"])
        merged["reply_changed"] = merged["reply_before"] != merged["reply_after"]
        columns = [*keys, "user", "passed_before", "passed_after", "change"]
        columns += ["reply_before", "reply_after", "reply_changed", "failed_checks_after"]
        return merged[columns].sort_values(keys, kind="stable").reset_index(drop=True)

    # -- text -----------------------------------------------------------------

    def summary(self, by: Sequence[str] | None = None, failures: int = 20) -> str:
        """A plain-text report: pass rates by preset and model (and by persona and human
        when the sweep varied them), then up to ``failures`` failing turns."""
        if not self.runs:
            return "no runs"
        if by is None:
            by = ["preset", "model"]
            by += [k for k in ("persona", "human") if len({r[k] for r in self.runs}) > 1]
        table = self.pass_rates(list(by)).reset_index()
        headers = [*by, "runs", "passed", "turns", "pass rate"]
        body = [
            [
                *(str(row[k]) for k in by),
                str(row["runs"]),
                str(row["runs_passed"]),
                f"{row['turns_passed']}/{row['turns']}",
                f"{row['pass_rate']:.0%}",
            ]
            for _, row in table.iterrows()
        ]
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body
        ]
        counts = self.status_counts()
        lines.append("")
        lines.append(
            f"{len(self.runs)} runs: {counts['passed']} passed, {counts['failed']} failed a "
            f"check, {counts['error']} raised"
            + (f" ({self.skipped} from earlier, {self.executed} run now)" if self.skipped else "")
        )
        bad = [row for row in self.rows() if not row["passed"]]
        if bad:
            lines.append("")
            lines.append("failing turns:")
            for row in bad[:failures]:
                what = row["error"] if row["error"] else "; ".join(row["failed_checks"])
                lines.append(
                    f"  {row['conversation']} turn {row['turn']} [{row['preset']}, "
                    f"{row['model']}, {row['persona']}, {row['human']}, "
                    f"repeat {row['repeat']}]: {what}"
                )
            if len(bad) > failures:
                lines.append(f"  ... and {len(bad) - failures} more")
        return "\n".join(lines)
