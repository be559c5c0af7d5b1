"""The file source's read meter: bytes read of the files found, never going backwards."""

from __future__ import annotations

from pathlib import Path

from dovetail.connectors.file.progress import ReadMeter
from dovetail.core.component import ReadProgress


def test_a_stream_closed_before_finish_does_not_move_progress_back(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"x" * 1000)
    meter = ReadMeter()
    meter.plan([1000, 500])
    meter.start(1000)
    with path.open("rb", buffering=0) as stream:
        meter.opened(stream)
        stream.read(600)
        assert meter.progress() == ReadProgress(600, 1500)
    # the reader closed the file; finish() has not been called yet
    assert meter.progress() == ReadProgress(600, 1500)
    meter.finish()
    assert meter.progress() == ReadProgress(1000, 1500)
