"""One retry policy for every remote call drconsole makes (the vector database and S3): a
transient failure (no connection, a timeout, a 5xx, throttling) is tried again, waiting
0.5 s, then 1, 2, 4 and 8 s: six attempts within 15.5 s of waiting, then the step fails
and says so. A step can be retried as a whole after that; batches are idempotent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay_s: float = 0.5

    def delays(self) -> list[float]:
        """The waits between attempts (one fewer than attempts)."""
        return [self.first_delay_s * 2**n for n in range(self.attempts - 1)]

    @property
    def budget_s(self) -> float:
        return sum(self.delays())

    def run(
        self,
        call: Callable[[], T],
        transient: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """``call()``; a transient failure is tried again after each delay, the last
        one raised."""
        for delay in self.delays():
            try:
                return call()
            except Exception as error:
                if not transient(error):
                    raise
            sleep(delay)
        return call()

    def describe(self) -> str:
        return f"{self.attempts} attempts over {self.budget_s:g}s"


DEFAULT = RetryPolicy()
