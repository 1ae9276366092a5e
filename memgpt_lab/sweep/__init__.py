"""Sweeps: the same conversations against every combination of presets, models,
personas and humans, with results to compare, on one machine or a Dask cluster.

::

    from memgpt_lab.sweep import Sweep

    if __name__ == "__main__":  # in a script: the worker processes import it again
        sweep = Sweep("conversations.yaml", presets=["memgpt_chat", "memgpt_minimal"],
                      models=["scripted"], results_dir="results")
        result = sweep.run()                      # processes here; or run(executor=...)
        result.pass_rates(["preset", "model"])    # a pandas DataFrame
        result.to_pandas()                        # one row per run and turn

The default executor for offline models is a process pool (forkserver, else spawn)
whose workers import the main script again: in a plain script, run the sweep under
``if __name__ == "__main__":`` (a notebook and the CLI need nothing). Without it,
:meth:`Sweep.run` raises one :class:`SweepError` saying so.

On a cluster, hand it Dask's executor (nothing else changes)::

    from distributed import Client

    if __name__ == "__main__":
        with Client("tcp://scheduler:8786") as client:
            result = sweep.run(executor=client.get_executor())

- :mod:`~memgpt_lab.sweep.conversations`: conversation files and their checks.
- :mod:`~memgpt_lab.sweep.runner`: one run, plain data in and out.
- :mod:`~memgpt_lab.sweep.core`: :class:`Sweep`, the results directory.
- :mod:`~memgpt_lab.sweep.result`: :class:`SweepResult`.
"""

from __future__ import annotations

from memgpt_lab.sweep.conversations import (
    CHECK_KINDS,
    Conversation,
    ConversationError,
    ConversationTurn,
    Expect,
    load_conversations,
    parse_conversations,
)
from memgpt_lab.sweep.core import (
    TRAFFIC_FORMATS,
    ResultStore,
    Sweep,
    SweepError,
    default_executor,
    load_sweep,
    offline_model,
)
from memgpt_lab.sweep.result import KEY_COLUMNS, SweepResult
from memgpt_lab.sweep.runner import RUN_STATUSES, RunSpec, execute_run, normalise_run

__all__ = [
    "CHECK_KINDS",
    "Conversation",
    "ConversationError",
    "ConversationTurn",
    "Expect",
    "KEY_COLUMNS",
    "RUN_STATUSES",
    "ResultStore",
    "RunSpec",
    "Sweep",
    "SweepError",
    "SweepResult",
    "TRAFFIC_FORMATS",
    "default_executor",
    "execute_run",
    "load_conversations",
    "load_sweep",
    "normalise_run",
    "offline_model",
    "parse_conversations",
]
