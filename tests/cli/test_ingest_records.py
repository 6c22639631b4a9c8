"""``feedwise ingest --items/--users/--campaigns`` and ``--ts-default``: every bad row a
reject naming file, row, field and fix; the valid rows land; a file updates only the fields
it maps."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

runner = CliRunner()


def ingest(*args: str) -> dict:
    res = runner.invoke(app, ["ingest", *args, "-f", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout[res.stdout.index("["):])


def test_items_rejects_name_file_row_field_and_fix(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    f = tmp_path / "items.csv"
    f.write_text("id,name,when,tags,kind\n"
                 "a,Alpha,2026-01-02,x|y,post\n"
                 ",No id,2026-01-02,,post\n"           # row 2: no id
                 "c,Gamma,yesterday-ish,,post\n"       # row 3: bad time
                 "d,Delta,2026-01-03,,banner\n"        # row 4: bad kind
                 "e,\"Eps, ilon\",1767312000,z,ad\n"   # quoted delimiter, unix time
                 "f,Phi,2026-01-04\n")                 # row 6: too few fields
    [r] = ingest("--items", str(f), "--mapping", "item_id=id,title=name,created_at=when",
                 "--db", db)
    assert (r["kind"], r["accepted"], r["rejected"]) == ("items", 2, 4)
    with EventStore(db, read_only=True) as s:
        rej = s.rejects(str(f)).set_index("row")
        assert list(rej.index) == [2, 3, 4, 6]
        assert rej.loc[2, "field"] == "item_id" and "every row needs one" in rej.loc[2, "reason"]
        assert rej.loc[3, "field"] == "created_at" and "ISO-8601" in rej.loc[3, "reason"]
        assert rej.loc[4, "field"] == "kind" and "not post or ad" in rej.loc[4, "reason"]
        assert "fields where the header has" in rej.loc[6, "reason"]
        a, e = s.get_item("a"), s.get_item("e")
        assert a["title"] == "Alpha" and list(a["tags"]) == ["x", "y"]
        assert e["title"] == "Eps, ilon" and e["kind"] == "ad"
        assert str(e["created_at"])[:10] == "2026-01-02"
    # a second file maps only titles: the tags stay
    g = tmp_path / "titles.csv"
    g.write_text("item_id,title\na,Alpha 2\n")
    ingest("--items", str(g), "--db", db)
    with EventStore(db, read_only=True) as s:
        a = s.get_item("a")
        assert a["title"] == "Alpha 2" and list(a["tags"]) == ["x", "y"]


def test_users_keep_consent_attributes_and_erasure(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    f = tmp_path / "users.csv"
    f.write_text("user_id,consent_ads,timezone\nu1,no,Europe/Berlin\nu2,maybe,UTC\n"
                 "u3,yes,Mars/Base\nu4,1,\n")
    [r] = ingest("--users", str(f), "--db", db)
    assert (r["accepted"], r["rejected"]) == (2, 2)
    with EventStore(db) as s:
        rej = s.rejects(str(f)).set_index("row")
        assert rej.loc[2, "field"] == "consent_ads" and "true or false" in rej.loc[2, "reason"]
        assert rej.loc[3, "field"] == "timezone" and rej.loc[3, "user_id"] == "u3"
        assert s.get_user("u1")["consent_ads"] is False
        assert s.scalar("SELECT count(*) FROM consent_log WHERE user_id = 'u1' AND "
                        "flag = 'consent_ads' AND NOT granted") == 1
        s.erase_user("u4")
    # attributes from the other columns; consent of u1 kept; the erased user stays erased
    g = tmp_path / "attrs.tsv"
    g.write_text("user_id\tage\tcity\nu1\t31\tBerlin\nu4\t40\tOslo\n")
    [r] = ingest("--users", str(g), "--db", db)
    assert (r["accepted"], r["erased_users_skipped"]) == (1, 1)
    with EventStore(db, read_only=True) as s:
        u1 = s.get_user("u1")
        assert json.loads(u1["attributes"]) == {"age": "31", "city": "Berlin"}
        assert u1["consent_ads"] is False and u1["timezone"] == "Europe/Berlin"
        assert s.get_user("u4") is None


def test_campaigns_table_takes_creatives_from_items(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    ads = tmp_path / "ads.csv"
    ads.write_text("item_id,kind,campaign_id,title\nad1,ad,c1,Shoes\nad2,ad,c2,Bikes\n")
    camps = tmp_path / "campaigns.csv"
    camps.write_text("campaign_id,advertiser_id,bid_model,bid,daily_budget,target_tags,"
                     "frequency_caps\n"
                     "c1,acme,cpm,2.5,10,run|shoes,\"[[3, 3600]]\"\n"
                     "c2,velo,cpx,1,,,\n"          # row 2: bad bid model
                     "c3,none,cpm,1,,,\n"          # row 3: no creative
                     "c4,acme,cpm,-2,,,\n")        # row 4: bid <= 0
    rows = ingest("--items", str(ads), "--campaigns", str(camps), "--db", db)
    assert [(r["kind"], r["accepted"], r["rejected"]) for r in rows] == \
        [("items", 2, 0), ("campaigns", 1, 3)]
    with EventStore(db, read_only=True) as s:
        rej = s.rejects(str(camps)).set_index("row")
        assert rej.loc[2, "field"] == "bid_model"
        assert "has no creative" in rej.loc[3, "reason"] and "--items" in rej.loc[3, "reason"]
        assert rej.loc[4, "field"] == "bid"
    res = runner.invoke(app, ["campaigns", "list", "--db", db, "-f", "json"])
    [c1] = json.loads(res.stdout)
    assert c1["campaign_id"] == "c1" and c1["creatives"] == 1 and c1["caps"] == "3/3600s"
    assert c1["targeting"] == "run, shoes"


def test_ts_default_for_data_without_time(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    f = tmp_path / "plays.tsv"
    f.write_text("userID\tartistID\tweight\n1\t51\t100\n1\t52\t7\n")
    m = "user_id=userID,item_id=artistID,value=weight,kind==click"
    res = runner.invoke(app, ["ingest", str(f), "--mapping", m, "--db", db])
    assert res.exit_code == 2 and "'ts'" in res.output  # no time and no default: an error
    [r] = ingest(str(f), "--mapping", m, "--ts-default", "2011-01-01", "--db", db)
    assert r["accepted"] == 2
    [r] = ingest(str(f), "--mapping", m + ",ts==2011-01-01", "--db", db)
    assert (r["accepted"], r["duplicates"]) == (0, 2)  # the same events: same instant
    with EventStore(db, read_only=True) as s:
        assert str(s.scalar("SELECT min(ts) FROM events"))[:10] == "2011-01-01"


def test_one_mapping_for_one_kind_of_file(tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("item_id\na\n")
    res = runner.invoke(app, ["ingest", str(f), "--items", str(f), "--mapping", "a=b",
                              "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "one kind of file" in res.output
    res = runner.invoke(app, ["ingest", "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "nothing to ingest" in res.output
    res = runner.invoke(app, ["ingest", "--items", str(f), "--mapping", "colour=item_id",
                              "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "unknown items field" in res.output
