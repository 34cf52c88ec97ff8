"""The ChannelHub page inside the Airflow 3 UI: channel health, the exception queue (retry / resolve /
ignore) and the latest reconciliation findings; its Reports tab (``/channelhub/reports``,
channelhub/report_page.py) charts the sales.

Two plugin parts: a FastAPI app that the API server mounts at ``/channelhub`` (same origin as the UI, so the
browser's ``_token`` login cookie reaches it), and an external view that puts a "ChannelHub" entry in the
UI's nav and shows ``/channelhub/`` in an iframe at ``/plugin/channelhub``. Every route needs a valid Airflow
login (cookie or ``Authorization: Bearer <JWT>`` from ``POST /auth/token``) and the auth manager's consent
for the custom view ``ChannelHub``. The page is thin: the data and the actions are the hub's own functions.

With ``HUB_WEBHOOKS_IN_AIRFLOW=true`` the API server also serves the webhook receiver at
``/channelhub-webhooks/webhooks/<channel>`` (one process instead of ``channelhub webhooks serve``). It asks
for no Airflow login: platforms do not log in, each delivery's signature is its authentication (Airflow's
middlewares only refresh a login cookie when one is sent; its routes' auth is per-route dependencies).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("channelhub.plugin")

URL_PREFIX = "/channelhub"
WEBHOOKS_URL_PREFIX = "/channelhub-webhooks"
RESOURCE = "ChannelHub"  # the custom view name auth managers are asked about
FINDINGS_LIMIT = 50


# ------------------------------------------------------------------------------------------------ auth
def _authorized(method: Literal["GET", "POST"]) -> Callable[[BaseUser], BaseUser]:
    """A dependency: the logged-in Airflow user (401 without a valid token), allowed to ``method`` the
    ChannelHub view (403 otherwise). Reading is GET; acting on exceptions is POST, and also needs what a
    Viewer lacks: editing DAG runs (a retry pushes to the platforms, as a run does). Auth managers may ignore
    the method of a custom view (SimpleAuthManager lets a Viewer POST it), so the view alone cannot guard an
    action."""

    def check(user: GetUserDep) -> BaseUser:
        manager = get_auth_manager()
        allowed = manager.is_authorized_custom_view(method=method, resource_name=RESOURCE, user=user)
        if allowed and method != "GET":
            allowed = manager.is_authorized_dag(method="PUT", access_entity=DagAccessEntity.RUN, user=user)
        if not allowed:
            raise HTTPException(status_code=403, detail="Forbidden")
        return user

    return check


Reader = Annotated[BaseUser, Depends(_authorized("GET"))]
Actor = Annotated[BaseUser, Depends(_authorized("POST"))]


# ------------------------------------------------------------------------------------------------ data
# The hub's modules are imported when a request needs them: the plugin file is loaded by every Airflow
# component (scheduler, DAG processor, workers), which should not pay for the warehouse imports.
def _engine():
    from channelhub.db import get_engine

    return get_engine()


def _health() -> list[dict[str, Any]]:
    from warehouse.health import channel_health

    with _engine().connect() as conn:
        return channel_health(conn)


def _exceptions(
    channel: str | None, reason: str | None, sku: str | None, status: str | None
) -> list[dict[str, Any]]:
    from channelhub.exception_ops import list_exceptions
    from warehouse.exceptions import ExceptionFilter

    filters = ExceptionFilter(status=status, channel=channel or None, reason=reason or None, sku=sku or None)
    return list_exceptions(_engine(), filters)


def _findings(limit: int) -> list[dict[str, Any]]:
    from warehouse.reconciliation_log import latest_findings

    with _engine().connect() as conn:
        return latest_findings(conn, limit=limit)


def _status_filter(status: str) -> str | None:
    return None if status == "any" else status


# ------------------------------------------------------------------------------------------------ app
# No /docs, /redoc or /openapi.json: they would describe the API to anyone, logged in or not.
app = FastAPI(
    title="ChannelHub",
    description="Channel health, the exception queue and the reconciliation findings of the warehouse.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
MAX_IDS_PER_ACTION = 500  # one request's work stays bounded (300 000 ids held a worker for 100 s)
INLINE_RETRIES = 5  # more ids than this are retried by a DAG run, not inside the request
RETRY_DAG = "exceptions_retest"


class ActionBody(BaseModel):
    # Strict: "4" or true is a client's mistake, not an id.
    ids: list[StrictInt] = Field(min_length=1, max_length=MAX_IDS_PER_ACTION, description="exception ids")
    note: str | None = Field(default=None, max_length=2000, description="why (kept in the audit trail)")


def _note(body: ActionBody) -> str | None:
    return (body.note or "").strip() or None


@app.exception_handler(StarletteHTTPException)
async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
    """A browser that opens the page without a login gets the refusal as a page with a login link; API
    clients get the usual JSON error."""
    if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        body = (
            f"<!doctype html><title>ChannelHub</title><p>{escape(str(exc.detail))}: "
            f'<a href="{escape(login)}" target="_top">log in to Airflow</a></p>'
        )
        return HTMLResponse(body, status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


@app.get("/api/health")
def api_health(user: Reader) -> Any:
    return jsonable_encoder(_health())


@app.get("/api/exceptions")
def api_exceptions(
    user: Reader,
    channel: str | None = None,
    reason: str | None = None,
    sku: str | None = None,
    status: Literal["open", "resolved", "ignored", "any"] = "open",
) -> Any:
    return jsonable_encoder(_exceptions(channel, reason, sku, _status_filter(status)))


@app.get("/api/findings")
def api_findings(user: Reader, limit: Annotated[int, Query(ge=1, le=500)] = FINDINGS_LIMIT) -> Any:
    return jsonable_encoder(_findings(limit))


# Actions take JSON only: a cross-site HTML form cannot send it, and the login cookie is SameSite=Lax.
@app.post("/api/exceptions/retry")
def api_retry(body: ActionBody, user: Actor, response: Response) -> dict[str, Any]:
    """A few ids are retried here and now (the page's row buttons); more run as a run of the
    ``exceptions_retest`` DAG (202 with its run id): a retry may push to the platforms, which must not hold a
    worker of the API server, and the run's log and audit trail keep what each did."""
    from channelhub.config import load_config
    from channelhub.exception_ops import retry_exceptions

    if len(body.ids) > INLINE_RETRIES:
        response.status_code = 202
        return _queue_retries(body, user)
    outcomes = retry_exceptions(_engine(), load_config(), body.ids, actor=user.get_name(), note=_note(body))
    return {
        "outcomes": [{"id": o.exception_id, "status": o.status, "detail": o.detail} for o in outcomes],
    }


def _queue_retries(body: ActionBody, user: BaseUser) -> dict[str, Any]:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        RETRY_DAG,
        triggered_by=DagRunTriggeredByType.REST_API,
        triggering_user_name=user.get_name(),
        conf={"ids": list(body.ids), "actor": user.get_name(), "note": _note(body)},
    )
    run_id = run.run_id if run is not None else None
    return {"queued": len(body.ids), "dag_id": RETRY_DAG, "dag_run_id": run_id}


