"""Export: everything held about a user as JSON-ready data (the right of access)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from feedwise.privacy.consent import get_consent
from feedwise.privacy.erasure import USER_EXPORT_FORMAT
from feedwise.schema import utc
from feedwise.store import EventStore


def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, np.ndarray | list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def export_user(store: EventStore, user_id: str, *, now: datetime) -> dict[str, Any]:
    """Everything the store holds about ``user_id`` as JSON-ready data (right of access).

    Returns:
        ``{"format", "user_id", "stored_id", "exported_at", "consent", "erased",
        "tables": {table: rows}}`` where ``tables`` has the user's rows of every table with
        a ``user_id`` column (``events``, ``users``, ``consent_log``, profiles, ad
        impressions, and ``rejects``: the rejected rows whose user id is the user's) and, as
        ``items``, the posts the user authored; every row is found by those id columns,
        never by searching text. ``stored_id`` is the pseudonym (``None`` when ids are
        stored as given). ``format`` comes first: erasure recognises (and deletes) a saved
        export of the user by it.
    """
    key = store.user_key(user_id)
    tables = {t: [{n: _jsonable(x) for n, x in row.items()} for row in rows]
              for t, rows in store.user_rows(user_id).items()}
    consent = get_consent(store, user_id)
    return {"format": USER_EXPORT_FORMAT,
            "user_id": str(user_id), "stored_id": key if key != str(user_id) else None,
            "exported_at": utc(now).isoformat(),
            "consent": _jsonable(consent.model_dump()) if consent else None,
            "erased": store.is_erased(user_id), "tables": tables}


def dumps_export(export: Mapping[str, Any]) -> str:
    """The export as indented JSON text."""
    return json.dumps(export, indent=2, default=str)
