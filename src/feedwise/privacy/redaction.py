"""`RedactUserPaths`: keeps user ids out of request logs."""

from __future__ import annotations

import logging
import re


class RedactUserPaths(logging.Filter):
    """Replaces the id in ``/v1/users/<id>`` of log messages (e.g. uvicorn's access log)
    with ``<user>``, so request logs never carry user ids."""

    _pattern = re.compile(r"(/v1/users/)[^/\s?\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1<user>", a) if isinstance(a, str) else a
                                for a in (record.args if isinstance(record.args, tuple)
                                          else (record.args,)))
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1<user>", record.msg)
        return True
