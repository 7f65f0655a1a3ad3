"""Writes the request log off the hot path: a queue drained by one thread, a transaction per drain."""

from __future__ import annotations

import logging
import queue
import threading

from slmkit.monitor import RequestLog, RequestRecord

log = logging.getLogger("slmkit.serve")


class Recorder:
    """`put` never blocks and never fails a request; a failed write is logged and dropped."""

    def __init__(self, request_log: RequestLog) -> None:
        self.request_log = request_log
        self._queue: queue.Queue[RequestRecord | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slmkit-request-log", daemon=True)
        self._thread.start()

    def put(self, record: RequestRecord) -> None:
        self._queue.put_nowait(record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is written; False on timeout."""
        done = threading.Event()
        self._queue.put_nowait(done)
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put_nowait(None)
        self._thread.join(timeout=30)
        self.request_log.close()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # drain what is already there: one transaction for a burst
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [i for i in items if isinstance(i, RequestRecord)]
            try:
                self.request_log.append(records)
            except Exception as exc:
                log.warning("could not write %d request log rows: %s", len(records), exc)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in items):
                return
