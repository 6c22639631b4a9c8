"""``GET /v1/reports/kpis`` (KPIs as JSON) and ``/dashboard`` (their charts, refreshed live).

KPIs come from :mod:`feedwise.analytics` (consent-aware, small groups suppressed). The
dashboard page itself holds no data: it asks for an API key with the ``read`` scope, keeps
it in the browser tab's session storage, and draws the JSON of ``/v1/reports/kpis``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from feedwise.analytics import Scope, kpi_series, kpi_summary
from feedwise.analytics.campaigns import campaign_pacing
from feedwise.analytics.kpis import counts
from feedwise.server.deps import ReadKey, State

router = APIRouter(tags=["reports"])


class KpiReport(BaseModel):
    start: datetime
    end: datetime
    source: str
    k: int = 10
    summary: dict[str, float | None]
    series: list[dict[str, Any]]
    #: Spend per campaign and day against the day's plan (the pacing curve).
    pacing: list[dict[str, Any]] = []
    #: Where figures are blanked because they describe fewer than k users.
    suppressed: dict[str, Any] = {}


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


def _analytics(state: State, start: datetime, end: datetime, grain: str, k: int,
               scope_cls: type[Scope] = Scope
               ) -> tuple[dict[str, float], list[dict[str, Any]], list[dict[str, Any]],
                          dict[str, Any]]:
    """``scope_cls``: a ``Scope`` subclass to run on (the console's memoising one)."""
    scope = scope_cls(state.store, start, end, k=k)
    try:
        summary = kpi_summary(scope)
        series_df = kpi_series(scope, grain)
        pacing_df = campaign_pacing(scope)
        users = int(counts(scope)["users"] or 0)
    finally:
        scope.close()
    flag = "suppressed"
    notice = {
        "summary": bool(0 < users < k), "users": users,
        "periods": int(series_df[flag].sum()) if flag in series_df else 0,
        "of_periods": len(series_df),
        "campaign_days": int(pacing_df[flag].sum()) if flag in pacing_df else 0,
        "of_campaign_days": len(pacing_df)}
    return (summary, series_df.to_dict(orient="records"),
            pacing_df.to_dict(orient="records"), notice)


def _window(state: State, start: datetime | None, end: datetime | None, days: float
            ) -> tuple[datetime, datetime]:
    """``[start, end)``: as given; a missing end is now, or just after the newest event
    when the log ends earlier (a replayed or demo store), so the default shows data."""
    if end is None:
        end = datetime.now(UTC)
        last = state.store.last_event_time()
        if last is not None and last < end:
            end = last + timedelta(seconds=1)
    if start is None:
        start = end - timedelta(days=days)
    return start, end


@router.get("/v1/reports/kpis", response_model=KpiReport, summary="Engagement and ad KPIs")
def kpis(state: State, key: ReadKey,
         days: Annotated[float, Query(gt=0, le=3660)] = 7.0,
         grain: Literal["hour", "day", "week", "month"] = "day",
         k: Annotated[int, Query(ge=1, le=10_000)] = 10,
         start: Annotated[datetime | None, Query(description="Window start (UTC); default "
                                                 "end - days.")] = None,
         end: Annotated[datetime | None, Query(description="Window end (UTC, exclusive); "
                                               "default now, or just after the newest event "
                                               "when the log ends earlier.")] = None
         ) -> KpiReport:
    """KPIs over ``[start, end)`` (default: the last ``days`` days), the series per
    ``grain``, the campaigns' spend per day against plan, and where cells describing fewer
    than ``k`` users are blanked."""
    start, end = _window(state, start, end, days)
    if end <= start:
        raise HTTPException(422, f"empty window: end {end.isoformat()} is not after start "
                                 f"{start.isoformat()}")
    summary, series, pacing, notice = _analytics(state, start, end, grain, k)
    return KpiReport(start=start, end=end, source="analytics", k=k,
                     summary={str(a): _clean(b) for a, b in summary.items()},
                     series=[{str(a): _clean(b) for a, b in r.items()} for r in series],
                     pacing=[{str(a): _clean(b) for a, b in r.items()} for r in pacing],
                     suppressed=notice)


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@router.get("/dashboard/plotly.js", include_in_schema=False)
def plotly_js() -> Response:
    return Response(_plotly_js(), media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>feedwise dashboard</title>
<link rel="icon" href="data:,">
<script src="/dashboard/plotly.js"></script>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
form{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin-bottom:.8rem}
label{display:flex;flex-direction:column;font-size:.85rem}
.kpis{display:flex;flex-wrap:wrap;gap:.75rem}.kpi{border:1px solid #ddd;border-radius:6px;
padding:.5rem .8rem;min-width:8rem}.kpi b{display:block;font-size:1.3rem}
#notice{display:none;background:#fff4d6;border:1px solid #e0b84c;border-radius:6px;
padding:.5rem .8rem;margin:.6rem 0}.chart{height:320px}</style></head><body>
<h1>feedwise — live KPIs</h1>
<form id="f">
<label>API key (read scope)<input id="key" type="password" autocomplete="off"></label>
<label>From<input id="from" type="date"></label>
<label>To<input id="to" type="date"></label>
<label>k (smallest group shown)<input id="k" type="number" min="1" value="10"
 style="width:6rem"></label>
<button>Show</button> <span id="msg"></span></form>
<div id="notice" role="status"></div>
<div class="kpis" id="kpis"></div>
<div class="chart" id="c1"></div><div class="chart" id="c2"></div>
<div class="chart" id="c3"></div>
<script>
const SHOWN=["dau","wau","mau","ctr","engagement_rate","hide_rate","ad_load","ad_ctr",
 "revenue","ecpm","impressions","ad_impressions","users","clicks"];
const $=id=>document.getElementById(id);
function key(){return sessionStorage.getItem("fwkey")||""}
$("f").onsubmit=e=>{e.preventDefault();
 sessionStorage.setItem("fwkey",$("key").value);load()};
function fmt(v){if(v===null||v===undefined)return "–";
 return Number.isInteger(v)?v.toLocaleString("en"):
  (Math.abs(v)<10?v.toFixed(4):v.toFixed(0))}
function query(){const q=new URLSearchParams({days:"30",k:$("k").value||"10"});
 if($("from").value)q.set("start",$("from").value+"T00:00:00Z");
 if($("to").value)q.set("end",$("to").value+"T00:00:00Z");return q}
function notice(d){const s=d.suppressed||{},parts=[];
 if(s.summary)parts.push("the window's summary ("+s.users+" users)");
 if(s.periods)parts.push(s.periods+" of "+s.of_periods+" periods");
 if(s.campaign_days)parts.push(s.campaign_days+" of "+s.of_campaign_days+" campaign-days");
 const el=$("notice");
 if(!parts.length){el.style.display="none";el.textContent="";return}
 el.textContent="Suppressed: figures describing fewer than k = "+d.k+
  " users are hidden (–) in "+parts.join(", ")+
  ". Widen the date range or lower k to see them.";el.style.display="block"}
async function load(){const msg=$("msg");
 if(!key()){msg.textContent="enter a key";return}
 const r=await fetch("/v1/reports/kpis?"+query(),{headers:{Authorization:"Bearer "+key()}});
 if(!r.ok){msg.textContent="error "+r.status;return}
 const d=await r.json();
 msg.textContent=d.start.slice(0,10)+" → "+d.end.slice(0,10)+" · updated "+
  new Date().toLocaleTimeString();
 if(!$("from").value)$("from").value=d.start.slice(0,10);
 notice(d);
 const box=$("kpis");box.innerHTML="";
 for(const k of SHOWN){if(!(k in d.summary))continue;
  const el=document.createElement("div");el.className="kpi";
  el.innerHTML="<span></span><b></b>";el.firstChild.textContent=k;
  el.lastChild.textContent=fmt(d.summary[k]);box.appendChild(el)}
 const x=d.series.map(r=>r.period);
 const users=d.series.map(r=>r.active_users??r.users);
 Plotly.react("c1",[{x,y:users,type:"scatter",name:"active users"}],
  {title:{text:"Active users"},margin:{t:40}});
 const ys=["impressions","ad_impressions"].map(k=>({x,y:d.series.map(r=>r[k]),
  type:"bar",name:k}));
 Plotly.react("c2",ys,{title:{text:"Impressions"},barmode:"group",margin:{t:40}});
 const by={};for(const p of d.pacing){(by[p.campaign_id]=by[p.campaign_id]||[]).push(p)}
 const tr=[];for(const [c,rows] of Object.entries(by)){
  tr.push({x:rows.map(r=>r.day),y:rows.map(r=>r.spend),type:"scatter",mode:"lines+markers",
   name:c+" spend"});
  if(rows.some(r=>r.planned!==null))tr.push({x:rows.map(r=>r.day),
   y:rows.map(r=>r.planned),type:"scatter",mode:"lines",line:{dash:"dot"},
   name:c+" plan"})}
 Plotly.react("c3",tr,{title:{text:tr.length?"Campaign pacing: spend per day against plan":
  "Campaign pacing: no ad delivery in this window"},margin:{t:40}});}
load();setInterval(()=>{if(!document.hidden)load()},30000);
</script></body></html>"""


@router.get("/dashboard", response_class=HTMLResponse, summary="Live KPI dashboard")
def dashboard() -> HTMLResponse:
    """The page asks for a ``read`` key, a date range and k, and draws
    ``/v1/reports/kpis`` every 30 s: KPI cards, active users, impressions and the campaign
    pacing curve per day, with a notice where figures are suppressed."""
    return HTMLResponse(_PAGE)
