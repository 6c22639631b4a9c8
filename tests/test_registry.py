"""`ModelRegistry`: versions, metadata, promotion, loading without pickle."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from feedwise.errors import NotFoundError
from feedwise.models import get_model
from feedwise.registry import ModelRegistry


@pytest.fixture(scope="module")
def fitted(ml100k_interactions):
    return get_model("itemknn", k=20).fit(ml100k_interactions)


def test_register_promote_and_load(tmp_path, fitted):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.versions() == [] and reg.promoted() is None
    with pytest.raises(NotFoundError):
        reg.load_promoted()
    until = datetime(1998, 4, 1, tzinfo=UTC)
    v1 = reg.register(fitted, data_window={"until": until, "n_events": 100_000},
                      metrics={"ndcg@10": 0.3}, config={"model": "itemknn"})
    v2 = reg.register(fitted)
    assert (v1.version, v2.version) == ("v0001", "v0002")
    assert [v.version for v in reg.versions()] == ["v0001", "v0002"]
    meta = reg.get("v0001")
    assert meta.data_window.until == until and meta.metrics == {"ndcg@10": 0.3}
    assert meta.model == "itemknn" and meta.params["k"] == 20
    reg.promote("v0001", reason="first")
    got_meta, model = reg.load_promoted()
    assert got_meta.version == "v0001"
    users = ["1", "2", "3"]
    a = [list(x.ids) for x in fitted.recommend(users, 10)]
    b = [list(x.ids) for x in model.recommend(users, 10)]
    assert a == b
    promoted = json.loads((reg.root / "promoted.json").read_text())
    assert promoted["version"] == "v0001" and promoted["reason"] == "first"


def test_artifacts_load_without_pickle(tmp_path, fitted):
    reg = ModelRegistry(tmp_path)
    v = reg.register(fitted)
    with np.load(reg.versions_dir / v.version / "model.npz", allow_pickle=False) as z:
        assert len(z.files) > 0
    assert {p.name for p in (reg.versions_dir / v.version).iterdir()} == {
        "model.npz", "model.json", "meta.json"}


def test_unknown_versions_are_not_found(tmp_path, fitted):
    reg = ModelRegistry(tmp_path)
    reg.register(fitted)
    for bad in ("v0009", "../etc", "latest", ""):
        with pytest.raises(NotFoundError):
            reg.promote(bad)
    assert reg.promoted_version() is None
