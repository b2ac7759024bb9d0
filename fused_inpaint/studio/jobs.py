"""Jobs run one at a time per queue (one queue per device), the others wait in order.

A job's ``run(job)`` reports frames done through ``job.advance()`` and checks
``job.check_cancelled()`` between frames, which raises ``Cancelled`` once the page asked
to stop; the page polls ``describe()`` for the state, the progress and the queue.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

WAITING, RUNNING, DONE, FAILED, CANCELLED = "waiting", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class Cancelled(Exception):
    """Raised inside a job that was asked to stop."""


class JobError(Exception):
    """A job that cannot be done as asked; its one-line message goes to the page."""


@dataclass
class Job:
    """``run(job)`` does the work; ``total`` frames; ``result`` what run returned."""

    kind: str
    run: Callable[[Job], object]
    total: int
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = WAITING
    done: int = 0
    message: str | None = None
    result: object = None
    started: float | None = None
    finished: float | None = None
    first_frame_s: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    def advance(self, frames: int = 1) -> None:
        if self.done == 0 and self.first_frame_s is None:
            self.first_frame_s = time.monotonic() - self.started
        self.done += frames

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise Cancelled

    def describe(self, ahead: int = 0) -> dict:
        elapsed = ((self.finished or time.monotonic()) - self.started) if self.started else 0.0
        rate = self.done / elapsed if self.done and elapsed > 0 else None
        left = (self.total - self.done) / rate if rate and self.state == RUNNING else None
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "frames_per_s": rate,
            "seconds_left": left,
            "elapsed_s": elapsed,
            "first_frame_s": self.first_frame_s,
            "ahead": ahead,
            "message": self.message,
        }


class JobQueue:
    """One worker thread runs the queue's jobs in order; ``close()`` cancels them all."""

    def __init__(self, name: str):
        self.name = name
        self._pending: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name=f"studio-{name}", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Job:
        with self._condition:
            if self._closed:
                raise JobError("the server is stopping")
            self._jobs[job.id] = job
            self._pending.append(job)
            self._condition.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def ahead_of(self, job: Job) -> int:
        """Jobs that will run before ``job`` (the running one included)."""
        with self._condition:
            if job not in self._pending:
                return 0
            running = any(j.state == RUNNING for j in self._jobs.values())
            return self._pending.index(job) + running

    def cancel(self, job: Job) -> None:
        with self._condition:
            job.cancel_requested.set()
            if job in self._pending:  # never started: nothing to undo
                self._pending.remove(job)
                job.state, job.message = CANCELLED, "cancelled before it started"
                job.finished = job.started = time.monotonic()

    def close(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._closed = True
            for job in list(self._pending):
                self.cancel(job)
            for job in self._jobs.values():
                job.cancel_requested.set()
            self._condition.notify_all()
        self._worker.join(timeout)

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                job = self._pending.pop(0)
                job.state, job.started = RUNNING, time.monotonic()
            try:
                job.result = job.run(job)
                job.state = DONE
            except Cancelled:
                job.state, job.message = CANCELLED, f"cancelled after {job.done} frames"
            except JobError as error:
                job.state, job.message = FAILED, str(error)
            except Exception as error:  # the server stays up; the page shows what failed
                traceback.print_exc()
                job.state, job.message = FAILED, f"{type(error).__name__}: {error}"
            job.finished = time.monotonic()