def _close(body: ActionBody, user: BaseUser, status: Literal["resolved", "ignored"]) -> dict[str, Any]:
    from channelhub.exception_ops import close_exceptions

    closed = close_exceptions(_engine(), body.ids, status, actor=user.get_name(), note=_note(body))
    return {"status": status, "closed": closed}


@app.post("/api/exceptions/resolve")
def api_resolve(body: ActionBody, user: Actor) -> dict[str, Any]:
    return _close(body, user, "resolved")


@app.post("/api/exceptions/ignore")
def api_ignore(body: ActionBody, user: Actor) -> dict[str, Any]:
    return _close(body, user, "ignored")


@app.get("/icon.svg", include_in_schema=False)
def icon() -> Response:
    return Response(ICON, media_type="image/svg+xml")


@app.get("/", response_class=HTMLResponse)
def page(
    request: Request,
    user: Reader,
    channel: str = "",
    reason: str = "",
    sku: str = "",
    status: Literal["open", "resolved", "ignored", "any"] = "open",
) -> HTMLResponse:
    health = _section(_health)
    queue = _section(lambda: _exceptions(channel, reason, sku, _status_filter(status)))
    findings = _section(lambda: _findings(FINDINGS_LIMIT))
    from warehouse.exceptions import REASONS

    channels = sorted({row["channel"] for row in health.rows})
    # The known reason codes, plus any a connector queued under its own code.
    reasons = sorted(
        {
            *REASONS,
            *(r for row in health.rows for r in row["open_exceptions"]),
            *(row["reason"] for row in queue.rows),
        }
    )
    from channelhub.report_page import REPORT_STYLE, language_of, tabs

    language = language_of(request.headers.get("accept-language"))
    body = "".join(
        [
            _header(user),
            tabs("operations", language),
            '<section id="health"><h2>Channel health</h2>',
            health.error or _health_table(health.rows),
            '</section><section id="queue"><h2>Exception queue</h2>',
            _filter_form(channels, reasons, channel, reason, sku, status),
            '<p id="action-status" role="status"></p>',
            queue.error or _queue_table(queue.rows, status),
            '</section><section id="findings"><h2>Latest reconciliation findings</h2>',
            findings.error or _findings_table(findings.rows),
            "</section>",
        ]
    )
    return HTMLResponse(PAGE.format(lang="en", style=STYLE + REPORT_STYLE, body=body, script=SCRIPT))


