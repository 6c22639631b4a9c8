"""`PrivacySettings`: the privacy knobs read from ``FEEDWISE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from feedwise.privacy.pseudonyms import Pseudonymizer

#: Smallest group an aggregate may describe, unless configured otherwise.
DEFAULT_K = 10


class PrivacySettings(BaseSettings):
    """Privacy settings read from ``FEEDWISE_*`` environment variables.

    Attributes:
        pseudonym_key: Secret of the user-id HMAC (``FEEDWISE_PSEUDONYM_KEY``); ``None``
            stores ids as given. At least 16 characters; keep it in a secret manager.
        retention_days: Events older than this are purged (``None``: kept).
        retention_interval_s: How often the server's scheduler purges.
        min_group_size: ``k`` of small-group suppression.
    """

    model_config = SettingsConfigDict(env_prefix="FEEDWISE_", extra="ignore")

    pseudonym_key: SecretStr | None = None
    retention_days: int | None = Field(default=None, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    min_group_size: int = Field(default=DEFAULT_K, ge=1)

    def pseudonymizer(self) -> Pseudonymizer | None:
        """The configured :class:`Pseudonymizer`, or ``None`` without a key."""
        return Pseudonymizer(self.pseudonym_key) if self.pseudonym_key is not None else None
