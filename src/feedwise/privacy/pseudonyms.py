"""`Pseudonymizer`: keyed one-way pseudonyms of user ids."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import SecretStr

from feedwise.errors import ConfigError
from feedwise.store import EventStore
from feedwise.store.base import KEY_CHECK_LABEL

#: Length of a pseudonym in hex characters (128 bits of the HMAC-SHA256 digest).
PSEUDONYM_HEX = 32


class Pseudonymizer:
    """Keyed one-way pseudonyms of user ids: ``hex(HMAC-SHA256(key, id))[:32]``.

    The same id always maps to the same pseudonym under one key, so joins, models and
    lookups work on pseudonyms; without the key nobody can test a guessed id against the
    store. The object is a plain callable (``p("alice") -> "3f…"``), which is what
    :class:`~feedwise.store.EventStore` takes.

    A store records the :meth:`fingerprint` of the key it was first opened with and
    refuses any other key (and every use of the key when none is given).

    Key rotation: pseudonyms cannot be inverted, so a new key cannot be applied to stored
    pseudonyms directly. Rotate by re-ingesting the retained raw sources into a fresh
    store opened with the new key (and re-erasing the ids on the erasure list), or, to
    rotate in place, chain the keys — ``Pseudonymizer(new_key, previous=old)`` computes
    ``HMAC(new, HMAC(old, id))`` — and rewrite the stored ids with ``HMAC(new, stored)``
    (:func:`rotate_key`). See docs/privacy.md.

    Args:
        key: The secret (str, bytes or pydantic ``SecretStr``), at least 16 bytes.
        previous: The pseudonymizer of the previous key, when keys are chained.
    """

    def __init__(self, key: str | bytes | SecretStr, *, previous: Pseudonymizer | None = None
                 ) -> None:
        if isinstance(key, SecretStr):
            key = key.get_secret_value()
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(raw) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes; generate one with "
                              "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        self.__key = raw
        self.previous = previous
        self._cache: dict[str, str] = {}

    def __call__(self, user_id: str) -> str:
        uid = str(user_id)
        out = self._cache.get(uid)
        if out is None:
            base = self.previous(uid) if self.previous is not None else uid
            out = hmac.new(self.__key, base.encode("utf-8"), hashlib.sha256
                           ).hexdigest()[:PSEUDONYM_HEX]
            if len(self._cache) < 1_000_000:
                self._cache[uid] = out
        return out

    def rekey(self, stored_id: str) -> str:
        """The new pseudonym of an id stored under :attr:`previous` (in-place rotation)."""
        return hmac.new(self.__key, str(stored_id).encode("utf-8"), hashlib.sha256
                        ).hexdigest()[:PSEUDONYM_HEX]

    def fingerprint(self) -> str:
        """What a store opened with this key records to recognise it: the pseudonym of a
        fixed label (an HMAC under the key; it reveals nothing about the key)."""
        return self(KEY_CHECK_LABEL)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<secret>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never serialise the key by accident
        raise TypeError("a Pseudonymizer holds a secret and cannot be pickled")


def rotate_key(store: EventStore, new: Pseudonymizer) -> dict[str, int]:
    """Rotate a pseudonymised store to a chained key, in place and in one transaction.

    Open the store with its current key, build ``new = Pseudonymizer(new_key,
    previous=current)`` and call this: every stored ``user_id`` (and the pseudonym in a
    reject's raw text) becomes ``new.rekey(stored)`` = ``new(raw id)``, and the store's key
    fingerprint becomes ``new.fingerprint()``, so from then on it opens with ``new`` only
    (set ``FEEDWISE_PSEUDONYM_KEY`` accordingly wherever the chain is built). Retrain models
    afterwards: artifacts hold the old pseudonyms. Tombstones cannot be rewritten (see
    docs/privacy.md, Key rotation).

    Returns:
        Rows rewritten per table.

    Raises:
        ConfigError: ``new`` has no previous key, or is not chained on the store's key.
    """
    if new.previous is None:
        raise ConfigError("rotate_key needs a chained key: Pseudonymizer(new_key, "
                          "previous=<the store's key>)")
    return store.rekey_user_ids(new, new.rekey)
