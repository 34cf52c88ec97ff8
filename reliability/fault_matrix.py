"""Fault matrix: every platform's sandbox in each fault mode, and the order sync's result is still complete
and exact.

Each cell gets a channel of its own and syncs while the sandbox misbehaves (a mode is a set of the sandboxes'
fault knobs, ``sandbox/faults.py``), re-running a failed sync the way Airflow retries a failed run. Once the
faults are off, a fresh *reference* channel syncs the whole span the cell covered, at the platform time the
cell ended; the cell passes when what landed equals the reference's: the same orders at the same versions,
the same exceptions. Cells sync with no overlap (every window must be complete on its own) and pages of 10
(many requests for the faults to hit). How a cell syncs depends on its mode:

- most modes: the window ``[START, NOW)`` with the sandbox clock frozen at ``NOW`` (timeouts with a 1 s read
  timeout, ``read_timeout_seconds``, against 2 s hangs; malformed orders are synced once more after the
  platform serves them right, as the next run would);
- updates between pages: every listing request moves the platform clock on 10 minutes, so orders change and
  appear while the window is paged (changed orders leave the window, shifting the others); then the next
  window up to the clock's new reading, as the next scheduled run. "Updates inside the window": the same with
  a window reaching 30 minutes past the platform's "now", so updates land inside it too and orders move to
  their new place in the sort order;
- clock skew: the platform's clock runs minutes ahead of (or behind) the hub's while the hub syncs
  consecutive scheduled windows by its own clock with the channel's default ``overlap_minutes`` and new
  orders keep appearing; then the platform goes quiet and the hub's next run catches up;
- expired tokens: where the platform issues short-lived tokens (WeChat, Youzan) they expire mid-sync and the
  connector must fetch new ones. Shopify's admin token, WooCommerce's consumer key and the gateways' shop
  tokens (Taobao's session, JD's access_token) do not expire: there a revoked credential (the platform's 401,
  or the credential code of a gateway that answers HTTP 200) must fail the run with an ``AuthError`` after a
  single request,
  without moving the sync watermark, and the run after the credential is restored must land the window.

``python -m reliability.fault_matrix`` (also part of ``make reliability``) prints the full matrix;
``tests/test_fault_matrix.py`` runs a part of it (every mode and every platform) in the suite.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine, create_engine, text

from channelhub.config import ChannelConfig, HubConfig, parse_config
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.demo_webhooks import subscribe_sandbox, unsubscribe_sandbox
from channelhub.sync import register_config, sync_orders
from channelhub.webhooks import create_receiver, serving
from connectors.auth import Secret
from connectors.errors import AuthError, ConnectorError
from platforms.registry import DECLARATIONS, PLATFORM_NAMES
from sandbox.clock import Clock
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection
from warehouse import sync_state

NOW = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=3)
PLATFORMS = PLATFORM_NAMES
# Short-lived tokens the hub fetches (the others authenticate with static credentials).
EXPIRING_TOKENS = frozenset(name for name, declared in DECLARATIONS.items() if declared.expiring_tokens)
SCHEDULE = timedelta(minutes=15)  # the hub's scheduled windows in the clock skew modes
SCHEDULED_RUNS = 8
WEBHOOK_STEP = timedelta(minutes=2)  # the webhook cell's platform clock moves on this much per step ...
WEBHOOK_STEPS = 4  # ... this many times, ending at the hub's "now"
RUN_ATTEMPTS = 6  # a sync that still fails after its connector's own retries is re-run, as Airflow does


@dataclass(frozen=True)
class Mode:
    """One row of the matrix: the fault knobs set while the cell's channel syncs, and how the cell syncs.

    scenario: ``window`` (one window, faults on), ``moving`` (the window while the platform changes, then the
        next window), ``schedule`` (consecutive scheduled windows), ``tokens`` (expiring tokens; static
        credentials are revoked and restored instead).
    channel: channel config of the cell's channel (e.g. a short ``read_timeout_seconds``).
    resync: once the faults are off, the window is synced once more (what the platform then serves right).
    ahead: how far the ``moving`` window reaches past the platform's "now".
    """

    faults: Mapping[str, float | bool]
    scenario: str = "window"
    channel: Mapping[str, Any] = field(default_factory=dict)
    resync: bool = False
    ahead: timedelta = timedelta(0)


# A cell's fault seed is its row's position: rows are only ever appended, so a cell meets the same faults.
MODES: dict[str, Mode] = {
    "429 storm": Mode({"rate_limit_storm": 0.3}),
    "5xx burst": Mode({"server_error_rate": 0.3}),
    "slow responses": Mode({"latency_seconds": 0.15}),
    "truncated JSON": Mode({"truncated_body_rate": 0.2}),
    # Malformed orders are queued while the platform serves them so; once it serves them right, the next
    # sync lands them: the window is then exactly the reference's.
    "malformed orders": Mode({"malformed_order_rate": 0.1}, resync=True),
    # Answers held back 2 s past a 1 s read timeout (the channel's read_timeout_seconds).
    "timeouts": Mode({"timeout_rate": 0.15, "hang_seconds": 2.0}, channel={"read_timeout_seconds": 1}),
    "duplicated pages": Mode({"duplicate_page_rate": 0.3}),
    "reordered pages": Mode({"shuffle_page_rate": 1.0}),
    # The world's orders change every few hours: 10 minutes per listing request make a walk meet changes.
    "updates between pages": Mode({"clock_step_seconds": 600.0}, scenario="moving"),
    "updates inside the window": Mode(
        {"clock_step_seconds": 600.0}, scenario="moving", ahead=timedelta(minutes=30)
    ),
    "clock skew +4 min": Mode({"clock_skew_seconds": 240.0}, scenario="schedule"),
    "clock skew -4 min": Mode({"clock_skew_seconds": -240.0}, scenario="schedule"),
    "expired tokens": Mode({"token_expiry_rate": 0.25}, scenario="tokens"),
    # The platform pushes each change as a webhook (platforms that push over HTTP only): a quarter of the
    # deliveries lost, a quarter sent twice, a quarter held back behind the next, a quarter preceded by a
    # forgery; retries at a thousandth of the platform's schedule. The scheduled sync is the safety net.
    "webhook deliveries": Mode(
        {
            "webhook_lost_rate": 0.25,
            "webhook_duplicate_rate": 0.25,
            "webhook_reorder_rate": 0.25,
            "webhook_forged_rate": 0.25,
            "webhook_retry_scale": 0.001,
        },
        scenario="webhooks",
    ),
}
PUSHING = frozenset(name for name, declared in DECLARATIONS.items() if declared.webhooks is not None)


def runs_on(mode: Mode, platform: str) -> bool:
    """Whether ``mode`` applies to ``platform`` (webhook deliveries: only where the platform pushes)."""
    return mode.scenario != "webhooks" or platform in PUSHING


LANDED_SQL = """
SELECT o.external_id, o.payload_digest FROM orders o JOIN channels c ON c.id = o.channel_id
 WHERE c.code = :code ORDER BY 1"""
QUEUED_SQL = """
SELECT e.reason, coalesce(e.external_id, ''), coalesce(e.sku, '') FROM exceptions e
  JOIN channels c ON c.id = e.channel_id WHERE c.code = :code AND e.status = 'open' ORDER BY 1, 2, 3"""


@dataclass
class Cell:
    platform: str
    mode: str
    ok: bool
    detail: str
    runs: int
    seconds: float
    note: str = ""  # what the cell did beyond the usual (e.g. a static credential revoked and restored)


class CellFailed(Exception):
    """The cell's own checks failed (beyond the comparison with the reference)."""


