"""Monitoring: the request log that serving writes and monitoring / retraining read.

Never imports `slmkit.serve`: the server depends on the log, not the other way round.
"""

from slmkit.monitor.requests import RequestLog, RequestRecord

__all__ = ["RequestLog", "RequestRecord"]
