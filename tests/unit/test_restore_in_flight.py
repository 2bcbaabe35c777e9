"""restore_data with upserts in flight when one fails: the step fails promptly, naming the
failure, after waiting for the others; it never spins (it once did, at 100% CPU, forever)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from drconsole.actions import restore_data
from drconsole.errors import DrconsoleError
from drconsole.records import RecordBatch


class FailsMidFlight:
    """Upsert 0 is slow (still in flight when upsert 1 fails at once)."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def upsert(self, name: str, batch: RecordBatch) -> None:
        with self.lock:
            self.calls += 1
            number = self.calls
        if number == 1:
            time.sleep(0.3)
            return
        raise ConnectionError("Chroma went away")


def _batches(count: int):
    for n in range(count):
        yield RecordBatch([f"r{n}"], np.zeros((1, 2), np.float32), [None], [None], [None])


class _Context:
    cancel = threading.Event()


@pytest.mark.timeout(20)
def test_a_failure_while_another_upsert_is_in_flight_ends_the_step() -> None:
    engine = FailsMidFlight()
    tally = restore_data._Tally(collection="kb", task=0)
    meter = restore_data._Meter(lambda progress: None, 10, 0)
    started = time.monotonic()
    with pytest.raises(DrconsoleError, match="Chroma went away") as caught:
        restore_data._restore_task(
            engine,  # type: ignore[arg-type]
            "kb",
            _batches(10),
            skip=0,
            in_flight=2,
            tally=tally,
            meter=meter,
            context=_Context(),  # type: ignore[arg-type]
        )
    assert time.monotonic() - started < 5
    assert "after 1 records (1 batches acknowledged)" in caught.value.message
    assert engine.calls == 2, "no batch is sent after the failure"
