"""Text for the synthetic social world: comments with planted sentiment, negative bursts, and
post words with a planted engagement effect.

Three things, each with a ground truth the listening analytics, the alert detector and the
text-aware ranking can be measured against:

* **Comment text** (:func:`comment_texts`): every ``comment`` event gets a short text about
  the commented post's topic (its name or hashtag), now and then naming a brand (an
  advertiser of the world). Its sentiment is planted *by topic*: topic ``t`` draws
  negative / neutral / positive with the probabilities of ``topic_sentiment(t)``, and the
  wording is unambiguous (lexicon words a rule-based analyser reads the same way), so the
  analysed sentiment tracks the planted one.
* **Negative bursts** (:func:`inject_bursts`): extra negative comments about a keyword (a
  brand or a topic) starting at a known ``onset`` and lasting a few hours, from users of the
  world, on posts of that topic; the bursts are returned and kept in ``truth["bursts"]``.
  A world without a call (or with ``n_bursts=0``) is the world without bursts.
* **Post words** (:data:`HOOK_WORDS`): with ``synthetic_social(text_effect=x)`` each post's
  text gains a few style words; some raise and some lower the click probability by the factor
  ``exp(x * h)`` (``h`` is the sum of the post's word values, :func:`post_hooks`). With
  ``x = 0`` the words are there but do nothing: the null world for the ranking lift.

Everything draws from its own generator (seeded from the world's seed), so the rest of the
world is the same with or without text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError

#: Sub-seeds of the text generators (independent of the world's own stream).
COMMENT_STREAM = 22_001
HOOK_STREAM = 22_002
BURST_STREAM = 22_003

POSITIVE: tuple[str, ...] = (
    "Love this {kw} post, great work!", "This {kw} tip is amazing, thank you",
    "Best {kw} content I have seen all week, awesome", "So helpful, I love {kw}!",
    "Brilliant {kw} ideas, really happy I found this", "Great {kw} thread, excellent advice",
    "Wonderful {kw} post, thanks for sharing", "I really like this {kw} update, nice job",
)
NEGATIVE: tuple[str, ...] = (
    "This {kw} post is terrible", "Worst {kw} advice ever, awful",
    "I hate this {kw} nonsense, total garbage", "So disappointing, the {kw} stuff is bad",
    "Horrible {kw} take, really annoying", "This {kw} content is boring and useless",
    "Awful {kw} thread, what a waste of time", "Bad {kw} post, I am angry about this",
)
NEUTRAL: tuple[str, ...] = (
    "Where was this {kw} photo taken?", "Is this {kw} from last week?",
    "Posting about {kw} from the bus", "Anyone going to the {kw} meetup on Saturday?",
    "Which {kw} gear is in the picture?", "Saw this {kw} thing on the way home",
    "What time does the {kw} stream start?", "Reading this {kw} post on my phone",
)
BRAND_NEGATIVE: tuple[str, ...] = (
    "{brand} is terrible, my order never arrived", "Worst service ever from {brand}, awful",
    "I hate {brand}, they charged me twice", "{brand} support is useless and rude",
    "Never buying from {brand} again, horrible experience",
    "{brand} broke after one day, total garbage",
)
BRAND_POSITIVE: tuple[str, ...] = (
    "Love my new {brand} stuff, great quality", "{brand} is amazing for {kw}",
)

#: Style words of post text and their planted effect on clicks (+1 raises, -1 lowers).
HOOK_WORDS: dict[str, int] = {
    "giveaway": 1, "exclusive": 1, "secret": 1, "behindthescenes": 1, "tutorial": 1,
    "sponsoredpost": -1, "rerun": -1, "longread": -1, "repost": -1, "unboxing": -1,
    "today": 0, "weekend": 0, "notes": 0, "update": 0, "photos": 0, "thoughts": 0,
    "story": 0, "clip": 0, "list": 0, "recap": 0,
}


def topic_sentiment(n_topics: int, seed: int) -> np.ndarray:
    """Planted ``(negative, neutral, positive)`` probabilities per topic (rows sum to 1)."""
    rng = np.random.default_rng([seed, COMMENT_STREAM, 0])
    neg = rng.uniform(0.06, 0.30, n_topics)
    pos = rng.uniform(0.30, 0.60, n_topics)
    return np.column_stack([neg, 1.0 - neg - pos, pos])


def comment_texts(item_topic: np.ndarray, topic_names: Sequence[str],
                  topic_tags: Sequence[Sequence[str]], brands: Sequence[str], seed: int,
                  brand_share: float = 0.15) -> tuple[list[str], np.ndarray]:
    """One comment text per row about the topic ``item_topic[row]``.

    Returns:
        ``(texts, planted)``: the texts and the planted label per row (0 negative,
        1 neutral, 2 positive).
    """
    item_topic = np.asarray(item_topic, np.int64)
    n = len(item_topic)
    n_topics = len(topic_names)
    probs = topic_sentiment(n_topics, seed)
    rng = np.random.default_rng([seed, COMMENT_STREAM, 1])
    u = rng.random(n)
    cum = np.cumsum(probs, axis=1)[item_topic] if n else np.empty((0, 3))
    label = (u[:, None] > cum).sum(axis=1).clip(0, 2) if n else np.empty(0, np.int64)
    tpl = rng.integers(0, 1 << 30, n)
    use_tag = rng.random(n) < 0.4
    use_brand = (rng.random(n) < brand_share) & (label != 1) & bool(len(brands))
    brand_of = rng.integers(0, max(len(brands), 1), n)
    texts: list[str] = []
    for r in range(n):
        t = int(item_topic[r])
        kw = topic_tags[t][0] if use_tag[r] else topic_names[t]
        lab = int(label[r])
        if use_brand[r]:
            pool = BRAND_NEGATIVE if lab == 0 else BRAND_POSITIVE
            texts.append(pool[tpl[r] % len(pool)].format(brand=brands[brand_of[r]], kw=kw))
        else:
            pool = (NEGATIVE, NEUTRAL, POSITIVE)[lab]
            texts.append(pool[tpl[r] % len(pool)].format(kw=kw))
    return texts, np.asarray(label, np.int64)


def post_hooks(n_posts: int, seed: int) -> tuple[list[list[str]], np.ndarray]:
    """Style words per post (0 to 3 of :data:`HOOK_WORDS`) and each post's summed value."""
    rng = np.random.default_rng([seed, HOOK_STREAM])
    words = list(HOOK_WORDS)
    value = np.array([HOOK_WORDS[w] for w in words], np.float64)
    k = rng.integers(0, 4, n_posts)
    out: list[list[str]] = []
    h = np.zeros(n_posts)
    for i in range(n_posts):
        pick = rng.choice(len(words), size=int(k[i]), replace=False) if k[i] else []
        out.append([words[j] for j in pick])
        h[i] = float(value[list(pick)].sum()) if k[i] else 0.0
    return out, h