def _header(user: BaseUser) -> str:
    return (
        f'<header><h1>ChannelHub</h1><span class="who">signed in as '
        f"<b>{escape(user.get_name())}</b> · {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC</span></header>"
    )


@app.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    user: Reader,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    lang: Literal["en", "zh"] | None = None,
) -> HTMLResponse:
    """The Reports tab (channelhub/report_page.py): sales charts and low stock, in the browser's language."""
    from channelhub.report_page import REPORT_STYLE, language_of, load_report_data, render_reports, tabs

    language = language_of(request.headers.get("accept-language"), lang)

    def load() -> list[dict[str, Any]]:
        with _engine().connect() as conn:
            return [{"html": render_reports(load_report_data(conn, days), language, days)}]

    section = _section(load)
    report = section.error or section.rows[0]["html"]
    body = _header(user) + tabs("reports", language) + f'<section id="reports">{report}</section>'
    return HTMLResponse(PAGE.format(lang=language, style=STYLE + REPORT_STYLE, body=body, script=""))


# ------------------------------------------------------------------------------------------------ HTML
class _Section:
    def __init__(self, rows: list[dict[str, Any]], error: str | None = None) -> None:
        self.rows = rows
        self.error = error


def _section(load: Callable[[], list[dict[str, Any]]]) -> _Section:
    """One part of the page; a failing part shows its error instead of taking the whole page down."""
    try:
        return _Section(load())
    except Exception:
        # The error's text can name the database host, user and SQL: it goes to the API server's log under
        # an id, and the page (which every role reads) shows only the id.
        log_id = uuid.uuid4().hex[:12]
        log.exception("ChannelHub page: a section failed [log id %s]", log_id)
        return _Section(
            [], f'<p class="error">unavailable (the API server log has the cause under log id {log_id})</p>'
        )


def _when(value: datetime | None) -> str:
    if value is None:
        return '<span class="muted">never</span>'
    return f'<time datetime="{value.isoformat()}">{value.astimezone(UTC):%Y-%m-%d %H:%M}</time>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="muted">–</td>'
    if isinstance(value, datetime):
        return f"<td>{_when(value)}</td>"
    return f"<td>{escape(str(value))}</td>"


