"""Loaders for public interaction datasets: MovieLens, Last.fm HetRec 2011 and FilmTrust.

Each loader reads the files as their publisher ships them into one :class:`Dataset`: events in
the store's vocabulary, items, an optional social graph and optional user attributes.

Where the files come from:

* ``data_dir=`` (or ``$FEEDWISE_DATASETS_DIR``) points at a local folder of data sets
  (sub-folders ``movielens-100k``, ``movielens-latest-small``,
  ``lastfm-hetrec2011-2k``, ``filmtrust``), or directly at one dataset's folder. Nothing
  is downloaded.
* Otherwise the official zip is downloaded once into the cache (``$FEEDWISE_DATA_HOME`` or
  ``~/.cache/feedwise``) with a progress bar and unpacked there.

Either way the sha256 of every main file is checked against its published value; a mismatch
raises :class:`~feedwise.errors.ChecksumError` naming the file, both hashes and the fix.

Choices worth knowing:

* Ids are kept as published, as strings (``"196"``); ``kind`` is ``"rating"`` for explicit
  ratings (``value`` = the rating) and ``"click"`` for Last.fm listening counts
  (``value`` = number of plays of that artist, summed over the user's history).
  :meth:`Dataset.interactions` weights each pair by ``value``; the store's own
  :meth:`~feedwise.store.EventStore.interactions` weights a click by the configured click
  weight instead (plays are kept in ``value`` for analytics).
* Last.fm ``user_artists`` and FilmTrust carry no time: every such event gets the fixed time
  :data:`LASTFM_TS` / :data:`FILMTRUST_TS` (the data sets' publication), so temporal
  splits are meaningless on them; use random per-user splits.
* MovieLens genres become item tags (as published, e.g. ``"Children's"``; ``unknown`` and
  ``(no genres listed)`` give no tag). Last.fm artist names become titles and the artist's
  most used user tags (up to :data:`LASTFM_TOP_TAGS`) become tags.
* Social edges are a ``src, dst`` table: Last.fm friendships in both directions (the file
  already lists each friendship twice), FilmTrust trust statements as directed
  (trustor -> trustee).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.request import urlopen

import numpy as np
import pandas as pd

from feedwise.errors import ChecksumError, DataError, NotFoundError
from feedwise.interactions import Interactions, InteractionWeights
from feedwise.schema import ITEM_COLUMNS

if TYPE_CHECKING:
    from feedwise.store import EventStore, IngestReport

#: Time given to Last.fm plays, which carry none (HetRec 2011 release, after all activity).
LASTFM_TS = pd.Timestamp("2011-05-01T00:00:00Z")
#: Time given to FilmTrust ratings, which carry none (the data set's publication year).
FILMTRUST_TS = pd.Timestamp("2013-01-01T00:00:00Z")
#: How many of an artist's most used user tags become the item's tags.
LASTFM_TOP_TAGS = 5

EVENT_FRAME_COLUMNS = ["user_id", "item_id", "kind", "ts", "value"]
ITEM_FRAME_COLUMNS = ["item_id", "kind", "title", "tags", "author_id", "created_at"]


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and which files must match which sha256."""

    name: str
    folder: str
    url: str
    description: str
    files: Mapping[str, str]  # file name -> sha256
    extra_files: tuple[str, ...] = ()  # read when present, not checked
    citation: str = ""


