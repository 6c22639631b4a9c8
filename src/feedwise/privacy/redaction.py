"""`RedactUserPaths`: keeps user ids out of request logs, at every log level."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

#: The loggers a service process writes request paths to: uvicorn's error log (its
#: ``trace`` lines), the access log and, at ``--log-level trace``, the ASGI message log
#: (``uvicorn.asgi``: each request's scope, path and raw path included). A filter on a
#: logger sees only records logged to that logger itself, so each gets one.
REQUEST_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

_PLAIN = (str, bytes, int, float, bool, type(None))


class RedactUserPaths(logging.Filter):
    """Replaces the id in ``/v1/users/<id>`` of log messages (e.g. uvicorn's access log)
    with ``<user>``, so request logs never carry user ids.

    Every argument is covered: text and bytes (uvicorn's ``raw_path``) in place; a mapping
    or any other object (an ASGI scope or message at ``trace`` level) is rendered and the
    rendered text redacted; an exception's traceback text too.
    """

    _pattern = re.compile(r"(/v1/users/)[^/\s?\"'#]+")
    _bytes_pattern = re.compile(rb"(/v1/users/)[^/\s?\"'#]+")

    # inside one value of a scope (a path of its own) the id runs to the next / or ?
    _value_pattern = re.compile(r"(/v1/users/)[^/?#]+")
    _value_bytes_pattern = re.compile(rb"(/v1/users/)[^/?#]+")

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._pattern.sub(r"\1<user>", value)
        if isinstance(value, bytes | bytearray):
            return self._bytes_pattern.sub(rb"\1<user>", bytes(value))
        return value

    def _redact_object(self, value: Any, depth: int = 0) -> Any:
        """A copy of a scope-like object with every path in it redacted."""
        if isinstance(value, str):
            return self._value_pattern.sub(r"\1<user>", value)
        if isinstance(value, bytes | bytearray):
            return self._value_bytes_pattern.sub(rb"\1<user>", bytes(value))
        if depth > 8:
            return value
        if isinstance(value, Mapping):
            return {k: self._redact_object(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._redact_object(v, depth + 1) for v in value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: self.redact(v if isinstance(v, _PLAIN)
                                          else str(self._redact_object(v)))
                           for k, v in args.items()}
        elif args:
            args = args if isinstance(args, tuple) else (args,)
            if all(isinstance(a, _PLAIN) for a in args):
                # kept as arguments: uvicorn's access formatter reads them one by one
                record.args = tuple(self.redact(a) for a in args)
            else:  # a scope or message object: redact its values, render, redact the text
                record.args = tuple(self._redact_object(a) for a in args)
                try:
                    record.msg, record.args = self.redact(record.getMessage()), None
                except (TypeError, ValueError):
                    record.args = tuple(self.redact(a if isinstance(a, _PLAIN) else repr(a))
                                        for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install(loggers: tuple[str, ...] = REQUEST_LOGGERS) -> None:
    """Put one :class:`RedactUserPaths` on each of ``loggers`` (idempotent)."""
    for name in loggers:
        lg = logging.getLogger(name)
        if not any(isinstance(f, RedactUserPaths) for f in lg.filters):
            lg.addFilter(RedactUserPaths())
