"""Dataset loaders on the real files in ../shared/data, checksums and the download path."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedwise.datasets import DATASETS, Dataset, load, loaders
from feedwise.errors import ChecksumError, DataError, NotFoundError
from feedwise.interactions import InteractionWeights

EXPECTED = {  # name: (events, users, items with events, edges) from ../shared/data/README.md
    "movielens-100k": (100_000, 943, 1_682, 0),
    "movielens-latest-small": (100_836, 610, 9_724, 0),
    "lastfm-hetrec2011": (92_834, 1_892, 17_632, 25_434),
    "filmtrust": (35_497, 1_508, 2_071, 1_853),
}


@pytest.fixture(scope="module")
def datasets(shared_data: Path) -> dict[str, Dataset]:
    return {name: load(name, data_dir=shared_data) for name in EXPECTED}


def test_registry_lists_every_loader() -> None:
    assert set(DATASETS) == set(EXPECTED)
    assert all(isinstance(d, str) and d for d in DATASETS.values())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_match_published(datasets: dict[str, Dataset], name: str) -> None:
    ds = datasets[name]
    n_events, n_users, n_items, n_edges = EXPECTED[name]
    assert ds.name == name
    assert len(ds.events) == n_events
    assert ds.events["user_id"].nunique() == n_users
    assert ds.events["item_id"].nunique() == n_items
    assert (0 if ds.edges is None else len(ds.edges)) == n_edges


@pytest.mark.parametrize("name", list(EXPECTED))
def test_frames_follow_the_contract(datasets: dict[str, Dataset], name: str) -> None:
    ds = datasets[name]
    ev = ds.events
    assert list(ev.columns) == ["user_id", "item_id", "kind", "ts", "value"]
    assert isinstance(ev["ts"].dtype, pd.DatetimeTZDtype) and str(ev["ts"].dt.tz) == "UTC"
    assert all(isinstance(x, str) for x in ev["item_id"].head(50))
    assert all(isinstance(x, str) for x in ev["user_id"].head(50))
    assert not ev[["user_id", "item_id", "kind", "ts", "value"]].isna().any().any()
    assert set(ev["kind"]) == ({"click"} if name == "lastfm-hetrec2011" else {"rating"})
    it = ds.items
    for col in ("item_id", "kind", "title", "tags", "author_id", "created_at"):
        assert col in it.columns
    assert set(it["kind"]) == {"post"}
    assert it["item_id"].is_unique
    assert all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in it["tags"])
    assert set(ev["item_id"]) <= set(it["item_id"])
    if ds.edges is not None:
        assert list(ds.edges.columns) == ["src", "dst"]
        assert (ds.edges["src"] != ds.edges["dst"]).all()


def test_movielens_100k_details(datasets: dict[str, Dataset]) -> None:
    ds = datasets["movielens-100k"]
    assert ds.events["value"].between(1, 5).all()
    toy = ds.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story (1995)"
    assert toy["tags"] == ["Animation", "Children's", "Comedy"]
    assert toy["created_at"] == pd.Timestamp("1995-01-01", tz="UTC")
    # latin-1 titles decode (u.item is not UTF-8)
    assert ds.items["title"].str.contains("é").any()
    assert ds.users is not None and len(ds.users) == 943
    assert list(ds.users.columns) == ["user_id", "age", "gender", "occupation", "zip"]
    first = ds.events.iloc[0]
    assert (first["user_id"], first["item_id"], first["value"]) == ("196", "242", 3.0)
    assert first["ts"] == pd.Timestamp(881250949, unit="s", tz="UTC")


def test_movielens_latest_small_details(datasets: dict[str, Dataset]) -> None:
    ds = datasets["movielens-latest-small"]
    assert len(ds.items) == 9_742
    assert ds.events["value"].between(0.5, 5).all()
    jumanji = ds.items.set_index("item_id").loc["2"]
    assert jumanji["tags"] == ["Adventure", "Children", "Fantasy"]
    no_genre = ds.items[ds.items["tags"].map(len) == 0]
    assert len(no_genre) > 0  # "(no genres listed)" gives no tag


def test_lastfm_details(datasets: dict[str, Dataset]) -> None:
    ds = datasets["lastfm-hetrec2011"]
    assert (ds.events["ts"] == loaders.LASTFM_TS).all()
    assert ds.events["value"].min() >= 1  # plays
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "MALICE MIZER"
    assert "visual kei" in items.loc["1", "tags"]
    assert items["tags"].map(len).max() <= loaders.LASTFM_TOP_TAGS
    # friendships are symmetric: every edge appears in both directions
    e = ds.edges
    fwd = set(zip(e["src"], e["dst"], strict=True))
    assert all((b, a) in fwd for a, b in fwd)
    assert len(fwd) == 2 * 12_717


def test_filmtrust_details(datasets: dict[str, Dataset]) -> None:
    ds = datasets["filmtrust"]
    assert ds.events["value"].between(0.5, 4).all()
    assert ("2", "966") in set(zip(ds.edges["src"], ds.edges["dst"], strict=True))
    # directed: trust is not mirrored
    fwd = set(zip(ds.edges["src"], ds.edges["dst"], strict=True))
    assert not all((b, a) in fwd for a, b in fwd)


def test_interactions_weights(datasets: dict[str, Dataset]) -> None:
    ml = datasets["movielens-100k"]
    inter = ml.interactions()
    assert inter.shape == (943, 1682)
    assert inter.nnz == 100_000
    assert inter.matrix.sum() == pytest.approx(ml.events["value"].sum())
    assert inter.label(inter.item_col("1")) == "Toy Story (1995)"
    doubled = ml.interactions(InteractionWeights(rating=2.0))
    assert doubled.matrix.sum() == pytest.approx(2 * inter.matrix.sum())
    ft = datasets["filmtrust"].interactions()
    # user 308 rated item 235 twice (4, then 1.5): the later rating wins
    assert ft.matrix[ft.user_row("308"), ft.item_col("235")] == pytest.approx(1.5)
    fm = datasets["lastfm-hetrec2011"]
    plays = fm.interactions()
    row = fm.events.iloc[0]
    assert plays.matrix[plays.user_row(row["user_id"]), plays.item_col(row["item_id"])] == \
        pytest.approx(row["value"])
    with pytest.raises(DataError):
        fm.interactions({"rating": 1.0})  # no click weight: nothing left


def test_load_into_store(datasets: dict[str, Dataset], store) -> None:
    ds = datasets["movielens-100k"]
    report = ds.load_into(store)
    assert report.accepted == 100_000 and report.rejected == 0
    assert store.count_events() == 100_000
    items = store.items()
    assert len(items) == 1682
    toy = items.set_index("item_id").loc["1"]
    assert list(toy["tags"]) == ["Animation", "Children's", "Comedy"]
    users = store.users()
    assert len(users) == 943 and '"occupation"' in users["attributes"].iloc[0]
    again = ds.load_into(store)
    assert again.accepted == 0 and again.duplicates == 100_000
    inter = store.interactions()
    assert inter.shape == (943, 1682)


def test_unknown_name_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="known datasets"):
        load("movielens-1b", data_dir=tmp_path)
    with pytest.raises(DataError, match="no movielens-100k"):
        load("movielens-100k", data_dir=tmp_path)


def test_env_var_and_dataset_folder(shared_data: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEEDWISE_DATASETS_DIR", str(shared_data))
    assert len(load("filmtrust").events) == 35_497
    monkeypatch.delenv("FEEDWISE_DATASETS_DIR")
    # data_dir may also be the dataset's own folder
    assert len(load("filmtrust", data_dir=shared_data / "filmtrust").edges) == 1_853


def _tampered_copy(shared_data: Path, tmp_path: Path, folder: str, fname: str) -> Path:
    dst = tmp_path / folder
    shutil.copytree(shared_data / folder, dst)
    f = dst / fname
    f.chmod(0o644)
    data = bytearray(f.read_bytes())
    data[10] = ord("7") if data[10] != ord("7") else ord("8")
    f.write_bytes(bytes(data))
    return tmp_path


def test_tampered_file_raises_checksum_error(shared_data: Path, tmp_path: Path) -> None:
    root = _tampered_copy(shared_data, tmp_path, "filmtrust", "trust.txt")
    with pytest.raises(ChecksumError) as exc:
        load("filmtrust", data_dir=root)
    msg = str(exc.value)
    assert "trust.txt" in msg
    assert loaders.SPECS["filmtrust"].files["trust.txt"] in msg  # expected hash
    assert loaders.sha256_of(root / "filmtrust" / "trust.txt") in msg  # actual hash
    assert "replace" in msg  # the fix


def _zip_of(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_download_path_with_fake_fetch(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FEEDWISE_DATASETS_DIR", raising=False)
    monkeypatch.setenv("FEEDWISE_DATA_HOME", str(tmp_path / "cache"))
    src = shared_data / "filmtrust"
    # the published zip nests its files in a folder; add a decoy to be ignored
    served = _zip_of({"filmtrust/ratings.txt": (src / "ratings.txt").read_bytes(),
                      "filmtrust/trust.txt": (src / "trust.txt").read_bytes(),
                      "__MACOSX/filmtrust/._trust.txt": b"junk",
                      "filmtrust/readme.txt": b"readme"}, tmp_path / "served.zip")
    calls: list[str] = []

    class FakeResponse:
        def __init__(self, data: bytes) -> None:
            self._data, self._pos = data, 0
            self.headers = {"Content-Length": str(len(data))}

        def read(self, n: int = -1) -> bytes:
            chunk = self._data[self._pos:self._pos + n] if n >= 0 else self._data[self._pos:]
            self._pos += len(chunk)
            return chunk

        def __enter__(self) -> FakeResponse:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def fake_urlopen(url: str, timeout: float = 0) -> FakeResponse:
        calls.append(url)
        return FakeResponse(served.read_bytes())

    monkeypatch.setattr(loaders, "urlopen", fake_urlopen)
    ds = load("filmtrust")
    assert calls == [loaders.SPECS["filmtrust"].url]
    assert len(ds.events) == 35_497 and len(ds.edges) == 1_853
    assert ds.path == tmp_path / "cache" / "filmtrust"
    assert (ds.path / "readme.txt").read_bytes() == b"readme"
    assert not (ds.path / "._trust.txt").exists()
    # cached: a second load downloads nothing
    load("filmtrust")
    assert len(calls) == 1


def test_downloaded_tampered_zip_raises(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FEEDWISE_DATASETS_DIR", raising=False)
    monkeypatch.setenv("FEEDWISE_DATA_HOME", str(tmp_path / "cache"))
    src = shared_data / "filmtrust"

    def fake_fetch(url: str, dest: Path, progress: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _zip_of({"ratings.txt": (src / "ratings.txt").read_bytes(),
                 "trust.txt": b"1 2 1\n"}, dest)

    with pytest.raises(ChecksumError, match="fetch again"):
        loaders.locate("filmtrust", fetcher=fake_fetch, progress=False)
    # the corrupt download is discarded, so the next fetch downloads again
    assert not (tmp_path / "cache" / "downloads" / "filmtrust.zip").exists()
    assert not (tmp_path / "cache" / "filmtrust").exists()


@pytest.mark.parametrize("archive_kept", [True, False])
def test_modified_cache_is_restored(shared_data: Path, tmp_path: Path, monkeypatch,
                                    archive_kept: bool) -> None:
    """A modified cached copy is unpacked again from the kept zip, or, with the zip gone
    (deleted to save space), downloaded afresh: never a failure on every later fetch."""
    monkeypatch.delenv("FEEDWISE_DATASETS_DIR", raising=False)
    monkeypatch.setenv("FEEDWISE_DATA_HOME", str(tmp_path / "cache"))
    src = shared_data / "filmtrust"
    calls = []

    def fake_fetch(url: str, dest: Path, progress: bool) -> None:
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _zip_of({"ratings.txt": (src / "ratings.txt").read_bytes(),
                 "trust.txt": (src / "trust.txt").read_bytes()}, dest)

    folder = loaders.locate("filmtrust", fetcher=fake_fetch, progress=False)
    if not archive_kept:
        (tmp_path / "cache" / "downloads" / "filmtrust.zip").unlink()
    (folder / "trust.txt").write_bytes(b"1 2 1\n")
    assert loaders.locate("filmtrust", fetcher=fake_fetch, progress=False) == folder
    assert loaders.sha256_of(folder / "trust.txt") == loaders.SPECS["filmtrust"].files["trust.txt"]
    assert len(calls) == (1 if archive_kept else 2)


class _Truncated:
    """A response whose connection closes before Content-Length bytes arrived."""

    def __init__(self, data: bytes, announced: int, error: Exception | None = None) -> None:
        self._data, self._error = data, error
        self.headers = {"Content-Length": str(announced)}

    def read(self, n: int = -1) -> bytes:
        chunk, self._data = self._data, b""
        if not chunk and self._error is not None:
            raise self._error
        return chunk

    def __enter__(self) -> _Truncated:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_partial_download_is_not_kept(tmp_path: Path, monkeypatch) -> None:
    from http.client import IncompleteRead

    dest = tmp_path / "downloads" / "x.zip"
    monkeypatch.setattr(loaders, "urlopen", lambda url, timeout=0: _Truncated(b"PK" * 10, 1000))
    with pytest.raises(DataError, match="20 of 1000 bytes"):
        loaders.download("https://example.org/x.zip", dest, progress=False)
    assert not dest.exists() and not list(tmp_path.rglob("*.part"))

    err = IncompleteRead(b"PK", 998)
    monkeypatch.setattr(loaders, "urlopen", lambda url, timeout=0: _Truncated(b"PK", 1000, err))
    with pytest.raises(DataError, match="cannot download"):
        loaders.download("https://example.org/x.zip", dest, progress=False)
    assert not dest.exists() and not list(tmp_path.rglob("*.part"))


def test_download_failure_is_a_clean_error(tmp_path: Path, monkeypatch) -> None:
    from urllib.error import URLError

    monkeypatch.delenv("FEEDWISE_DATASETS_DIR", raising=False)
    monkeypatch.setenv("FEEDWISE_DATA_HOME", str(tmp_path / "cache"))

    def offline(url: str, timeout: float = 0):
        raise URLError("no network")

    monkeypatch.setattr(loaders, "urlopen", offline)
    with pytest.raises(DataError, match="data_dir"):
        load("movielens-100k")
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_zip_without_main_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FEEDWISE_DATASETS_DIR", raising=False)
    monkeypatch.setenv("FEEDWISE_DATA_HOME", str(tmp_path / "cache"))

    def fake_fetch(url: str, dest: Path, progress: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _zip_of({"ml-100k/u.data": b"1\t1\t5\t0\n"}, dest)

    with pytest.raises(DataError, match="lacks"):
        loaders.locate("movielens-100k", data_dir=None, fetcher=fake_fetch, progress=False)


def test_crlf_and_latin1_reader(tmp_path: Path) -> None:
    f = tmp_path / "x.dat"
    f.write_bytes("id\tname\r\n1\tCaf\xe9\r\n2\tB\r\n".encode("latin-1"))
    df = loaders._read_table(f, "\t", header=True)
    assert list(df["name"]) == ["Café", "B"]
    assert list(df.columns) == ["id", "name"]
    assert np.array_equal(df["id"].to_numpy(dtype=object), np.array(["1", "2"], dtype=object))