SPECS: dict[str, DatasetSpec] = {
    "movielens-100k": DatasetSpec(
        name="movielens-100k", folder="movielens-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        description="MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies, "
                    "with genres and user demographics (GroupLens, research use only)",
        files={
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        },
        extra_files=("u.genre", "u.occupation", "u.info", "README"),
        citation="F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: "
                 "History and Context. ACM TiiS 5, 4."),
    "movielens-latest-small": DatasetSpec(
        name="movielens-latest-small", folder="movielens-latest-small",
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        description="MovieLens latest (small): 100,836 ratings (0.5-5) by 610 users on "
                    "9,742 movies, with genres and free-text tags (GroupLens, research use)",
        files={
            "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
        },
        extra_files=("links.csv", "README.txt"),
        citation="F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: "
                 "History and Context. ACM TiiS 5, 4."),
    "lastfm-hetrec2011": DatasetSpec(
        name="lastfm-hetrec2011", folder="lastfm-hetrec2011-2k",
        url="https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
        description="Last.fm HetRec 2011: 92,834 user-artist play counts by 1,892 users, "
                    "12,717 friendships, artist tags (non-commercial use)",
        files={
            "user_artists.dat": "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b",
            "user_friends.dat": "9a3a8f7fa5f5ec832335e5b58ed69a4cf27c6f6f6afcde62134810eea46445a7",
            "user_taggedartists.dat":
                "c4a9ffae9ab47a9f9b2f0678ab1f7e5c1db4ca818837d8cddd1f5699c5bbf048",
        },
        extra_files=("artists.dat", "tags.dat", "readme.txt"),
        citation="Ivan Cantador, Peter Brusilovsky and Tsvi Kuflik. 2011. HetRec 2011 "
                 "workshop, RecSys 2011."),
    "filmtrust": DatasetSpec(
        name="filmtrust", folder="filmtrust",
        url="https://guoguibing.github.io/librec/datasets/filmtrust.zip",
        description="FilmTrust: 35,497 ratings (0.5-4) by 1,508 users on 2,071 films and "
                    "1,853 directed trust statements",
        files={
            "ratings.txt": "241167424e24d588e8871d68641e94ead98d5b3a4f0db01ef3181a74ad35e7a1",
            "trust.txt": "8e2013750bb0fe3f4fd9810185420423a744f8b20f7888b73e10cab3b3479fde",
        },
        extra_files=("readme.txt",),
        citation="Guibing Guo, Jie Zhang and Neil Yorke-Smith. 2013. A Novel Bayesian "
                 "Similarity Measure for Recommender Systems. IJCAI 2013."),
}

#: The edge kind each dataset's social graph is stored as (``Dataset.load_into``).
EDGE_KINDS: dict[str, str] = {"lastfm-hetrec2011": "friend", "filmtrust": "trust"}

#: Dataset name -> short description (what ``feedwise datasets list`` shows).
DATASETS: dict[str, str] = {name: spec.description for name, spec in SPECS.items()}


