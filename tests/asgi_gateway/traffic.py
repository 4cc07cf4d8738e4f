"""Steady client traffic for the guard and rollout tests, with what each answer said.

`Traffic(url, "/lab/widget", rate=40)` drives about `rate` requests a second from a few
threads until stopped, noting (time, status, X-Served-By, serving pid) of every answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import httpx


@dataclass(frozen=True, slots=True)
class Answer:
    at: float  # time.monotonic() when the answer arrived
    status: int
    served_by: str | None
    pid: int | None


class Traffic:
    """Paced GET requests to `paths` (in turn) from `threads` threads, about `rate` a second."""

    def __init__(
        self, url: str, *paths: str, rate: float = 40.0, threads: int = 4, timeout_s: float = 10
    ) -> None:
        self.url = url
        self.paths = paths
        self.rate = rate
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._timeout_s = timeout_s
        self._threads = [
            threading.Thread(
                target=self._drive, args=(n, threads), daemon=True, name=f"traffic-{n}"
            )
            for n in range(threads)
        ]

    def _drive(self, n: int, threads: int) -> None:
        interval = threads / self.rate
        started = time.monotonic() + n * interval / threads
        client = httpx.Client(base_url=self.url, timeout=self._timeout_s)
        try:
            k = 0
            while not self._stop.is_set():
                if k % 10 == 9:  # a new connection now and then: it may land on another worker
                    client.close()
                    client = httpx.Client(base_url=self.url, timeout=self._timeout_s)
                path = self.paths[(n + k) % len(self.paths)]
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                else:
                    pid = response.json().get("pid") if response.status_code == 200 else None
                    self.answers.append(
                        Answer(
                            time.monotonic(),
                            response.status_code,
                            response.headers.get("x-served-by"),
                            pid,
                        )
                    )
                k += 1
                self._stop.wait(max(0.0, started + k * interval - time.monotonic()))
        finally:
            client.close()

    def since(self, at: float) -> list[Answer]:
        """The answers that arrived after `at` (time.monotonic())."""
        return [a for a in list(self.answers) if a.at > at]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
