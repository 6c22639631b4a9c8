"""The one exception tree of feedwise.

Every error raised on purpose by feedwise derives from :class:`FeedwiseError`, so callers can
catch one type. Messages say what was wrong and how to fix it (file, row, column, value)::

    FeedwiseError
    ├── DataError          bad input data: unknown column, unparsable value, empty data set
    │   └── ChecksumError  a downloaded file does not match its published sha256
    ├── ConfigError        an invalid setting or hyperparameter
    ├── NotFittedError     a model used before ``fit`` (also a ``ValueError``, like scikit-learn)
    ├── NotFoundError      an unknown user, item, campaign or model version
    ├── ConsentError       an operation the user has not consented to
    └── AuthError          a missing or wrong API key / scope (server edge only)
"""

from __future__ import annotations


class FeedwiseError(Exception):
    """Base class of every error feedwise raises on purpose."""


class DataError(FeedwiseError, ValueError):
    """Input data is malformed or does not fit the expected schema."""


class ChecksumError(DataError):
    """A downloaded dataset file does not match its published checksum."""


class ConfigError(FeedwiseError, ValueError):
    """A configuration value or hyperparameter is invalid."""


class NotFittedError(FeedwiseError, ValueError):
    """A model was used before ``fit`` was called."""


class NotFoundError(FeedwiseError, KeyError):
    """A user, item, campaign or artifact does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConsentError(FeedwiseError):
    """The user has not consented to the requested processing."""


class AuthError(FeedwiseError):
    """Authentication or authorisation failed."""