def spec_of(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; raises ``NotFoundError`` for unknown names."""
    try:
        return SPECS[name]
    except KeyError:
        raise NotFoundError(f"unknown dataset {name!r}; known datasets: "
                            f"{', '.join(SPECS)}") from None


# ---------------------------------------------------------------------------- the result
@dataclass
class Dataset:
    """A loaded dataset in feedwise's vocabulary.

    Attributes:
        name: The dataset's name (a key of :data:`DATASETS`).
        events: ``user_id``, ``item_id`` (str), ``kind`` (``rating`` | ``click``),
            ``ts`` (tz-aware UTC) and ``value`` (the rating, or the play count).
        items: ``item_id``, ``kind`` (``post``), ``title``, ``tags`` (list of str),
            ``author_id`` and ``created_at`` (None when unknown).
        edges: Social graph as ``src``, ``dst`` user ids, or ``None``.
        users: One row per user with the published attributes (``user_id`` first), or
            ``None`` when the dataset has none.
        path: The folder the files were read from.
    """

    name: str
    events: pd.DataFrame
    items: pd.DataFrame
    edges: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.events["item_id"].nunique())

    def counts(self) -> dict[str, int]:
        """Events, users, items (with events), catalogue items and edges."""
        return {"events": len(self.events), "users": self.n_users, "items": self.n_items,
                "catalogue_items": len(self.items),
                "edges": 0 if self.edges is None else len(self.edges)}

    def interactions(self, weights: InteractionWeights | Mapping[str, float] | None = None
                     ) -> Interactions:
        """The user x item matrix of the events.

        Args:
            weights: ``None`` weighs each pair by its ``value`` (the rating, or the play
                count). An :class:`~feedwise.interactions.InteractionWeights` or a mapping
                kind -> multiplier scales ``value`` per kind (``rating`` uses the
                ``rating`` weight, Last.fm plays the ``click`` weight); rows whose weight
                is not positive are dropped.

        A user who rated an item twice keeps the latest rating (FilmTrust has three such
        pairs); repeated plays or clicks add up.
        """
        ev = self.events
        # unix seconds: from_frame reads numeric times directly
        secs = (pd.to_datetime(ev["ts"], utc=True) - pd.Timestamp(0, tz="UTC")
                ).dt.total_seconds().to_numpy()
        rating = (ev["kind"] == "rating").to_numpy()
        if rating.any():  # a re-rating replaces the earlier rating (latest, then file order)
            order = np.argsort(secs, kind="stable")
            dup = ev.iloc[order].duplicated(subset=["user_id", "item_id", "kind"], keep="last")
            keep = np.ones(len(ev), bool)
            keep[order[dup.to_numpy() & rating[order]]] = False
            ev, secs = ev[keep], secs[keep]
        w = ev["value"].to_numpy(dtype=np.float64, na_value=1.0)
        if weights is not None:
            mult = (weights.model_dump() if isinstance(weights, InteractionWeights)
                    else dict(weights))
            kinds = ev["kind"].to_numpy(dtype=object)
            factor = np.zeros(len(ev))
            for k in pd.unique(kinds):
                factor[kinds == k] = float(mult.get(k, 0.0))
            w = w * factor
        frame = pd.DataFrame({"user_id": ev["user_id"].to_numpy(),
                              "item_id": ev["item_id"].to_numpy(), "weight": w, "ts": secs})
        frame = frame[frame["weight"] > 0]
        if frame.empty:
            raise DataError(f"{self.name}: no event has a positive weight with {weights!r}")
        labels = None
        if "title" in self.items.columns:
            t = self.items.dropna(subset=["title"])
            labels = dict(zip(t["item_id"].astype(str), t["title"].astype(str), strict=True))
        return Interactions.from_frame(frame, weight="weight", ts="ts", item_labels=labels)

    def load_into(self, store: EventStore) -> IngestReport:
        """Upsert the items (and users' attributes), ingest the events and add the social
        graph (Last.fm: ``friend`` edges, FilmTrust: ``trust`` edges, undated) into ``store``.

        Users are upserted with their published attributes as JSON; their consent flags
        take the schema's opt-out defaults (granted) with ``consent_source='dataset'``.

        Returns:
            The :class:`~feedwise.store.IngestReport` of the events.
        """
        items = self.items[[c for c in self.items.columns if c in ITEM_COLUMNS]].copy()
        items["tags"] = items["tags"].map(lambda t: list(t) if t is not None else [])
        store.upsert_items(items)
        if self.users is not None and len(self.users):
            attrs = self.users.drop(columns=["user_id"])
            records = attrs.to_dict(orient="records")
            store.upsert_users(pd.DataFrame({
                "user_id": self.users["user_id"].astype(str).to_numpy(),
                "consent_personalization": True, "consent_ads": True,
                "consent_analytics": True,
                "consent_updated_at": pd.Series(pd.NaT, index=range(len(self.users)),
                                                dtype="datetime64[us, UTC]").to_numpy(),
                "consent_source": "dataset",
                "attributes": [json.dumps(r, default=str) for r in records]}))
        report = store.ingest(self.events[EVENT_FRAME_COLUMNS],
                              source_name=f"dataset:{self.name}")
        if self.edges is not None and len(self.edges):  # the social graph, undated
            store.add_edges(pd.DataFrame({
                "src_id": self.edges["src"].astype(str).to_numpy(),
                "dst_id": self.edges["dst"].astype(str).to_numpy(),
                "kind": EDGE_KINDS.get(self.name, "follow")}),
                source_name=f"dataset:{self.name}:edges")
        return report

    def __repr__(self) -> str:
        c = self.counts()
        return (f"Dataset({self.name!r}: {c['events']} events, {c['users']} users, "
                f"{c['items']} items, {c['edges']} edges)")


# ---------------------------------------------------------------------------- files
def data_home() -> Path:
    """The download cache: ``$FEEDWISE_DATA_HOME`` or ``~/.cache/feedwise``."""
    env = os.environ.get("FEEDWISE_DATA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "feedwise"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(spec: DatasetSpec, folder: Path, *, downloaded: bool = False) -> None:
    """Check every main file of ``spec`` in ``folder`` against its sha256.

    Raises:
        DataError: A main file is missing.
        ChecksumError: A main file's content differs from the published one.
    """
    for fname, expected in spec.files.items():
        path = folder / fname
        if not path.is_file():
            raise DataError(f"{path}: missing file of dataset {spec.name!r}; the folder must "
                            f"hold {', '.join(spec.files)} (unpacked from {spec.url})")
        actual = sha256_of(path)
        if actual != expected:
            fix = (f"the download was discarded; fetch again (feedwise datasets fetch "
                   f"{spec.name}); if it keeps failing the published file has changed"
                   if downloaded else
                   f"replace it with the unchanged file from {spec.url}, or point data_dir "
                   f"at an unmodified copy")
            raise ChecksumError(f"{path}: sha256 mismatch for dataset {spec.name!r}: expected "
                                f"{expected}, got {actual}; the file is corrupt or modified: "
                                f"{fix}")


#: Signature of a download function: (url, destination file, show progress) -> None.
Fetcher = Callable[[str, Path, bool], None]


def download(url: str, dest: Path, progress: bool = True) -> None:
    """Download ``url`` to ``dest`` (atomically, through a ``.part`` file) with a progress bar."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
            total = int(total) if total else None
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                          disable=not progress, transient=True) as bar:
                task = bar.add_task(f"downloading {dest.name}", total=total)
                got = 0
                while block := resp.read(1 << 16):
                    out.write(block)
                    got += len(block)
                    bar.advance(task, len(block))
        if total is not None and got != total:
            part.unlink(missing_ok=True)
            raise DataError(f"cannot download {url}: the connection closed after {got} of "
                            f"{total} bytes; the partial file was deleted, fetch again (or "
                            f"download the zip yourself, unpack it and pass data_dir= (CLI: "
                            f"--data-dir) or set FEEDWISE_DATASETS_DIR)")
    except (URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        part.unlink(missing_ok=True)
        raise DataError(f"cannot download {url}: {e}; check the network, or download the zip "
                        f"yourself, unpack it and pass data_dir= (CLI: --data-dir) or set "
                        f"FEEDWISE_DATASETS_DIR") from None
    part.replace(dest)


def _unpack(spec: DatasetSpec, archive: Path, folder: Path) -> None:
    """Unpack the files of ``spec`` from ``archive`` flat into ``folder`` (no zip-slip)."""
    wanted = set(spec.files) | set(spec.extra_files)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: not a zip archive (download interrupted?); it was "
                        f"deleted, fetch again") from None
    with zf:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or base not in wanted or "__MACOSX" in info.filename:
                continue
            if base not in members or len(info.filename) < len(members[base].filename):
                members[base] = info
        missing = sorted(set(spec.files) - set(members))
        if missing:
            raise DataError(f"{archive}: the archive lacks {missing}; has "
                            f"{[i.filename for i in zf.infolist()][:20]}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}-", dir=folder.parent))
        try:
            for base, info in members.items():
                with zf.open(info) as src, open(tmp / base, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            if folder.exists():
                shutil.rmtree(folder)
            tmp.replace(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def locate(name: str, *, data_dir: str | os.PathLike | None = None,
           progress: bool = True, fetcher: Fetcher | None = None) -> Path:
    """The verified folder holding dataset ``name``, downloading it first if needed.

    Args:
        name: A key of :data:`DATASETS`.
        data_dir: A local folder of data sets (one sub-folder per data set, or one dataset's own
            folder); defaults to ``$FEEDWISE_DATASETS_DIR``. When neither is set, the
            official zip is downloaded into :func:`data_home` (once).
        progress: Show a progress bar while downloading.
        fetcher: Download function (tests pass a fake); defaults to :func:`download`.

    Raises:
        NotFoundError: Unknown dataset name.
        DataError: Folder or file missing, or the download failed.
        ChecksumError: A file does not match its published sha256.
    """
    spec = spec_of(name)
    local = data_dir if data_dir is not None else os.environ.get("FEEDWISE_DATASETS_DIR")
    if local:
        root = Path(local).expanduser()
        for folder in (root / spec.folder, root):
            if (folder / next(iter(spec.files))).is_file():
                verify(spec, folder)
                return folder
        raise DataError(f"{root}: no {spec.folder}/ folder with {', '.join(spec.files)}; "
                        f"unpack {spec.url} there (or point data_dir at the folder that holds "
                        f"the datasets)")
    folder = data_home() / spec.folder
    archive = data_home() / "downloads" / spec.url.rsplit("/", 1)[-1]
    if all((folder / f).is_file() for f in spec.files):
        try:
            verify(spec, folder, downloaded=True)
            return folder
        except ChecksumError:
            # the unpacked copy was modified: unpack it again from the kept archive below
            # (downloaded afresh when the archive is gone)
            pass
    if not archive.is_file():
        (fetcher or download)(spec.url, archive, progress)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _unpack(spec, archive, folder)
    try:
        verify(spec, folder, downloaded=True)
    except ChecksumError:
        # a corrupt download must not be reused: the next fetch downloads afresh
        archive.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


# ---------------------------------------------------------------------------- readers
def _read_text(path: Path) -> str:
    """File content as text: UTF-8 when valid, else latin-1; CRLF normalised."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_table(path: Path, sep: str, names: list[str] | None = None, *,
                header: bool = False, dtype: Any = str) -> pd.DataFrame:
    df = pd.read_csv(StringIO(_read_text(path)), sep=sep, header=0 if header else None,
                     names=names, dtype=dtype, keep_default_na=False, na_values=[""],
                     engine="c", quoting=3 if sep != "," else 0)
    if df.isna().all(axis=1).any():
        df = df[~df.isna().all(axis=1)]
    return df


def _events(users: pd.Series, items: pd.Series, kind: str, ts: pd.Series | pd.Timestamp,
            value: pd.Series) -> pd.DataFrame:
    n = len(users)
    if isinstance(ts, pd.Timestamp):
        ts = pd.Series(pd.DatetimeIndex(np.full(n, ts.value, dtype="int64")).tz_localize("UTC"))
    return pd.DataFrame({"user_id": users.astype(str).str.strip().to_numpy(dtype=object),
                         "item_id": items.astype(str).str.strip().to_numpy(dtype=object),
                         "kind": kind, "ts": pd.to_datetime(ts.to_numpy(), utc=True),
                         "value": pd.to_numeric(value).astype("float64").to_numpy()})


def _items(item_ids: pd.Series, titles: pd.Series | None, tags: list[list[str]],
           created_at: pd.Series | None = None) -> pd.DataFrame:
    n = len(item_ids)
    created = (pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
               if created_at is None else pd.to_datetime(created_at.to_numpy(), utc=True))
    return pd.DataFrame({
        "item_id": item_ids.astype(str).str.strip().to_numpy(dtype=object),
        "kind": "post",
        "title": (np.full(n, None, dtype=object) if titles is None
                  else titles.to_numpy(dtype=object)),
        "tags": pd.Series(tags, dtype=object).to_numpy(),
        "author_id": np.full(n, None, dtype=object),
        "created_at": created,
    })


def _unix(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.to_numeric(seconds).astype("int64"), unit="s", utc=True)


def _load_ml100k(folder: Path) -> Dataset:
    r = _read_table(folder / "u.data", "\t", ["user_id", "item_id", "rating", "ts"])
    events = _events(r["user_id"], r["item_id"], "rating", _unix(r["ts"]), r["rating"])
    genre_names = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                   "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                   "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    if (folder / "u.genre").is_file():
        g = _read_table(folder / "u.genre", "|", ["genre", "idx"])
        genre_names = list(g.sort_values("idx", key=lambda s: s.astype(int))["genre"])
    cols = ["item_id", "title", "release", "video_release", "url"] + genre_names
    it = _read_table(folder / "u.item", "|", cols)
    flags = it[genre_names].fillna("0").astype(int).to_numpy(bool)
    names = np.array(genre_names, dtype=object)
    tags = [[g for g in names[row] if g != "unknown"] for row in flags]
    created = pd.to_datetime(it["release"], format="%d-%b-%Y", errors="coerce", utc=True)
    items = _items(it["item_id"], it["title"], tags, created)
    u = _read_table(folder / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip"])
    u["age"] = pd.to_numeric(u["age"]).astype("int64")
    return Dataset("movielens-100k", events, items, None, u.reset_index(drop=True), folder)


def _load_ml_latest_small(folder: Path) -> Dataset:
    r = _read_table(folder / "ratings.csv", ",", header=True)
    events = _events(r["userId"], r["movieId"], "rating", _unix(r["timestamp"]), r["rating"])
    m = _read_table(folder / "movies.csv", ",", header=True)
    tags = [[g for g in str(s).split("|") if g and g != "(no genres listed)"]
            for s in m["genres"].fillna("")]
    items = _items(m["movieId"], m["title"], tags)
    return Dataset("movielens-latest-small", events, items, None, None, folder)


def _load_lastfm(folder: Path) -> Dataset:
    ua = _read_table(folder / "user_artists.dat", "\t", header=True)
    events = _events(ua["userID"], ua["artistID"], "click", LASTFM_TS, ua["weight"])
    fr = _read_table(folder / "user_friends.dat", "\t", header=True)
    src, dst = fr["userID"].str.strip(), fr["friendID"].str.strip()
    edges = pd.DataFrame({"src": pd.concat([src, dst]).to_numpy(dtype=object),
                          "dst": pd.concat([dst, src]).to_numpy(dtype=object)})
    edges = edges[edges["src"] != edges["dst"]].drop_duplicates().reset_index(drop=True)

    artist_ids = pd.Series(pd.unique(ua["artistID"].str.strip()))
    titles = pd.Series([None] * len(artist_ids), dtype=object)
    if (folder / "artists.dat").is_file():
        a = _read_table(folder / "artists.dat", "\t", header=True)
        a["id"] = a["id"].str.strip()
        artist_ids = pd.Series(pd.unique(pd.concat([a["id"], artist_ids])))
        titles = artist_ids.map(dict(zip(a["id"], a["name"], strict=True)))
    tag_lists: dict[str, list[str]] = {}
    if (folder / "tags.dat").is_file():
        tg = _read_table(folder / "tags.dat", "\t", header=True)
        tag_name = dict(zip(tg["tagID"].str.strip(), tg["tagValue"], strict=True))
        uta = _read_table(folder / "user_taggedartists.dat", "\t", header=True)
        counts = (uta.groupby(["artistID", "tagID"]).size().rename("n").reset_index()
                  .sort_values(["artistID", "n", "tagID"], ascending=[True, False, True]))
        top = counts.groupby("artistID").head(LASTFM_TOP_TAGS)
        top = top.assign(tag=top["tagID"].map(tag_name)).dropna(subset=["tag"])
        tag_lists = top.groupby("artistID")["tag"].agg(list).to_dict()
    tags = [tag_lists.get(i, []) for i in artist_ids]
    items = _items(artist_ids, titles, tags)
    return Dataset("lastfm-hetrec2011", events, items, edges, None, folder,
                   meta={"ts_note": f"plays carry no time; all set to {LASTFM_TS.isoformat()}"})


def _load_filmtrust(folder: Path) -> Dataset:
    r = _read_table(folder / "ratings.txt", r"\s+", ["user_id", "item_id", "rating"])
    events = _events(r["user_id"], r["item_id"], "rating", FILMTRUST_TS, r["rating"])
    t = _read_table(folder / "trust.txt", r"\s+", ["src", "dst", "trust"])
    edges = pd.DataFrame({"src": t["src"].str.strip().to_numpy(dtype=object),
                          "dst": t["dst"].str.strip().to_numpy(dtype=object)})
    ids = pd.Series(np.sort(pd.unique(events["item_id"]).astype(np.int64)).astype(str))
    items = _items(ids, None, [[] for _ in range(len(ids))])
    return Dataset("filmtrust", events, items, edges.reset_index(drop=True), None, folder,
                   meta={"ts_note": f"ratings carry no time; all set to "
                                    f"{FILMTRUST_TS.isoformat()}"})


_READERS: dict[str, Callable[[Path], Dataset]] = {
    "movielens-100k": _load_ml100k,
    "movielens-latest-small": _load_ml_latest_small,
    "lastfm-hetrec2011": _load_lastfm,
    "filmtrust": _load_filmtrust,
}


def load(name: str, *, data_dir: str | Path | None = None) -> Dataset:
    """Load a public dataset, fetching and verifying it first if needed.

    Args:
        name: ``"movielens-100k"``, ``"movielens-latest-small"``, ``"lastfm-hetrec2011"``
            or ``"filmtrust"`` (see :data:`DATASETS`).
        data_dir: A local folder of data sets (one sub-folder each); defaults to
            ``$FEEDWISE_DATASETS_DIR``, else the download cache.

    Returns:
        The :class:`Dataset`.

    Raises:
        NotFoundError: Unknown dataset name.
        DataError: Missing files, failed download or unreadable content.
        ChecksumError: A file differs from the published one.

    Example:
        >>> ds = load("movielens-100k", data_dir="data")  # doctest: +SKIP
        >>> ds.interactions().shape  # doctest: +SKIP
        (943, 1682)
    """
    folder = locate(name, data_dir=data_dir)
    try:
        return _READERS[name](folder)
    except (ValueError, KeyError, pd.errors.ParserError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{folder}: cannot read dataset {name!r}: {e}") from None


def citation(name: str) -> str:
    """How to cite dataset ``name``."""
    return spec_of(name).citation