@dataclass(frozen=True)
class Burst:
    """An injected negative burst: ``n_comments`` negative comments about ``keyword`` spread
    over ``[onset, onset + duration)``."""

    keyword: str
    onset: datetime
    duration: timedelta
    n_comments: int
    topic: int

    def as_dict(self) -> dict[str, Any]:
        return {"keyword": self.keyword, "onset": self.onset.isoformat(),
                "duration_h": self.duration.total_seconds() / 3600.0,
                "n_comments": self.n_comments, "topic": self.topic}


def inject_bursts(world: Any, n_bursts: int, *, seed: int, warmup_days: float = 3.0,
                  rate_per_hour: tuple[float, float] = (8.0, 20.0),
                  hours: tuple[float, float] = (2.0, 6.0), min_gap_hours: float = 24.0,
                  keywords: Sequence[str] | None = None) -> list[Burst]:
    """Add ``n_bursts`` negative bursts to ``world.events`` (in place); returns them.

    Each burst picks a keyword (a brand of the world or a topic name), an onset after
    ``warmup_days`` (bursts about the same keyword at least ``min_gap_hours`` apart), a
    duration in ``hours`` and a rate in ``rate_per_hour``; its comments come from random
    users on random posts of the keyword's topic, at Poisson times from the onset.
    """
    if n_bursts < 0:
        raise ConfigError(f"n_bursts must be >= 0, got {n_bursts}")
    if n_bursts == 0:
        return []
    rng = np.random.default_rng([seed, BURST_STREAM])
    truth = world.truth
    start: datetime = truth["start"]
    end: datetime = truth["end"]
    names = list(truth["topic_names"])
    brands = list(truth.get("brands", []))
    items = world.items
    posts = items[items["kind"] == "post"].reset_index(drop=True)
    post_topic = np.asarray(truth["post_topic"])
    users = world.users["user_id"].to_numpy()
    pool = list(keywords) if keywords else brands + names
    span_h = (end - start).total_seconds() / 3600.0 - warmup_days * 24.0 - hours[1]
    if span_h <= 0:
        raise ConfigError("the world is too short for bursts after the warm-up: use more days")
    bursts: list[Burst] = []
    rows: list[dict[str, Any]] = []
    tries = 0
    while len(bursts) < n_bursts and tries < 1000:
        tries += 1
        kw = pool[int(rng.integers(0, len(pool)))]
        onset = start + timedelta(hours=warmup_days * 24.0 + float(rng.uniform(0, span_h)))
        onset = onset.replace(microsecond=0)
        if any(abs((onset - b.onset).total_seconds()) < min_gap_hours * 3600 for b in bursts):
            continue
        dur = float(rng.uniform(*hours))
        rate = float(rng.uniform(*rate_per_hour))
        n = max(3, int(rng.poisson(rate * dur)))
        topic = names.index(kw) if kw in names else int(rng.integers(0, len(names)))
        cand = np.flatnonzero(post_topic == topic)
        created = pd.to_datetime(posts["created_at"], utc=True)
        t = onset + pd.to_timedelta(np.sort(rng.uniform(0, dur * 3600.0, n)), unit="s")
        b = Burst(kw, onset, timedelta(hours=dur), n, topic)
        for j in range(n):
            ok = cand[(created.iloc[cand] <= t[j]).to_numpy()] if len(cand) else cand
            item = posts["item_id"].iloc[int(ok[rng.integers(0, len(ok))])] if len(ok) else \
                posts["item_id"].iloc[int(rng.integers(0, len(posts)))]
            if kw in brands:
                text = BRAND_NEGATIVE[int(rng.integers(0, len(BRAND_NEGATIVE)))].format(
                    brand=kw)
            else:
                text = NEGATIVE[int(rng.integers(0, len(NEGATIVE)))].format(kw=kw)
            rows.append({"event_id": f"{world.name}-burst{len(bursts):03d}-{j:04d}",
                         "user_id": users[int(rng.integers(0, len(users)))],
                         "item_id": item, "kind": "comment", "ts": t[j], "text": text,
                         "surface": "home"})
        bursts.append(b)
    if rows:
        extra = pd.DataFrame(rows).reindex(columns=world.events.columns)
        extra["ts"] = pd.to_datetime(extra["ts"], utc=True)
        ev = pd.concat([world.events, extra], ignore_index=True)
        world.events = ev.sort_values("ts", kind="stable").reset_index(drop=True)
    bursts.sort(key=lambda b: b.onset)
    truth["bursts"] = [b.as_dict() for b in bursts]
    return bursts
