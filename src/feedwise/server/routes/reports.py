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

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from feedwise.analytics import Scope, kpi_series, kpi_summary
from feedwise.server.deps import ReadKey, State

router = APIRouter(tags=["reports"])


class KpiReport(BaseModel):
    start: datetime
    end: datetime
    source: str
    summary: dict[str, float | None]
    series: list[dict[str, Any]]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


def _analytics(state: State, start: datetime, end: datetime, grain: str, k: int
               ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    scope = Scope(state.store, start, end, k=k)
    try:
        summary = kpi_summary(scope)
        series = kpi_series(scope, grain).to_dict(orient="records")
    finally:
        scope.close()
    return summary, series


@router.get("/v1/reports/kpis", response_model=KpiReport, summary="Engagement and ad KPIs")
def kpis(state: State, key: ReadKey,
         days: Annotated[float, Query(gt=0, le=3660)] = 7.0,
         grain: Literal["hour", "day", "week", "month"] = "day",
         k: Annotated[int, Query(ge=1, le=10_000)] = 10) -> KpiReport:
    """KPIs over the last ``days`` days (cells describing fewer than ``k`` users blanked)."""
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    summary, series = _analytics(state, start, end, grain, k)
    return KpiReport(start=start, end=end, source="analytics",
                     summary={str(a): _clean(b) for a, b in summary.items()},
                     series=[{str(a): _clean(b) for a, b in r.items()} for r in series])


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@router.get("/dashboard/plotly.js", include_in_schema=False)
def plotly_js() -> Response:
    return Response(_plotly_js(), media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>feedwise dashboard</title>
<script src="/dashboard/plotly.js"></script>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
.kpis{display:flex;flex-wrap:wrap;gap:.75rem}.kpi{border:1px solid #ddd;border-radius:6px;
padding:.5rem .8rem;min-width:8rem}.kpi b{display:block;font-size:1.3rem}
.chart{height:300px}</style></head><body>
<h1>feedwise — live KPIs</h1>
<form id="f"><label>API key (read scope) <input id="key" type="password" autocomplete="off">
</label> <button>Show</button> <span id="msg"></span></form>
<div class="kpis" id="kpis"></div>
<div class="chart" id="c1"></div><div class="chart" id="c2"></div>
<script>
const SHOWN=["dau","wau","mau","ctr","engagement_rate","hide_rate","ad_load","ad_ctr",
 "revenue","ecpm","impressions","ad_impressions","users","clicks"];
function key(){return sessionStorage.getItem("fwkey")||""}
document.getElementById("f").onsubmit=e=>{e.preventDefault();
 sessionStorage.setItem("fwkey",document.getElementById("key").value);load()};
async function load(){const msg=document.getElementById("msg");
 if(!key()){msg.textContent="enter a key";return}
 const r=await fetch("/v1/reports/kpis?days=30",{headers:{Authorization:"Bearer "+key()}});
 if(!r.ok){msg.textContent="error "+r.status;return}
 const d=await r.json();msg.textContent="updated "+new Date().toLocaleTimeString()+
  " ("+d.source+")";
 const box=document.getElementById("kpis");box.innerHTML="";
 for(const k of SHOWN){if(!(k in d.summary))continue;const v=d.summary[k];
  const el=document.createElement("div");el.className="kpi";
  el.innerHTML="<span></span><b></b>";el.firstChild.textContent=k;
  el.lastChild.textContent=v===null?"–":(Math.abs(v)<10?v.toFixed(4):v.toFixed(0));
  box.appendChild(el)}
 const x=d.series.map(r=>r.period);
 const users=d.series.map(r=>r.active_users??r.users);
 Plotly.react("c1",[{x,y:users,type:"scatter",name:"active users"}],
  {title:"Active users",margin:{t:40}});
 const ys=["impressions","ad_impressions"].map(k=>({x,y:d.series.map(r=>r[k]),
  type:"bar",name:k}));
 Plotly.react("c2",ys,{title:"Impressions",barmode:"group",margin:{t:40}});}
load();setInterval(load,10000);
</script></body></html>"""


@router.get("/dashboard", response_class=HTMLResponse, summary="Live KPI dashboard")
def dashboard() -> HTMLResponse:
    """The page asks for a ``read`` key and draws ``/v1/reports/kpis`` every 10 s."""
    return HTMLResponse(_PAGE)
