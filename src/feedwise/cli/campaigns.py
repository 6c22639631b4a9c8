"""``feedwise campaigns add FILE`` / ``feedwise campaigns list``: manage ad campaigns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, console, emit, open_store
from feedwise.errors import DataError, FeedwiseError

if TYPE_CHECKING:
    from feedwise.store import EventStore


def read_campaigns(path: Path) -> list[Any]:
    """Campaigns from a YAML or JSON file: one campaign, a list, or ``{"campaigns": [...]}``.

    Raises:
        DataError: naming the file, the campaign's position and the bad field.
    """
    from pydantic import ValidationError

    from feedwise.feed.campaigns import Campaign

    if not path.exists():
        raise DataError(f"{path}: no such file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clean message
        raise DataError(f"{path}: cannot parse ({e}); expected YAML or JSON") from None
    if isinstance(doc, dict) and "campaigns" in doc:
        doc = doc["campaigns"]
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise DataError(f"{path}: expected a campaign, a list of campaigns or "
                        "{'campaigns': [...]}")
    out = []
    for i, d in enumerate(doc):
        try:
            out.append(Campaign.model_validate(d))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(campaign)"
            cid = d.get("campaign_id", "?") if isinstance(d, dict) else "?"
            raise DataError(f"{path}: campaign {i + 1} ({cid}), field {field!r}: {err['msg']}; "
                            "fix the file and run again") from None
        except FeedwiseError as e:
            raise DataError(f"{path}: campaign {i + 1}: {e}") from None
    return out


def save_campaigns(store: EventStore, campaigns: list[Any]) -> int:
    """Upsert campaigns and their creatives (as items of kind ``ad``)."""
    import pandas as pd

    store.upsert_campaigns(pd.DataFrame([c.to_row() for c in campaigns]))
    items = [{"item_id": cr.item_id, "kind": "ad", "author_id": c.advertiser_id,
              "title": cr.title, "text": cr.text, "tags": cr.tags or c.target_tags,
              "campaign_id": c.campaign_id} for c in campaigns for cr in c.creatives]
    store.upsert_items(items)
    return len(campaigns)


def logged_spend(store: EventStore) -> dict[str, tuple[float, float]]:
    """Campaign id -> (spend today (UTC day), spend in total): the money on the logged ad
    events, by the report's convention (:mod:`feedwise.analytics.scope`: an ad event's
    ``value``, else the campaign's bid; events of users who withdrew analytics consent left
    out), so ``campaigns list`` and the report show one figure. The serving ledger
    (``ad_spend``, which paces a running service) is not a second figure: served ad
    impressions carry their charge as ``value``."""
    from datetime import UTC, datetime, timedelta

    from feedwise.analytics import Scope
    from feedwise.analytics.campaigns import campaign_results

    now = datetime.now(UTC)
    end = now + timedelta(days=1)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, list[float]] = {}
    for i, start in enumerate((today, datetime(1970, 1, 1, tzinfo=UTC))):
        scope = Scope(store, start, end, k=1)
        try:
            df = campaign_results(scope)
        finally:
            scope.close()
        for cid, v in zip(df.get("campaign_id", []), df.get("spend", []), strict=True):
            out.setdefault(str(cid), [0.0, 0.0])[i] = 0.0 if v is None or v != v else float(v)
    return {k: (v[0], v[1]) for k, v in out.items()}


campaigns_app = typer.Typer(help="Manage ad campaigns (YAML/JSON files).", no_args_is_help=True)


@campaigns_app.command("add")
def add(file: Annotated[Path, typer.Argument(help="Campaign file (.yaml, .yml, .json).")],
        db: DbOption = None) -> None:
    """Validate campaigns from FILE and add (or replace) them in the store.

    Example: feedwise campaigns add spring.yaml  (file format: docs/campaigns.md)
    """
    campaigns = read_campaigns(file)
    with open_store(db) as store:
        n = save_campaigns(store, campaigns)
    console.print(f"added {n} campaign(s): {', '.join(c.campaign_id for c in campaigns)}")


@campaigns_app.command("list")
def list_(db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """List campaigns with bids, budgets, targeting, caps and spend.

    Example: feedwise campaigns list --format csv
    """
    from feedwise.feed.campaigns import load_campaigns

    with open_store(db) as store:
        campaigns = load_campaigns(store)
        spend = logged_spend(store)
    rows = [{"campaign_id": c.campaign_id, "advertiser_id": c.advertiser_id,
             "status": c.status, "bid_model": c.bid_model, "bid": c.bid,
             "daily_budget": c.daily_budget, "total_budget": c.total_budget,
             "spend_today": float(spend.get(c.campaign_id, (0.0, 0.0))[0]),
             "spend_total": float(spend.get(c.campaign_id, (0.0, 0.0))[1]),
             "targeting": ", ".join(c.target_tags + c.target_segments) or "-",
             "caps": ", ".join(f"{f.max_impressions}/{f.window_s:g}s"
                               for f in c.frequency_caps) or "-",
             "creatives": len(c.creatives)} for c in campaigns]
    emit(rows, fmt, title="campaigns")


def register(app: typer.Typer) -> None:
    app.add_typer(campaigns_app, name="campaigns")