@dataclass
class _Context:
    engine: Engine
    sandbox: RunningSandbox
    creds: ChannelCredentials
    platform: str
    number: int
    start: datetime = START  # where the cell's span begins (the reference syncs from here)


def _channel(
    engine: Engine, code: str, platform: str, sandbox: RunningSandbox, **settings: Any
) -> ChannelConfig:
    """A channel of its own (and a location of its own: channels never compete for the same stock);
    ``settings`` override the channel config, a None value leaves the config's default."""
    raw = {
        "code": code,
        "platform": platform,
        "conn_id": code,
        "fulfilment_location": f"WH-{code}",
        "overlap_minutes": 0,  # strict: every window must be complete on its own
        "page_size": 10,  # many pages: many requests for the faults to hit
        **settings,
    }
    config = parse_config(
        {
            "locations": [{"code": f"WH-{code}", "name": f"Fault matrix warehouse of {code}"}],
            "channels": [{key: value for key, value in raw.items() if value is not None}],
        }
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(code), sandbox.world.catalog)
    _CONFIGS[code] = config
    return config.channel(code)


_CONFIGS: dict[str, HubConfig] = {}  # each cell channel's config (its webhook receiver serves it)


def _outcome(engine: Engine, code: str) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        landed = [tuple(row) for row in conn.execute(text(LANDED_SQL), {"code": code})]
        queued = [tuple(row) for row in conn.execute(text(QUEUED_SQL), {"code": code})]
    return landed, queued