def _table(headers: Iterable[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _health_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        open_by_reason = row["open_exceptions"] or {}
        exceptions = ", ".join(
            f'<a href="?{escape(urlencode({"channel": row["channel"], "reason": r}))}">{escape(r)}</a>: {n}'
            for r, n in sorted(open_by_reason.items())
        )
        lines.append(
            f'<tr data-channel="{escape(row["channel"])}"><td><b>{escape(row["channel"])}</b></td>'
            f"<td>{escape(row['platform'])}</td><td>{_when(row['last_good_sync'])}</td>"
            f"<td>{_duration(row['lag_seconds'])}</td>"
            f'<td class="num">{row["orders_last_hour"]}</td><td class="num">{row["orders_last_day"]}</td>'
            f"<td>{exceptions or '<span class=muted>none</span>'}</td>"
            f"<td>{_warnings(row.get('warnings'))}</td></tr>"
        )
    headers = (
        "channel",
        "platform",
        "last good sync",
        "lag",
        "orders 1 h",
        "orders 24 h",
        "open exceptions",
        "last run warned",
    )
    return _table(headers, lines, "No channel is configured.")


def _warnings(warnings: list[dict[str, Any]] | None) -> str:
    """The last sync run's warnings (what it may have missed): each its code and what to do."""
    if not warnings:
        return '<span class="muted">none</span>'
    return "<br>".join(
        f'<b class="warning">{escape(str(w.get("code")))}</b>: {escape(str(w.get("message", "")))}'
        for w in warnings
    )


def _options(values: Iterable[str], selected: str, any_label: str) -> str:
    items = [f'<option value="">{escape(any_label)}</option>']
    for value in values:
        mark = " selected" if value == selected else ""
        items.append(f'<option value="{escape(value)}"{mark}>{escape(value)}</option>')
    return "".join(items)


def _filter_form(
    channels: list[str], reasons: list[str], channel: str, reason: str, sku: str, status: str
) -> str:
    statuses = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>'
        for s in ("open", "resolved", "ignored", "any")
    )
    return (
        '<form class="filters" method="get">'
        f'<label>channel <select name="channel">{_options(channels, channel, "all")}</select></label>'
        f'<label>reason <select name="reason">{_options(reasons, reason, "all")}</select></label>'
        f'<label>SKU <input name="sku" value="{escape(sku)}" size="12"></label>'
        f'<label>status <select name="status">{statuses}</select></label>'
        '<button type="submit">Filter</button></form>'
    )


def _queue_table(rows: list[dict[str, Any]], status: str) -> str:
    lines = []
    for row in rows:
        actionable = row["status"] == "open"
        buttons = (
            '<input name="note" placeholder="note (optional)" size="10">'
            '<button data-action="retry">Retry</button>'
            '<button data-action="resolve">Resolve</button>'
            '<button data-action="ignore">Ignore</button>'
            if actionable
            else ""
        )
        cells = [
            f'<td class="num">{row["id"]}</td>',
            _cell(row["channel"]),
            f"<td><code>{escape(row['reason'])}</code></td>",
            _cell(row["external_id"]),
            _cell(row["sku"]),
            f'<td class="detail">{escape(row["detail"] or "")}</td>',
            f'<td class="num">{row["attempts"]}</td>',
            f'<td title="updated {escape(str(row["updated_at"]))}">{_when(row["created_at"])}</td>',
            f'<td class="status">{escape(row["status"])}</td>',
            _cell(row["note"]),
            f'<td class="actions">{buttons}</td>',
        ]
        lines.append(
            f'<tr class="exception" id="exception-{row["id"]}" data-id="{row["id"]}"'
            f' data-status="{escape(row["status"])}">{"".join(cells)}</tr>'
        )
    headers = (
        "#",
        "channel",
        "reason",
        "order",
        "SKU",
        "detail",
        "tries",
        "queued",
        "status",
        "note",
        "",
    )
    return _table(
        headers, lines, "No exception matches." if status == "any" else f"No {status} exception matches."
    )


def _findings_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f'<tr data-run="{row["run_id"]}">'
        f"{_cell(row['started_at'])}{_cell(row['channel'])}{_cell(row['depth'])}"
        f"{_cell(row['check_name'])}<td><code>{escape(row['kind'])}</code></td>{_cell(row['subject'])}"
        f'<td class="detail">{escape(row["detail"] or "")}</td>'
        f'<td class="outcome {escape(row["outcome"])}">{escape(row["outcome"])}</td>'
        + (
            f'<td><a href="?{urlencode({"status": "any"})}#exception-{row["exception_id"]}">'
            f"#{row['exception_id']}</a></td>"
            if row["exception_id"] is not None
            else '<td class="muted">–</td>'
        )
        + "</tr>"
        for row in rows
    ]
    headers = (
        "run started",
        "channel",
        "depth",
        "check",
        "kind",
        "subject",
        "detail",
        "outcome",
        "exception",
    )
    return _table(headers, lines, "No reconciliation finding yet.")


PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>ChannelHub</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{style}</style></head>
<body>{body}<script>{script}</script></body></html>"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem; color: #1a202c; }
button { font-size: .85rem; }
header { display: flex; align-items: baseline; gap: 1rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f7fafc; font-weight: 600; } .num { text-align: right; } .muted, .who { color: #718096; }
.detail { min-width: 12rem; max-width: 30rem; overflow-wrap: anywhere; } .error { color: #c53030; }
.warning { color: #b7791f; }
.scroll { overflow-x: auto; } time { white-space: nowrap; }
.filters { display: flex; gap: .75rem; flex-wrap: wrap; margin-bottom: .5rem; }
.actions { white-space: nowrap; } .actions button { margin-right: .25rem; }
.actions input { display: block; box-sizing: border-box; width: 100%; margin-bottom: .25rem; }
tr[data-status="resolved"] .status, .outcome.repaired { color: #2f855a; font-weight: 600; }
tr[data-status="ignored"] .status { color: #718096; font-weight: 600; }
tr[data-status="still_open"] .status, .outcome.repair_failed { color: #c05621; font-weight: 600; }
"""

# Posts one action for one row, then shows its outcome in the row (the page keeps no state of its own).
SCRIPT = """
document.querySelectorAll('tr.exception button[data-action]').forEach(function (button) {
  button.addEventListener('click', async function () {
    const row = button.closest('tr');
    const id = Number(row.dataset.id);
    const action = button.dataset.action;
    const note = row.querySelector('input[name=note]').value.trim() || null;
    const buttons = row.querySelectorAll('button');
    const status = document.getElementById('action-status');
    buttons.forEach(function (b) { b.disabled = true; });
    row.querySelector('.status').textContent = action + '…';
    let outcome = 'failed', detail = '';
    try {
      const answer = await fetch('api/exceptions/' + action, {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
        body: JSON.stringify({ids: [id], note: note}),
      });
      const body = await answer.json();
      if (!answer.ok) {
        detail = body.detail ? JSON.stringify(body.detail) : String(answer.status);
      } else if (action === 'retry') {
        const found = body.outcomes.find(function (o) { return o.id === id; });
        outcome = found ? found.status : 'not_open';
        detail = found ? found.detail : '';
      } else {
        outcome = body.closed ? body.status : 'not_open';
      }
    } catch (err) {
      detail = String(err);
    }
    row.dataset.status = outcome;
    row.querySelector('.status').textContent = outcome;
    status.textContent = '#' + id + ' ' + action + ': ' + outcome + (detail ? ' (' + detail + ')' : '');
    if (outcome === 'still_open' || outcome === 'failed') {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  });
});
"""

ICON = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#017cee"
stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M4 7h16M4 12h16M4 17h10"/>
<circle cx="19" cy="17" r="2"/></svg>"""


async def webhooks_app(scope: Any, receive: Any, send: Any) -> None:
    """The webhook receiver, imported and built on its first request (not when Airflow loads plugins)."""
    from channelhub.webhooks import plugin_receiver

    await plugin_receiver()(scope, receive, send)


def _fastapi_apps() -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = [{"app": app, "url_prefix": URL_PREFIX, "name": "ChannelHub"}]
    if os.environ.get("HUB_WEBHOOKS_IN_AIRFLOW", "").lower() in ("1", "true", "yes"):
        apps.append({"app": webhooks_app, "url_prefix": WEBHOOKS_URL_PREFIX, "name": "ChannelHub webhooks"})
    return apps


class ChannelHubPlugin(AirflowPlugin):
    name = "channelhub"
    fastapi_apps: ClassVar[list[Any]] = _fastapi_apps()
    # url_route: the UI shows href in an iframe at /plugin/channelhub, under its own nav entry.
    external_views: ClassVar[list[Any]] = [
        {
            "name": "ChannelHub",
            "href": f"{URL_PREFIX}/",
            "url_route": "channelhub",
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/icon.svg",
        }
    ]
