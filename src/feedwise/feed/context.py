"""`UserContext`: what the engine knows about the user at request time.

It is built once per request and handed to candidate sources and predictors, so a simulator
can plug in its own predictors and read the same facts the default ones use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from feedwise.feed.types import FeedRequest


@dataclass
class UserContext:
    """One request's view of the user.

    Attributes:
        request: The request.
        user_id: The user.
        row: Row in the engine's :class:`~feedwise.feed.catalog.UserTable` (-1 if unknown).
        now_s: Request time, unix seconds.
        hour: Hour of day (UTC) of the request.
        consent_ads, consent_personalization: The user's consent.
        interests: L2-normalised interest vector over the tag space (zeros without
            personalisation consent).
        segments: Binary segment vector.
        ad_exposure: Ads the user saw in the exposure window before this request.
        excluded: Catalogue indices never to show (hidden or reported).
        served: Catalogue indices served recently: not shown again unless the catalogue
            would otherwise run dry.
    """

    request: FeedRequest
    user_id: str
    row: int
    now_s: float
    hour: int
    consent_ads: bool
    consent_personalization: bool
    interests: np.ndarray
    segments: np.ndarray
    ad_exposure: int = 0
    excluded: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    served: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
