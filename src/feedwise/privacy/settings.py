"""`PrivacySettings`: the privacy knobs read from ``FEEDWISE_*`` environment variables."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from feedwise.errors import ConfigError
from feedwise.privacy.pseudonyms import Pseudonymizer

#: Smallest group an aggregate may describe, unless configured otherwise.
DEFAULT_K = 10


class PrivacySettings(BaseSettings):
    """Privacy settings read from ``FEEDWISE_*`` environment variables.

    Attributes:
        pseudonym_key: Secret of the user-id HMAC (``FEEDWISE_PSEUDONYM_KEY``); ``None``
            stores ids as given. At least 16 characters; keep it in a secret manager. A
            store records the key's fingerprint and refuses any other key.
        pseudonym_key_previous: The key before a chained in-place rotation
            (``FEEDWISE_PSEUDONYM_KEY_PREVIOUS``): ids are then
            ``HMAC(key, HMAC(previous, id))`` (see :func:`~feedwise.privacy.pseudonyms.rotate_key`).
        retention_days: Events older than this are purged (``None``: kept).
        retention_interval_s: How often the server's scheduler purges.
        min_group_size: ``k`` of small-group suppression.
        erasure_paths: Folders whose saved models and exports erasure cleans besides the
            registry (``FEEDWISE_ERASURE_PATHS``, separated by ``os.pathsep``; default
            ``models``, the CLI's model folder); see :meth:`erasure_folders`.
        erasure_compact: Rewrite the database file after each erasure so deleted rows
            leave no bytes behind (``FEEDWISE_ERASURE_COMPACT``; turn off for a large
            store and erase in batches, compacting after the last).
    """

    model_config = SettingsConfigDict(env_prefix="FEEDWISE_", extra="ignore")

    pseudonym_key: SecretStr | None = None
    pseudonym_key_previous: SecretStr | None = None
    retention_days: int | None = Field(default=None, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    min_group_size: int = Field(default=DEFAULT_K, ge=1)
    erasure_paths: str = ""
    erasure_compact: bool = True

    def erasure_folders(self) -> list[str]:
        """The folders of :attr:`erasure_paths`, in order, without blanks."""
        return [p for p in self.erasure_paths.split(os.pathsep) if p.strip()]

    def pseudonymizer(self) -> Pseudonymizer | None:
        """The configured :class:`Pseudonymizer` (chained on the previous key when one is
        set), or ``None`` without a key."""
        if self.pseudonym_key is None:
            if self.pseudonym_key_previous is not None:
                raise ConfigError("FEEDWISE_PSEUDONYM_KEY_PREVIOUS is set without "
                                  "FEEDWISE_PSEUDONYM_KEY; set both (a chained key) or neither")
            return None
        previous = (Pseudonymizer(self.pseudonym_key_previous)
                    if self.pseudonym_key_previous is not None else None)
        return Pseudonymizer(self.pseudonym_key, previous=previous)
