"""Writes the request log off the hot path: a queue drained by one thread, a transaction per drain.

Answered requests come as `Finished` (the row and the texts the monitor's signals need); the
monitor's `SignalSink` embeds, flags and captures them on this thread, never the one answering.
"""

from __future__ import annotations

import logging
import queue
import threading

from slmkit.monitor import RequestRecord
from slmkit.monitor.signals import Finished, SignalSink

log = logging.getLogger("slmkit.serve")

Item = RequestRecord | Finished


class Recorder:
    """`put` never blocks and never fails a request; a failed write is logged and dropped."""

    def __init__(self, sink: SignalSink) -> None:
        self.sink = sink
        self.request_log = sink.request_log
        self._queue: queue.Queue[Item | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slmkit-request-log", daemon=True)
        self._thread.start()

    def put(self, record: Item) -> None:
        self._queue.put_nowait(record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is written; False on timeout."""
        done = threading.Event()
        self._queue.put_nowait(done)
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put_nowait(None)
        self._thread.join(timeout=30)
        self.sink.close()
        self.request_log.close()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # drain what is already there: one transaction for a burst
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [i for i in items if isinstance(i, RequestRecord | Finished)]
            try:
                self.sink.write(records, backlog=self._queue.qsize() + len(records))
            except Exception as exc:
                log.warning("could not write %d request log rows: %s", len(records), exc)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in items):
                return
