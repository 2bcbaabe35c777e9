"""One retry policy for the database and S3: six attempts, 0.5 s doubling (15.5 s of
waiting), transient failures only."""

from __future__ import annotations

import pytest

from drconsole.catalog.s3 import S3Store
from drconsole.engines.chroma.engine import ChromaEngine
from drconsole.retry import DEFAULT, RetryPolicy


def test_the_budget_is_stated_and_shared() -> None:
    assert DEFAULT.delays() == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert DEFAULT.budget_s == 15.5 and DEFAULT.describe() == "6 attempts over 15.5s"
    engine = ChromaEngine("http://127.0.0.1:1")
    assert (engine.attempts, engine.backoff_s) == (DEFAULT.attempts, DEFAULT.first_delay_s)
    engine.close()
    assert S3Store("bucket", "kb", endpoint="http://127.0.0.1:1", keys=("a", "b")).retry is DEFAULT


def test_transient_failures_are_retried_and_others_are_not() -> None:
    slept: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("down")
        return "up"

    policy = RetryPolicy(attempts=4, first_delay_s=0.1)
    assert policy.run(flaky, lambda e: isinstance(e, ConnectionError), slept.append) == "up"
    assert slept == [0.1, 0.2]
    with pytest.raises(ValueError):
        policy.run(lambda: (_ for _ in ()).throw(ValueError("bad")), lambda e: False, slept.append)
    assert slept == [0.1, 0.2], "a permanent failure is not waited on"
    calls["n"] = -10
    with pytest.raises(ConnectionError):
        policy.run(flaky, lambda e: True, slept.append)
    assert slept == [0.1, 0.2, 0.1, 0.2, 0.4], "four attempts, then the last failure"
