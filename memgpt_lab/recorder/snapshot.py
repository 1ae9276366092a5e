"""Golden traffic snapshots on syrupy: :class:`WebSocketSnapshotExtension`.

A snapshot is a recording normalised (:class:`~memgpt_lab.recorder.normalise.Normaliser`:
times, ids and uuids as placeholders) and stored as readable JSON, one frame
per line, under ``__snapshots__/<test module>/<test name>.ws.json``. A mismatch
is shown frame by frame (:mod:`memgpt_lab.recorder.diff`): message types and
texts, not a wall of JSON. Used through the ``ws_snapshot`` fixture of the
pytest plugin (:mod:`memgpt_lab.testing`)::

    def test_greeting(ws_recording, mock_websocket, ws_snapshot):
        run_turn(mock_websocket)
        assert ws_recording == ws_snapshot

``pytest --snapshot-update`` writes or rewrites the files. Needs syrupy.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from memgpt_lab import _json
from memgpt_lab.recorder.diff import diff_frames
from memgpt_lab.recorder.frame import Frame
from memgpt_lab.recorder.normalise import NormalisedFrame, Normaliser

__all__ = ["WebSocketSnapshotExtension", "dump_snapshot", "load_snapshot", "snapshot_extension"]

# Stored data is already normalised: comparing it again must change nothing.
_AS_STORED = Normaliser(times=False, ids=False, uuids=False)


def dump_snapshot(frames: Iterable[Frame], normaliser: Normaliser) -> str:
    """The snapshot text of some frames: a JSON list, one normalised frame per line."""
    lines = [
        json.dumps(item, ensure_ascii=False, separators=(", ", ": "))
        for item in normaliser.to_data(frames)
    ]
    text = "[\n" + ",\n".join(f"  {line}" for line in lines) + "\n]\n" if lines else "[]\n"
    # A lone surrogate cannot be UTF-8: keep it as the JSON escape it stands for.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def load_snapshot(text: str) -> list[Frame]:
    """Frames that normalise (with nothing further to replace) to what a snapshot stored.

    Raises:
        ValueError: the text is not a snapshot.
    """
    data = _json.loads(text)
    if not isinstance(data, list):
        raise ValueError("a WebSocket snapshot is a JSON list of frames")
    return [NormalisedFrame.frame_from_dict(item, seq) for seq, item in enumerate(data, 1)]


def _frames(data: Any) -> list[Frame]:
    from memgpt_lab.recorder.recording import Recording

    if isinstance(data, Recording):
        return data.frames()
    if isinstance(data, Frame):
        return [data]
    if isinstance(data, (list, tuple)) and all(isinstance(f, Frame) for f in data):
        return list(data)
    raise TypeError(
        f"ws_snapshot compares a Recording or a list of Frames, not {type(data).__name__}"
    )


class WebSocketSnapshotExtension(SingleFileSnapshotExtension):
    """Stores a :class:`~memgpt_lab.recorder.Recording` as normalised, readable JSON.

    ``normaliser`` decides what is replaced; :func:`snapshot_extension` makes
    the extension for another one.
    """

    file_extension = "ws.json"
    _write_mode = WriteMode.TEXT
    normaliser: ClassVar[Normaliser] = Normaliser()

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return dump_snapshot(_frames(data), self.normaliser)

    def diff_lines(self, serialized_data: Any, snapshot_data: Any) -> Iterator[str]:
        """The stored snapshot (left) against the recording (right), frame by frame."""
        try:
            stored = load_snapshot(str(snapshot_data)) if snapshot_data else []
            fresh = load_snapshot(str(serialized_data))
        except (ValueError, KeyError, TypeError):
            yield from super().diff_lines(serialized_data, snapshot_data)
            return
        diff = diff_frames(stored, fresh, _AS_STORED)
        # pytest shows about eight lines unless -vv: one header line, one line of context.
        yield from diff.format(
            labels=("snapshot", "recording"), context=1, compact=True
        ).splitlines()


@functools.cache
def snapshot_extension(normaliser: Normaliser) -> type[WebSocketSnapshotExtension]:
    """The snapshot extension for another normaliser (one class per normaliser).

    Example, in a ``conftest.py``::

        @pytest.fixture
        def ws_snapshot(snapshot):
            normaliser = Normaliser(seq=True, rules=[(r"\\d+ ms", "<ms>")])
            return snapshot.use_extension(snapshot_extension(normaliser))
    """
    return type(
        "WebSocketSnapshotExtension",
        (WebSocketSnapshotExtension,),
        {"normaliser": normaliser, "__module__": __name__},
    )
