"""The social graph as stored data: follow, unfollow, friend, unfriend, block, unblock and
trust acts between users (``edges``), validated and deduplicated as events are.

One row per act, ``src_id`` acting on ``dst_id`` at ``ts`` (NULL: an undated graph, such
as Last.fm's friends or FilmTrust's trust, whose edges stand from the start). What stands
at a time is read by :meth:`Edges.edges_as_of`: per pair and relation the acts up to that
time are replayed in order, so a later ``unfollow`` ends a ``follow`` and an edge made after
the time is not there yet (replay-safe). ``friend`` is symmetric: either side's ``friend``
makes it, either side's ``unfriend`` ends it, and it is returned in both directions.

Erasure, export and retention find a user's edges by ``src_id`` *or* ``dst_id``
(``store/privacy.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from feedwise.errors import DataError
from feedwise.schema import utc
from feedwise.store.base import StoreBase
from feedwise.store.ingest import IngestReport, clean_error
from feedwise.store.privacy import tombstone_digest
from feedwise.store.tables import EDGE_COLUMNS

#: Every act an edge row can record.
EDGE_KINDS = ("follow", "unfollow", "friend", "unfriend", "block", "unblock", "trust")
#: The relations those acts make or end: act -> (relation, makes it).
RELATION = {"follow": ("follow", True), "unfollow": ("follow", False),
            "friend": ("friend", True), "unfriend": ("friend", False),
            "block": ("block", True), "unblock": ("block", False), "trust": ("trust", True)}
#: The fields of an edge row (what a mapping may name).
EDGE_FIELDS = ("edge_id", "src_id", "dst_id", "kind", "ts")
#: Longest user id or edge id accepted.
MAX_ID = 256
#: File layouts the dataset loaders and ``feedwise ingest --edges`` know by name:
#: (column names or None for a header row, delimiter, mapping).
EDGE_PRESETS: dict[str, tuple[list[str] | None, str, dict[str, str]]] = {
    # Last.fm HetRec 2011 user_friends.dat: userID<TAB>friendID, header, both directions
    "lastfm-friends": (None, "\t", {"src_id": "userID", "dst_id": "friendID",
                                    "kind": "=friend"}),
    # FilmTrust trust.txt: trustor trustee 1, no header
    "filmtrust-trust": (["trustor", "trustee", "value"], " ",
                        {"src_id": "trustor", "dst_id": "trustee", "kind": "=trust"}),
}
_FIX_TS = "give an ISO-8601 time or unix seconds, or leave it empty for an undated edge"


def parse_edge_mapping(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"src_id=a,dst_id=b,kind==follow"`` (``==`` a constant), a dict, or a preset name,
    as a field -> column dict."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        m = dict(spec)
    elif spec in EDGE_PRESETS:
        m = dict(EDGE_PRESETS[spec][2])
    else:
        m = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise DataError(f"edge mapping entry {part!r} must look like field=column "
                                "(or field==constant), e.g. src_id=user,dst_id=friend,"
                                "kind==friend")
            k, v = part.split("=", 1)
            m[k.strip()] = v.strip()
    unknown = sorted(set(m) - set(EDGE_FIELDS))
    if unknown:
        raise DataError(f"edge mapping names unknown field(s) {unknown}; the fields are "
                        f"{', '.join(EDGE_FIELDS)}")
    return m


def read_edge_file(path: str | Path, *, mapping: str | Mapping[str, str] | None = None,
                   columns: list[str] | None = None, delimiter: str | None = None,
                   header: bool | None = None, fmt: str | None = None) -> pd.DataFrame:
    """A file of edges (CSV/TSV/space-separated text, JSONL or Parquet) as a DataFrame of
    text columns, its columns renamed to the edge fields by ``mapping``.

    Raises:
        DataError: The file cannot be read, or a mapped column is not in it.
    """
    p = Path(path)
    if isinstance(mapping, str) and mapping in EDGE_PRESETS:
        cols, delim, _ = EDGE_PRESETS[mapping]
        columns = columns or cols
        delimiter = delimiter or delim
    if not p.is_file():
        raise DataError(f"{p}: no such file; give the path of an edges file")
    kind = fmt or {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                   ".ndjson": "jsonl"}.get(p.suffix.lower(), "csv")
    try:
        if kind == "parquet":
            df = pd.read_parquet(p)
        elif kind == "jsonl":
            df = pd.read_json(p, lines=True, dtype=False)
        else:
            if header is None:
                header = columns is None
            sep = delimiter or _sniff(p)
            df = pd.read_csv(p, sep=sep, header=0 if header else None, names=columns,
                             dtype=str, keep_default_na=False, skip_blank_lines=True,
                             encoding="utf-8", encoding_errors="replace",
                             engine="python" if sep == " " else "c")
            df.columns = [str(c).strip() for c in df.columns]
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: cannot read the edges: {clean_error(e)}") from None
    return apply_edge_mapping(df, parse_edge_mapping(mapping), name=str(p))


def _sniff(p: Path) -> str:
    with p.open("r", encoding="utf-8", errors="replace") as f:
        line = f.readline()
    for d in ("\t", ",", ";", "|"):
        if d in line:
            return d
    return " "


def apply_edge_mapping(df: pd.DataFrame, m: Mapping[str, str], *, name: str = "<edges>"
                       ) -> pd.DataFrame:
    """``df`` with its columns renamed to the edge fields (``m``: field -> column, or
    ``"=value"`` for a constant); fields neither mapped nor present are left out.

    Raises:
        DataError: A mapped column is not in ``df``.
    """
    out = pd.DataFrame(index=df.index)
    for f in EDGE_FIELDS:
        col = m.get(f, f)
        if col.startswith("="):
            out[f] = col[1:]
        elif col in df.columns:
            out[f] = df[col]
        elif f in m:
            have = ", ".join(map(str, df.columns))
            raise DataError(f"{name}: the mapping reads field {f!r} from column {col!r}, "
                            f"which is not in the file (columns: {have}); fix the mapping")
    used = {m.get(f, f) for f in EDGE_FIELDS}
    out.attrs["ignored_columns"] = tuple(str(c) for c in df.columns if c not in used)
    return out


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _ts(v: Any, unit: str) -> tuple[pd.Timestamp | None, str | None]:
    """(time, None), (None, None) for no time, or (None, reason)."""
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None, None
    if isinstance(v, datetime):
        return pd.Timestamp(utc(v)), None
    s = str(v).strip()
    if not s:
        return None, None
    try:
        x = float(s)
    except ValueError:
        x = None
    try:
        t = (pd.Timestamp(x, unit=unit, tz="UTC") if x is not None
             else pd.Timestamp(s))
    except (ValueError, OverflowError):
        return None, f"ts {s[:40]!r} is not a time; {_FIX_TS}"
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    t = t.tz_convert("UTC")
    latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    if t < pd.Timestamp("1970-01-01", tz="UTC") or t > latest:
        return None, f"ts {s[:40]!r} is outside [1970-01-01, now + 1 day]; {_FIX_TS}"
    return t, None


class Edges(StoreBase):
    """The social graph (part of :class:`~feedwise.store.EventStore`)."""

    def add_edges(self, edges: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                  source_name: str | None = None, ts_unit: str = "s") -> IngestReport:
        """Validate and land edge rows (fields ``src_id``, ``dst_id``, ``kind``, optional
        ``ts`` and ``edge_id``), in one transaction.

        User ids are given as the outside world knows them and stored through
        :meth:`user_key` (pseudonymised when the store is). A row with a missing id, an
        unknown kind, a user acting on themself, an id over 256 characters or a bad time
        goes to ``rejects`` (source, 1-based row, field, reason with its fix, the row as
        JSON with stored ids, the stored ``src_id`` as ``user_id``); the valid rows of the
        batch still land. ``edge_id`` (default: a digest of the stored ids, kind and time)
        dedupes: a row whose id is already used with the same content is a duplicate, with
        different content a reject. Rows naming an erased user (either side) are skipped
        and counted as ``erased``, not kept anywhere.
        """
        t0 = time.perf_counter()
        name = source_name or "<api>"
        if ts_unit not in ("s", "ms", "us"):
            raise DataError(f"ts_unit must be 's', 'ms' or 'us', not {ts_unit!r}")
        if isinstance(edges, pd.DataFrame):
            df = edges
        else:
            df = pd.DataFrame([dict(e) for e in edges])
        ignored = tuple(df.attrs.get("ignored_columns", ())) or tuple(
            str(c) for c in df.columns if c not in EDGE_FIELDS)
        recs = df.to_dict("records")
        keys: dict[str, str] = {}

        def key(raw: str) -> str:
            if raw not in keys:
                keys[raw] = self.user_key(raw)
            return keys[raw]

        good: list[dict[str, Any]] = []
        bad: list[tuple[int, str, str, dict[str, Any], str | None]] = []
        for i, r in enumerate(recs, start=1):
            src, dst = _text(r.get("src_id")), _text(r.get("dst_id"))
            kind, eid = _text(r.get("kind")), _text(r.get("edge_id"))
            ssrc = key(src) if src is not None and len(src) <= MAX_ID else None
            sdst = key(dst) if dst is not None and len(dst) <= MAX_ID else None
            raw = {"edge_id": eid, "src_id": ssrc if ssrc is not None else (
                       None if src is None else src[:40]),
                   "dst_id": sdst if sdst is not None else (None if dst is None else dst[:40]),
                   "kind": kind, "ts": None if r.get("ts") is None else str(r.get("ts"))[:60]}
            if self.pseudonymizer is not None:  # never a raw id beside pseudonyms
                raw["src_id"], raw["dst_id"] = ssrc, sdst
            t, why = _ts(r.get("ts"), ts_unit)
            problem = None
            if src is None:
                problem = ("src_id", "missing src_id: give the id of the user who acts")
            elif len(src) > MAX_ID:
                problem = ("src_id", f"src_id is longer than {MAX_ID} characters; "
                           "give a shorter user id")
            elif dst is None:
                problem = ("dst_id", "missing dst_id: give the id of the user acted on")
            elif len(dst) > MAX_ID:
                problem = ("dst_id", f"dst_id is longer than {MAX_ID} characters; "
                           "give a shorter user id")
            elif kind is None or kind.lower() not in RELATION:
                problem = ("kind", f"kind {kind!r} is not an edge kind; use one of "
                           f"{', '.join(EDGE_KINDS)}")
            elif src == dst:
                problem = ("dst_id", "a user cannot follow, friend, block or trust "
                           "themself; give two different users")
            elif why is not None:
                problem = ("ts", why)
            elif eid is not None and len(eid) > MAX_ID:
                problem = ("edge_id", f"edge_id is longer than {MAX_ID} characters; give "
                           "a shorter id or none (one is derived)")
            if problem is not None:
                bad.append((i, problem[0], problem[1], raw, ssrc))
                continue
            kind = kind.lower()
            if eid is None:
                eid = "e:" + hashlib.sha256("\x1f".join(
                    [ssrc, sdst, kind, "" if t is None else t.isoformat()]).encode()
                ).hexdigest()[:24]
            good.append({"_row": i, "edge_id": eid, "src_id": ssrc, "dst_id": sdst,
                         "kind": kind, "ts": t, "source": name, "_raw": raw})
        accepted = duplicates = erased = 0
        with self.transaction() as c:
            if good and c.execute("SELECT count(*) FROM tombstones").fetchone()[0]:
                ids = sorted({g["src_id"] for g in good} | {g["dst_id"] for g in good})
                dig = {tombstone_digest(u): u for u in ids}
                gone = {dig[d] for (d,) in c.execute(
                    "SELECT digest FROM tombstones WHERE digest IN (SELECT unnest(?))",
                    [list(dig)]).fetchall()}
                kept = [g for g in good if g["src_id"] not in gone and g["dst_id"] not in gone]
                erased = len(good) - len(kept)
                good = kept
            stored: dict[str, tuple] = {}
            if good:
                for row in c.execute("SELECT edge_id, src_id, dst_id, kind, ts FROM edges "
                                     "WHERE edge_id IN (SELECT unnest(?))",
                                     [[g["edge_id"] for g in good]]).fetchall():
                    stored[row[0]] = (row[1], row[2], row[3],
                                      None if row[4] is None else pd.Timestamp(row[4]))
            first: dict[str, tuple[int, tuple]] = {}
            new: list[dict[str, Any]] = []
            for g in good:
                content = (g["src_id"], g["dst_id"], g["kind"], g["ts"])
                eid = g["edge_id"]
                if eid in stored:
                    if _same(stored[eid], content):
                        duplicates += 1
                    else:
                        bad.append((g["_row"], "edge_id", f"edge_id {eid[:40]!r} is already "
                                    "stored with different content: an edge id names one "
                                    "edge; give this edge its own id", g["_raw"], g["src_id"]))
                    continue
                if eid in first:
                    if _same(first[eid][1], content):
                        duplicates += 1
                    else:
                        bad.append((g["_row"], "edge_id", f"edge_id {eid[:40]!r} is already "
                                    f"used by row {first[eid][0]} of this source with "
                                    "different content; give this edge its own id",
                                    g["_raw"], g["src_id"]))
                    continue
                first[eid] = (g["_row"], content)
                new.append(g)
            if new:
                frame = pd.DataFrame({c_: [g[c_] for g in new] for c_ in EDGE_COLUMNS})
                frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
                c.register("_fw_edges", frame)
                try:
                    cols = ", ".join(f'"{c_}"' for c_ in EDGE_COLUMNS)
                    c.execute(f"INSERT INTO edges ({cols}) SELECT {cols} FROM _fw_edges")
                finally:
                    c.unregister("_fw_edges")
                accepted = len(new)
            if bad:
                bad.sort(key=lambda b: b[0])
                c.executemany(
                    'INSERT INTO rejects (source, "row", field, reason, raw, rejected_at, '
                    "user_id) VALUES (?, ?, ?, ?, ?, now(), ?)",
                    [[name, row, field, reason, json.dumps(raw, default=str), uid]
                     for row, field, reason, raw, uid in bad])
        return IngestReport(name, accepted, duplicates, len(bad), time.perf_counter() - t0,
                            erased=erased, ignored_columns=ignored)

    def ingest_edges(self, path: str | Path, *, mapping: str | Mapping[str, str] | None = None,
                     columns: list[str] | None = None, delimiter: str | None = None,
                     header: bool | None = None, fmt: str | None = None, ts_unit: str = "s",
                     source_name: str | None = None) -> IngestReport:
        """Read an edges file (:func:`read_edge_file`; ``mapping`` may be a preset name
        such as ``"lastfm-friends"``) and land it through :meth:`add_edges`."""
        df = read_edge_file(path, mapping=mapping, columns=columns, delimiter=delimiter,
                            header=header, fmt=fmt)
        return self.add_edges(df, source_name=source_name or str(path), ts_unit=ts_unit)

    def edges_as_of(self, until: datetime | None = None,
                    kinds: Iterable[str] = ("follow", "friend", "trust", "block"), *,
                    exclude_objectors: bool = False) -> pd.DataFrame:
        """The relations standing at ``until`` (default: now), one row each:
        ``src_id, dst_id, kind, since``.

        Acts at or before ``until`` (and undated ones) are replayed per pair and relation
        in time order (ties in the order stored): an ``unfollow`` ends the ``follow``
        before it, a later ``follow`` starts it again. ``since`` is when the standing
        relation began (NULL: undated). ``friend`` rows come in both directions.
        ``exclude_objectors`` leaves out the follow, friend and trust edges that touch a
        user who withdrew personalisation consent (their relations are not used to profile
        anyone); blocks always stay (they protect people, they do not profile them).
        """
        want = [k for k in dict.fromkeys(kinds)]
        unknown = sorted(set(want) - {"follow", "friend", "trust", "block"})
        if unknown:
            raise DataError(f"edges_as_of: unknown relation(s) {unknown}; use follow, "
                            "friend, trust or block")
        if not want:
            return pd.DataFrame(columns=["src_id", "dst_id", "kind", "since"])
        cond, params = "TRUE", []
        if until is not None:
            cond, params = "ts IS NULL OR ts <= ?", [utc(until)]
        base = ("CASE kind WHEN 'unfollow' THEN 'follow' WHEN 'unfriend' THEN 'friend' "
                "WHEN 'unblock' THEN 'block' ELSE kind END")
        keep = "TRUE"
        if exclude_objectors:
            keep = ("(base = 'block' OR (a NOT IN (SELECT user_id FROM _fw_objectors) AND "
                    "b NOT IN (SELECT user_id FROM _fw_objectors)))")
        sql = f"""WITH _fw_objectors AS (SELECT user_id FROM users
                WHERE consent_personalization = false),
            e AS (
                SELECT src_id, dst_id, ts, rowid AS r, {base} AS base,
                       kind IN ('follow', 'friend', 'block', 'trust') AS on_
                FROM edges WHERE ({cond}) AND {base} IN (SELECT unnest(?))),
            p AS (SELECT CASE WHEN base = 'friend' THEN least(src_id, dst_id) ELSE src_id END a,
                         CASE WHEN base = 'friend' THEN greatest(src_id, dst_id)
                              ELSE dst_id END b, base, ts, r, on_ FROM e),
            g AS (SELECT *, sum(CASE WHEN on_ THEN 0 ELSE 1 END) OVER (
                    PARTITION BY a, b, base ORDER BY ts ASC NULLS FIRST, r
                    ROWS UNBOUNDED PRECEDING) AS grp FROM p),
            s AS (SELECT a, b, base, max(grp) AS last FROM g GROUP BY a, b, base),
            st AS (SELECT g.a, g.b, g.base, min(g.ts) FILTER (WHERE g.on_) AS since,
                          bool_or(g.on_) AS stands
                   FROM g JOIN s USING (a, b, base) WHERE g.grp = s.last
                   GROUP BY g.a, g.b, g.base),
            k AS (SELECT * FROM st WHERE stands AND {keep})
            SELECT src_id, dst_id, kind, since FROM (
                SELECT a AS src_id, b AS dst_id, base AS kind, since FROM k
                UNION ALL
                SELECT b, a, base, since FROM k WHERE base = 'friend')
            ORDER BY kind, src_id, dst_id"""
        out = self.query(sql, [*params, want])
        if out.empty:
            return pd.DataFrame(columns=["src_id", "dst_id", "kind", "since"])
        return out

    def edge_log(self, user_id: str | None = None) -> pd.DataFrame:
        """The stored edge rows (all, or those with ``user_id``, an external id, on either
        side), in time order (undated first, then as stored)."""
        if user_id is None:
            return self.query("SELECT * FROM edges ORDER BY ts ASC NULLS FIRST, rowid")
        ids = list(dict.fromkeys([self.user_key(user_id), str(user_id)]))
        return self.query("SELECT * FROM edges WHERE src_id IN (SELECT unnest(?)) OR dst_id "
                          "IN (SELECT unnest(?)) ORDER BY ts ASC NULLS FIRST, rowid",
                          [ids, ids])


def _same(a: tuple, b: tuple) -> bool:
    """Whether two edges' (src, dst, kind, ts) are the same."""
    ta, tb = a[3], b[3]
    if (ta is None) != (tb is None):
        return False
    return a[:3] == b[:3] and (ta is None or pd.Timestamp(ta) == pd.Timestamp(tb))