def _sync_like_airflow(
    ctx: _Context, channel: ChannelConfig, start: datetime = START, end: datetime = NOW
) -> int:
    for run in range(1, RUN_ATTEMPTS + 1):
        try:
            sync_orders(ctx.engine, channel, start, end, credentials=ctx.creds)
            return run
        except ConnectorError:
            if run == RUN_ATTEMPTS:
                raise
    return RUN_ATTEMPTS


def _next_second(moment: datetime) -> datetime:
    """The first whole second after ``moment``: a window end that takes in everything up to it."""
    return datetime.fromtimestamp(math.floor(moment.timestamp()) + 1, UTC)


def _sandbox_requests(sandbox: RunningSandbox) -> dict[str, int]:
    return requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=10).json()["requests"]


# -- how a cell syncs: each returns (runs, end of the span the reference must cover, note) ------------------


def _window(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    try:
        runs = _sync_like_airflow(ctx, channel)
    finally:
        ctx.sandbox.faults.clear()
    if mode.resync:
        sync_orders(ctx.engine, channel, START, NOW, credentials=ctx.creds)
    return runs, NOW, ""


def _moving(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    """The platform's clock moves on while the window is paged: updated orders leave the window (their new
    time is past its end), shifting the others. With ``mode.ahead`` the window reaches past the platform's
    "now" (its clock behind the hub's, or a run pulling "until now"): updates then land inside it too, and
    orders move to their new place in the sort order. Then the next window, up to the clock's reading."""
    end = NOW + mode.ahead
    try:
        runs = _sync_like_airflow(ctx, channel, START, end)
    finally:
        ctx.sandbox.faults.clear()
    moved_to = ctx.sandbox.world.now()
    following = max(end, _next_second(moved_to))  # the next run's window reaches the platform's "now"
    sync_orders(ctx.engine, channel, end, following, credentials=ctx.creds)
    return runs, following, f"clock +{(moved_to - NOW).total_seconds() / 60:.0f} min"


def _schedule(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    """Consecutive scheduled runs by the hub's clock (the sandbox clock) while the platform's reads it with
    the skew; then the platform goes quiet (its clock stops) and the hub's next run catches up."""
    runs = 0
    hub_time = NOW
    try:
        runs = max(runs, _sync_like_airflow(ctx, channel, START, hub_time))
        for _ in range(SCHEDULED_RUNS):
            previous, hub_time = hub_time, hub_time + SCHEDULE
            ctx.sandbox.clock.set(hub_time)
            runs = max(runs, _sync_like_airflow(ctx, channel, previous, hub_time))
        quiet_at = ctx.sandbox.world.now()
    finally:
        ctx.sandbox.faults.clear()
    ctx.sandbox.clock.set(quiet_at)  # no skew now: the platform reads the same instant it stopped at
    previous, hub_time = hub_time, hub_time + SCHEDULE
    sync_orders(ctx.engine, channel, previous, hub_time, credentials=ctx.creds)
    overlap = channel.overlap.total_seconds() / 60
    return runs, hub_time, f"{SCHEDULED_RUNS + 2} windows, overlap {overlap:.0f} min"


def _revoked(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    """A static credential revoked mid-way: the run fails at its first request with an AuthError that is not
    retried and leaves the watermark; the run after the credential is restored lands the window."""
    sandbox, engine, middle = ctx.sandbox, ctx.engine, NOW - timedelta(hours=1)
    sync_orders(engine, channel, START, middle, credentials=ctx.creds)
    with engine.connect() as conn:
        watermark = sync_state.get_watermark(conn, channel.code, "orders")
    landed_before = _outcome(engine, channel.code)
    sandbox.faults.update(credentials_revoked=True)
    before = _sandbox_requests(sandbox)
    try:
        sync_orders(engine, channel, middle, NOW, credentials=ctx.creds)
        raise CellFailed("the sync succeeded with a revoked credential")
    except AuthError as error:
        refused = error
    except ConnectorError as error:
        raise CellFailed(f"a revoked credential failed as {type(error).__name__}, not AuthError") from None
    finally:
        sandbox.faults.clear()
    after = _sandbox_requests(sandbox)
    sent = after.get("api_requests", 0) - before.get("api_requests", 0)
    problems = []
    # A refusal is the platform's 401, or (the signed gateways answer HTTP 200) its own credential code.
    if refused.status != 401 and refused.code is None:
        problems.append(f"AuthError with neither the platform's 401 nor its credential code: {refused}")
    if sent != 1:
        problems.append(f"the refused request was sent {sent} times (an AuthError is not retried)")
    with engine.connect() as conn:
        if sync_state.get_watermark(conn, channel.code, "orders") != watermark:
            problems.append("the failed run moved the sync watermark")
    if _outcome(engine, channel.code) != landed_before:
        problems.append("the failed run landed something")
    if problems:
        raise CellFailed("; ".join(problems))
    runs = _sync_like_airflow(ctx, channel, middle, NOW)
    return runs + 1, NOW, "static key: revoked→restored"


def _tokens(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    if ctx.platform not in EXPIRING_TOKENS:
        return _revoked(ctx, channel, mode)
    issued = _sandbox_requests(ctx.sandbox)
    runs, end, _ = _window(ctx, channel, mode)
    now = _sandbox_requests(ctx.sandbox)
    name = "token_requests" if "token_requests" in now else "tokens_issued"
    return runs, end, f"{now.get(name, 0) - issued.get(name, 0)} tokens fetched"


def _webhooks(ctx: _Context, channel: ChannelConfig, mode: Mode) -> tuple[int, datetime, str]:
    """The platform pushes its changes to the hub's receiver (faults on) while its clock moves on in steps;
    then the scheduled sync of the whole span, the safety net. Platform time runs just behind the hub's own
    clock here: WeChat signs its deliveries' time and the receiver refuses one more than 10 minutes off."""
    sandbox, engine = ctx.sandbox, ctx.engine
    ctx.start = _next_second(datetime.now(UTC) - WEBHOOK_STEP * WEBHOOK_STEPS)
    sandbox.clock.set(ctx.start)
    receiver = create_receiver(engine, _CONFIGS[channel.code], credentials=lambda _: ctx.creds)
    with serving(receiver) as base_url:
        subscribe_sandbox(channel, ctx.creds, f"{base_url}/webhooks/{channel.code}", engine)
        try:
            for _ in range(WEBHOOK_STEPS):
                sandbox.clock.advance(WEBHOOK_STEP)
                _until_deliveries_settle(sandbox)
        finally:
            unsubscribe_sandbox(channel, ctx.creds, engine)
            sandbox.faults.clear()
        end = _next_second(sandbox.world.now())
        log = _deliveries(sandbox)
    forged_accepted = [d for d in log if d["outcome"] == "forged" and d["status"] != 401]
    refused = [d for d in log if d["outcome"] in ("acked", "failed", "duplicate") and d["status"] != 200]
    if forged_accepted or refused:
        raise CellFailed(f"{len(forged_accepted)} forgeries accepted, {len(refused)} deliveries refused")
    pushed = _outcome(engine, channel.code)[0]
    runs = _sync_like_airflow(ctx, channel, ctx.start, end)
    outcomes = collections.Counter(d["outcome"] for d in log)
    note = ", ".join(f"{outcomes[k]} {k}" for k in ("acked", "lost", "duplicate", "forged") if outcomes[k])
    return runs, end, f"{len(pushed)} pushed; {note}; then the sync"


def _deliveries(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.base_url}/_sandbox/webhooks/deliveries", timeout=10).json()


def _until_deliveries_settle(sandbox: RunningSandbox, quiet: float = 1.5, timeout: float = 30) -> None:
    """Until the sandbox has sent nothing for ``quiet`` seconds (held-back deliveries wait ~1 s)."""
    deadline, seen, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(_deliveries(sandbox))
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


SCENARIOS: dict[str, Callable[[_Context, ChannelConfig, Mode], tuple[int, datetime, str]]] = {
    "window": _window,
    "moving": _moving,
    "schedule": _schedule,
    "tokens": _tokens,
    "webhooks": _webhooks,
}


def _run_cell(ctx: _Context, mode_name: str, mode: Mode) -> Cell:
    sandbox, engine = ctx.sandbox, ctx.engine
    sandbox.faults.clear()
    sandbox.clock.set(NOW)
    started = time.monotonic()
    settings = dict(mode.channel)
    if mode.scenario == "schedule":
        settings["overlap_minutes"] = None  # the default overlap, as a configured channel has it
    code = f"fm_{ctx.platform}_{ctx.number}"
    channel = _channel(engine, code, ctx.platform, sandbox, **settings)
    sandbox.faults.update(seed=ctx.number + 1, **mode.faults)
    note, problems = "", []
    try:
        runs, end, note = SCENARIOS[mode.scenario](ctx, channel, mode)
    except CellFailed as failed:
        runs, end, problems = 1, NOW, [str(failed)]
    except ConnectorError as err:
        runs, end = RUN_ATTEMPTS, NOW
        problems = [f"still failing after {RUN_ATTEMPTS} runs: {err}"[:200]]
    finally:
        sandbox.faults.clear()
    # The reference: a fresh channel syncs the whole span, faults off, at the platform time the cell ended.
    reference = _channel(engine, f"{code}_ref", ctx.platform, sandbox)
    sync_orders(engine, reference, ctx.start, end, credentials=ctx.creds)
    want_landed, want_queued = _outcome(engine, reference.code)
    landed, queued = _outcome(engine, code)
    if not problems:
        if landed != want_landed:
            missing = len({e for e, _ in want_landed} - {e for e, _ in landed})
            versions = dict(want_landed)
            stale = sum(1 for external_id, digest in landed if versions.get(external_id, digest) != digest)
            extra = len({e for e, _ in landed} - set(versions))
            problems.append(f"{missing} orders missing, {stale} at another version, {extra} extra")
        if queued != want_queued:
            problems.append(f"exceptions differ: {sorted(set(queued) ^ set(want_queued))[:3]}")
    verdict = "; ".join(problems) or f"{len(landed)} orders exact"
    return Cell(ctx.platform, mode_name, not problems, verdict, runs, time.monotonic() - started, note)


def run_matrix(
    database_url: str,
    platforms: Sequence[str] = PLATFORMS,
    modes: Mapping[str, Mode] = MODES,
    report: Callable[[str], None] = print,
    only: Mapping[str, Sequence[str]] | None = None,
) -> list[Cell]:
    """Run every (platform, mode) cell, or for each platform in ``only`` just the modes it names."""
    engine = create_engine(database_url)
    cells = []
    try:
        for platform in platforms:
            chosen = [
                m
                for m in modes
                if (only is None or m in only.get(platform, ())) and runs_on(modes[m], platform)
            ]
            if not chosen:
                continue
            with run_sandbox(
                platform,
                seed=900 + PLATFORMS.index(platform),  # the same world whichever platforms run
                start=START,
                interval=240,
                clock=Clock.frozen(NOW),
                leak_per_second=100.0,
            ) as sandbox:
                conn = sandbox_connection(platform, sandbox.base_url, sandbox.access_token)
                creds = ChannelCredentials(
                    platform, conn["host"], login=conn.get("login"), secret=Secret(conn["password"]),
                    extra=conn.get("extra", {}),
                )  # fmt: skip
                for number, mode_name in enumerate(modes):
                    if mode_name in chosen:
                        ctx = _Context(engine, sandbox, creds, platform, number)
                        cells.append(_run_cell(ctx, mode_name, modes[mode_name]))
    finally:
        engine.dispose()
    report(render(cells, platforms, modes))
    return cells


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    text = f"{'ok' if cell.ok else 'FAIL'} ({cell.runs} run{'s' * (cell.runs > 1)}, {cell.seconds:.0f}s"
    return text + (f"; {cell.note})" if cell.note else ")")


def render(cells: list[Cell], platforms: Sequence[str], modes: Mapping[str, Any]) -> str:
    by_key = {(c.platform, c.mode): c for c in cells}
    shown = [p for p in platforms if any(c.platform == p for c in cells)] or list(platforms)
    first = max(len(m) for m in [*modes, "fault mode"]) + 2
    widths = {p: max(len(p), *(len(_cell_text(by_key.get((p, m)))) for m in modes)) + 2 for p in shown}
    lines = ["fault mode".ljust(first) + "".join(p.ljust(widths[p]) for p in shown).rstrip()]
    for mode in modes:
        row = mode.ljust(first) + "".join(_cell_text(by_key.get((p, mode))).ljust(widths[p]) for p in shown)
        lines.append(row.rstrip())
    lines += [f"FAIL {c.platform} / {c.mode}: {c.detail}" for c in cells if not c.ok]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from reliability.crash import fresh_database

    parser = argparse.ArgumentParser(
        prog="python -m reliability.fault_matrix", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--platform", action="append", choices=PLATFORMS, help="only these (repeatable)")
    parser.add_argument("--mode", action="append", choices=list(MODES), help="only these (repeatable)")
    args = parser.parse_args(argv)
    platforms = tuple(args.platform or PLATFORMS)
    modes = {name: MODES[name] for name in (args.mode or MODES)}
    with fresh_database() as url:
        cells = run_matrix(url, platforms, modes)
    return 0 if all(c.ok for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
