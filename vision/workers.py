"""A detector off the frame path: one worker thread that runs the newest job and keeps the newest result.

    worker = LatestWorker(lambda frame: detector.detect(frame), name="persons")
    worker.submit(frame_rgb)        # ignored (False) while the worker is busy
    result = worker.take()          # the newest finished result, once, or None

Used for the person detector (``vision.pipeline``) and for hand detection
(``host.pipeline.AsyncHands``): detectors that are too slow for every frame
and whose newest result is all that matters.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class LatestWorker:
    """Runs ``work(job)`` on one thread: ``submit`` while idle, ``take`` the newest finished result once."""

    def __init__(self, work: Callable[[Any], Any], name: str = "worker") -> None:
        self.work = work
        self.processed = 0
        self._cond = threading.Condition()
        self._job: Any = None
        self._result: Any = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> bool:
        """Queue ``job`` unless the worker is busy; returns True when queued."""
        with self._cond:
            if self._busy or self._job is not None:
                return False
            self._job = job
            self._cond.notify()
            return True

    def take(self) -> Optional[Any]:
        """The newest finished result (None if none since the last take); re-raises the job's error."""
        with self._cond:
            result, self._result = self._result, None
        if isinstance(result, Exception):
            raise result
        return result

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Block until the queued job (if any) is done; True if idle in time (benchmarks, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._job is None and not self._busy, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, self._job = self._job, None
                self._busy = True
            try:
                result = self.work(job)
            except Exception as exc:  # handed to the caller by take(), not lost with the thread
                result = exc
            with self._cond:
                self._result = result
                self._busy = False
                self.processed += 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
