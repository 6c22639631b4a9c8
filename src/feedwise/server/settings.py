"""Service settings: ``FEEDWISE_*`` environment variables and an optional settings file.

Precedence, highest first: values passed to :class:`Settings` directly, environment variables
(``FEEDWISE_DB``, ``FEEDWISE_REGISTRY``, ...), then the YAML or JSON file named by
``FEEDWISE_SETTINGS_FILE``. Read them through the cached :func:`get_settings` dependency::

    FEEDWISE_DB=prod.duckdb FEEDWISE_KEYS_FILE=keys.json feedwise serve
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from feedwise.errors import ConfigError

SETTINGS_FILE_ENV = "FEEDWISE_SETTINGS_FILE"


class _FileSource(PydanticBaseSettingsSource):
    """Values from the YAML/JSON file named by ``FEEDWISE_SETTINGS_FILE`` (lowest precedence)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = _read_settings_file(os.environ.get(SETTINGS_FILE_ENV))

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def _read_settings_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read settings file ({e.strerror}); fix "
                          f"{SETTINGS_FILE_ENV} or create the file") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}"
                          ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the settings file must hold a mapping of setting -> value")
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"{p}: unknown setting(s) {unknown}; settings are "
                          f"{sorted(Settings.model_fields)}")
    return data


class Settings(BaseSettings):
    """Everything the service reads at start-up.

    Attributes:
        db: DuckDB file of the store.
        registry: Folder of the model registry.
        keys_file: JSON file of hashed API keys (written by ``feedwise keys create``).
        api_keys: Extra hashed keys, each ``"<sha256 hex>:<scope>[+<scope>...]"`` (e.g. from
            a secret manager); plain keys are never configured.
        auth_enabled: Require API keys (turn off only for local experiments).
        cors_origins: Allowed CORS origins; empty (the default) means CORS is off.
        max_batch_events: Most events one ``POST /v1/events`` may carry.
        max_body_bytes: Largest ``POST /v1/events`` body accepted (413 above it).
        max_json_body_bytes: Largest body of every other route (items, users, campaigns;
            413 above it). FastAPI decodes those bodies on the event loop, so they stay small.
        writer_max_rows: Most event rows the writer lands in one transaction.
        writer_queue_size: Pending writer jobs before producers wait (backpressure).
        writer_linger_s: How long the writer lets a batch fill before landing it.
        checkpoint_mb: Write-ahead log size (MiB) at which a commit writes the store's tables
            back. DuckDB's default, 16 MB, checkpoints every few seconds under heavy ingest,
            each a stall of the one writer (one run each on the serve benchmark's world, two
            processes, 16 feed clients, ``writer_linger_s=0``: 17.2k events/s at the default,
            19.3k at 256 MiB; 20.0k at 1 GiB before other changes, against 17.3k). A restart
            replays at most this much log.
        db_threads: Threads the store's statements run on (0: DuckDB's default, one per
            core). One (the default) keeps each landing on the writer's thread, or on the
            lowered thread of ``served_nice``, instead of taking a second core from the
            requests for its parallel parts (docs/serving.md, session 20).
        write_timeout_s: How long a request waits for its write before answering 503.
        impressions_flush_s: How often logged impressions are landed (each landing is one
            commit with a fixed cost of several ms, so fewer, larger ones serve more feeds).
            Only without ``writer_sync``.
        writer_sync: Answer a feed only once its impressions and the ad state it changed
            (ad impressions, spend) are committed (group commit: feeds that arrive meanwhile
            share one). Off (the default: on costs 2-8x the server CPU per feed in the serve
            benchmark), feeds are answered at once and a ``kill -9`` loses what the writer
            had not landed yet: up to ``impressions_flush_s`` of impressions and the ad state
            committed with them (docs/service.md, "Durability").
        reload_interval_s: How often the promoted model version is checked (0: never).
        log_impressions: Log every served slot as an impression event.
        feed_policy: ``auto`` (the FeedEngine when it can be built, else the model's list),
            ``engine`` or ``model`` (organic slots from the model only; an operator's switch).
        max_n: Largest ``n`` a feed or recommendation request may ask for.
        owner_feeds_above_n: With feed workers (``workers`` > 1), a feed asking for more
            slots than this is composed by the owner, which stands by: a worker forwards
            it. A page of 200 slots held a worker's event loop for tens of ms while the
            20-slot feeds queued behind it waited (the feed p99 under ingest 2.4-2.8x its
            value without, on the emulated slower machine, against 1.4x without such
            pages; docs/serving.md).
        metrics_public: Serve ``/metrics`` without a key (off by default: its counters are
            a side channel, e.g. duplicate events, and its latencies describe the traffic).
        metrics_scope: The scope ``/metrics`` requires when it is not public: ``metrics``
            (a key made for the scraper, which can read nothing else), ``read`` or ``admin``;
            an ``admin`` key always passes.
        keys_reload_s: How often the keys file is checked for changes (its size, times and
            inode; re-read when they change): a revoked key stops working within this long.
        switch_interval_ms: Python's thread switch interval while the app runs (Python's
            default, 5 ms). Requests run on the event loop and the writer on its own thread;
            a request that releases the GIL may wait up to this long to win it back. Shorter
            values did not lower the tail in the serve benchmark, so the default stays.
        gc_young_threshold: Allocations between two young-generation collections while the
            app runs (Python's default is 700).
        served_nice: Niceness added to the thread that lands the served impressions and
            the ad state when no event batch goes with them (Linux; 0: the writer lands
            them itself), so that a landing gives the cores to the requests in flight
            instead of stalling them. Event batches, and served rows landed with them,
            stay at the writer's priority: lowering them too cut ingest while feeds ran
            to a third (docs/serving.md, session 19; :mod:`feedwise.server.priority`).
            The writer builds the rows' table itself, at its priority: that part holds the
            GIL, and a lowered thread holding it stalls the event loop (session 23).
        materialise_n: Items per user of the served model's materialised candidate lists
            (built when a version is loaded; 0: score the model per request instead).
            docs/serving.md.
        lists_refresh_s: How often the lists of users with new engagement are recomputed.
        lists_refresh_users: Most users recomputed per refresh round.
        worker_poll_s: How often a feed worker asks the owner for what landed since (the
            engagement it folds in, the lists the owner recomputed, new posts, the others'
            ad impressions). Smaller polls spread the worker's share of the ingest (noting
            every landed event) into smaller pieces: at 0.1 s the feeds' p99 under ingest
            was lower than at 0.5 s in three alternating pairs (docs/serving.md, session 29).
        lists_cache: A folder where the served model's materialised lists are kept between
            starts (keyed by version, ``materialise_n``, shared columns and the model's
            users; emptied when a user leaves the lists); unset: built at every start.
        workers: Processes serving requests (``feedwise serve --workers``): 1, this one
            alone; more, that many feed workers (server/workers.py) and this one, which
            owns the store and stands by while they serve.
        ad_reserve_factor: With workers, each worker leaves this many times a campaign's
            recent spend over one exchange window of its budget to the owner (0: none);
            feed/adshare.py, docs/serving.md.
    """

    model_config = SettingsConfigDict(env_prefix="FEEDWISE_", extra="ignore")

    db: str = "feedwise.duckdb"
    registry: str = "registry"
    keys_file: str | None = None
    api_keys: list[str] = Field(default_factory=list)
    auth_enabled: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    max_batch_events: int = Field(default=10_000, gt=0)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0)
    writer_max_rows: int = Field(default=50_000, gt=0)
    writer_queue_size: int = Field(default=100_000, gt=0)
    writer_linger_s: float = Field(default=0.05, ge=0, le=5)
    checkpoint_mb: int = Field(default=256, ge=1, le=65_536)
    db_threads: int = Field(default=1, ge=0, le=1024)
    write_timeout_s: float = Field(default=30.0, gt=0)
    impressions_flush_s: float = Field(default=0.25, gt=0, le=10)
    writer_sync: bool = False
    reload_interval_s: float = Field(default=2.0, ge=0)
    log_impressions: bool = True
    feed_policy: Literal["auto", "engine", "model"] = "auto"
    max_n: int = Field(default=200, gt=0)
    owner_feeds_above_n: int = Field(default=50, ge=0)
    metrics_public: bool = False
    metrics_scope: Literal["metrics", "read", "admin"] = "metrics"
    keys_reload_s: float = Field(default=0.5, gt=0, le=1)
    switch_interval_ms: float = Field(default=5.0, gt=0, le=100)
    gc_young_threshold: int = Field(default=10_000, ge=100)
    served_nice: int = Field(default=10, ge=0, le=19)
    materialise_n: int = Field(default=300, ge=0)
    lists_refresh_s: float = Field(default=0.5, gt=0, le=60)
    lists_refresh_users: int = Field(default=5000, gt=0)
    worker_poll_s: float = Field(default=0.1, gt=0, le=60)
    lists_cache: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    ad_reserve_factor: float = Field(default=2.0, ge=0, le=100)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once; ``get_settings.cache_clear()`` re-reads)."""
    return Settings()
