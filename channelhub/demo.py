"""``make demo`` / ``make demo-once``: the whole stack on one machine, with a visible first sync.

Embedded Postgres (unless HUB_DATABASE_URL is set) -> migrations -> one sandbox per configured channel
(a subprocess serving the platform's real API shape, with a per-run random token) -> the merchant's catalog,
listings and opening stock seeded from the sandbox catalog -> Airflow (home under .state/airflow, metadata in
``<warehouse database>_airflow`` on the warehouse's Postgres server). ``--once`` runs one sync cycle of every
channel through the real DAG (``airflow dags test``) and prints a summary; otherwise ``airflow standalone``
serves the UI until Ctrl-C, with the hub's DAGs paused until its API server answers, then unpaused.
Credentials travel only in ``AIRFLOW_CONN_*`` environment variables of the processes started here.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from channelhub import db, demo_webhooks
from channelhub.config import ChannelConfig, HubConfig, load_config
from channelhub.demo_moves import demo_transfer
from channelhub.demo_pos_feed import demo_pos_sale
from channelhub.demo_returns import demo_return
from channelhub.demo_routing import show_routing
from channelhub.report import print_reconciliation, print_summary
from channelhub.report_cli import print_sales_demo
from channelhub.store_examples import drop_demo_store_file
from channelhub.sync import register_config
from platforms.registry import declaration
from sandbox.server import sandbox_connection
from sandbox.world import World

AIRFLOW_HOME = db.STATE_DIR / "airflow"
LOG_DIR = db.STATE_DIR / "logs"
DEMO_SEED = 20261124
ORDER_INTERVAL_SECONDS = 60  # one new sandbox order a minute per channel


@dataclass
class RunningSandbox:
    channel: ChannelConfig
    seed: int
    base_url: str
    token: str
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    process: subprocess.Popen | None = None,
    every: float = 0.3,
) -> Any:
    """Poll ``probe`` until it returns something truthy and return that. A failed request or an unreadable
    answer counts as not yet; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {what} exited with code {process.returncode}")
        try:
            if found := probe():
                return found
        except (requests.RequestException, KeyError, ValueError) as err:
            last_error = err
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last_error})")


def _wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    wait_until(url, lambda: requests.get(url, timeout=2) is not None, timeout, process)  # any answer


def airflow_healthy(base_url: str) -> bool:
    """The API server answers and reports the metadata database, scheduler, DAG processor and triggerer
    healthy. Raises ``requests.RequestException`` while the API server is not listening yet."""
    answer = requests.get(f"{base_url}/api/v2/monitor/health", timeout=5)
    if answer.status_code != 200:
        return False
    health = answer.json()
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
    )


def history_start(history: timedelta) -> datetime:
    """Where the sandboxes' order history begins: on the hour, so re-running the demo within the hour meets
    the same world (some platforms' order ids embed the creation time)."""
    return (datetime.now(UTC) - history).replace(minute=0, second=0, microsecond=0)


def start_sandbox(stack: ExitStack, channel: ChannelConfig, seed: int, history: timedelta) -> RunningSandbox:
    port = _free_port()
    token = secrets.token_hex(16)
    start = history_start(history)
    log = open(LOG_DIR / f"sandbox-{channel.code}.log", "ab")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            channel.platform,
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--start",
            start.isoformat(),
            "--interval-seconds",
            str(ORDER_INTERVAL_SECONDS),
        ],
        env={**os.environ, "SANDBOX_ACCESS_TOKEN": token},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # stopped as a group by _terminate
    )
    stack.callback(_terminate, process)
    base_url = f"http://127.0.0.1:{port}"
    _wait_http(f"{base_url}/_sandbox/state", timeout=30, process=process)
    return RunningSandbox(channel, seed, base_url, token, process)


def _terminate(process: subprocess.Popen) -> None:
    """Stop a child started in its own session, and everything it started (airflow standalone's API server,
    scheduler and workers would outlive their parent otherwise)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group, the parent included
    process.wait()


def seed_from_catalog(engine, channel: ChannelConfig, catalog) -> None:
    """What a merchant's integrator does once for a sandbox shop: SKUs, the channel's listing map (merchant
    SKU where the channel has one, else its product/variant ids) and opening stock at the fulfilment location,
    plus a shelf's worth (an eighth) at each other location its routing rules may reserve at.
    ``catalog`` is a ``sandbox.world.Catalog``; its ``unmapped`` variants are left for ops to map."""
    from warehouse import catalog as warehouse_catalog

    location = channel.fulfilment_location
    stores = [code for code in (channel.routing.locations if channel.routing else ()) if code != location]
    with engine.begin() as conn:
        for variant in catalog.variants:
            warehouse_catalog.upsert_sku(conn, variant.sku, variant.title)
            warehouse_catalog.receive_stock(
                conn,
                variant.sku,
                location,
                variant.opening_stock,
                f"receive:opening:{variant.sku}:{location}",
            )
            for store in stores:
                warehouse_catalog.receive_stock(
                    conn,
                    variant.sku,
                    store,
                    variant.opening_stock // 8,
                    f"receive:opening:{variant.sku}:{store}",
                )
            if variant.unmapped:
                continue  # its orders show up as unknown_sku exceptions until someone maps it
            ids = variant.platform_ids(channel.platform)
            simple_woo_product = channel.platform == "woocommerce" and variant.variant_title is None
            warehouse_catalog.upsert_listing(
                conn,
                channel.code,
                variant.sku,
                merchant_sku=ids["sku"] or None,
                channel_product_id=ids["product_id"],
                # WooCommerce sends variation_id 0 for a simple product: it is known by product id alone.
                channel_variant_id=None if simple_woo_product else ids["variant_id"],
            )


def airflow_metadata_url(db_url: str) -> str:
    """Airflow's metadata database: ``<warehouse database>_airflow`` on the warehouse's server, created if
    missing. Not SQLite: the scheduler, API server, DAG processor, triggerer and task processes write to it
    at once, which SQLite serialises and sometimes refuses ("database is locked")."""
    warehouse = make_url(db_url)
    url = warehouse.set(database=f"{warehouse.database}_airflow")
    db.ensure_database(db_url, url.database)
    return url.render_as_string(hide_password=False)


def airflow_env(db_url: str, metadata_url: str, sandboxes: list[RunningSandbox]) -> dict[str, str]:
    env = {
        **os.environ,
        # airflow standalone starts its components by name: the venv's bin must come first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(db.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(db.PROJECT_ROOT / "plugins"),  # the ChannelHub page
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,  # psycopg 3 is async too
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Paused until the API server is up (see _serve); `airflow dags test` (--once) ignores pausing.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "HUB_DATABASE_URL": db_url,
        "HUB_IMPORT_DIR": os.environ.get("HUB_IMPORT_DIR", str(db.STATE_DIR / "imports")),
    }
    for sb in sandboxes:
        conn = sandbox_connection(sb.channel.platform, sb.base_url, sb.token)
        env[f"AIRFLOW_CONN_{sb.channel.conn_id.upper()}"] = json.dumps(conn)
    return env


def _airflow(env: dict[str, str], *args: str, log_name: str) -> subprocess.CompletedProcess:
    with open(LOG_DIR / log_name, "ab") as log:
        return subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def prepare_airflow(env: dict[str, str], config: HubConfig) -> None:
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    database = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).database
    print(f"- Airflow metadata database ({database}, on the warehouse's server) ...", flush=True)
    if _airflow(env, "db", "migrate", log_name="airflow-setup.log").returncode != 0:
        raise RuntimeError(f"airflow db migrate failed; see {LOG_DIR / 'airflow-setup.log'}")
    # One import for every channel's pool: `airflow pools set` per channel took ~4 s each (200 channels:
    # 13 minutes).
    pools = Path(env["AIRFLOW_HOME"]) / "channel-pools.json"
    pools.write_text(
        json.dumps({c.pool: {"slots": 1, "description": f"order sync of {c.code}"} for c in config.channels})
    )
    _airflow_ok(env, "pools", "import", str(pools))


def _interrupt(signum: int, frame: object) -> None:
    # The first Ctrl-C or SIGTERM stops the demo; a second one must not interrupt the clean-up itself.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def demo_warehouse(stack: ExitStack) -> tuple[HubConfig, str, Engine]:
    """What every demo starts with: Ctrl-C and SIGTERM stop it, the warehouse (embedded unless
    ``HUB_DATABASE_URL``; stopped with ``stack``) migrated and holding the configured channels."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    config = load_config()
    embedded = "HUB_DATABASE_URL" not in os.environ
    print(
        f"- warehouse: {'embedded Postgres under .state/pgdata' if embedded else 'HUB_DATABASE_URL'}",
        flush=True,
    )
    db_url = db.database_url()
    if embedded:
        stack.callback(db.stop_embedded)
    db.migrate(db_url)
    engine = db.engine_for(db_url)
    register_config(engine, config)
    return config, db_url, engine


def demo_sandboxes(
    stack: ExitStack, config: HubConfig, engine: Engine, history: timedelta
) -> list[RunningSandbox]:
    """One sandbox per enabled channel (stopped with ``stack``), its catalog seeded into the warehouse."""
    sandboxes = []
    for index, channel in enumerate(c for c in config.channels if c.enabled):
        sandbox = start_sandbox(stack, channel, DEMO_SEED + index, history)
        seed_from_catalog(engine, channel, World(seed=sandbox.seed).catalog)
        sandboxes.append(sandbox)
        print(f"- sandbox {channel.platform} for {channel.code}: {sandbox.base_url}", flush=True)
    return sandboxes


def run_demo(once: bool, history: timedelta, webhooks: bool = True) -> int:
    with ExitStack() as stack:
        config, db_url, engine = demo_warehouse(stack)
        sandboxes = demo_sandboxes(stack, config, engine, history)
        env = airflow_env(db_url, airflow_metadata_url(db_url), sandboxes)
        prepare_airflow(env, config)
        since = history_start(history).strftime("%Y-%m-%dT%H:%M:%SZ")
        first_run_conf = json.dumps({"since": since})
        if once:
            return _run_once(env, config, sandboxes, first_run_conf, engine)
        return _serve(stack, env, sandboxes, first_run_conf, engine, webhooks)


# The carriers a warehouse would use per platform (the connectors map them to each platform's codes).


def drop_demo_shipments(engine, sandboxes: list[RunningSandbox], folder: Path, per_channel: int = 3) -> int:
    """Write the shipments file a warehouse would send after picking a few ready orders of every channel."""
    from warehouse.shipment_outbox import orders_ready_to_ship

    rows = []
    shipped_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with engine.connect() as conn:
        for sb in sandboxes:
            carrier = declaration(sb.channel.platform).demo_carrier
            for number, (order_id, lines) in enumerate(
                orders_ready_to_ship(conn, sb.channel.code, per_channel)
            ):
                serial = f"{sb.seed % 1000:03d}{number:04d}{len(rows):05d}"
                tracking = f"1Z999AA1{serial}" if carrier == "UPS" else f"SF10{serial}"
                rows += [
                    {
                        "shipment_id": f"DEMO-{sb.channel.code}-{order_id}",
                        "channel": sb.channel.code,
                        "order_id": order_id,
                        "line_id": line_id,
                        "quantity": quantity,
                        "carrier": carrier,
                        "tracking_number": tracking,
                        "shipped_at": shipped_at,
                    }
                    for line_id, _, quantity in lines
                ]
    if rows:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"shipments_demo_{datetime.now(UTC):%Y%m%d%H%M%S}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        old = time.time() - 60  # the folder import takes files once they are 10 s old (fully written)
        os.utime(path, (old, old))
    return len({row["shipment_id"] for row in rows})


def _run_once(env, config: HubConfig, sandboxes: list[RunningSandbox], conf: str, engine) -> int:
    failed = []

    def dag_test(dag_id: str, *args: str) -> None:
        done = _airflow(env, "dags", "test", dag_id, *args, log_name=f"{dag_id}.log")
        if done.returncode != 0:
            failed.append(dag_id)
            print(f"  FAILED: see {LOG_DIR / (dag_id + '.log')}", flush=True)

    print("- first sync of every channel (airflow dags test sync_orders__*) ...", flush=True)
    for sb in sandboxes:
        dag_test(sb.channel.dag_id, "-c", conf)
    print("- order routing: where wechat_demo's orders reserve (nearest location first) ...", flush=True)
    show_routing(engine)
    folder = Path(env["HUB_IMPORT_DIR"])
    shipments = drop_demo_shipments(engine, sandboxes, folder)
    print(f"- the warehouse ships {shipments} orders; a store sends a stock count (盘点) ...", flush=True)
    drop_demo_store_file(engine, folder)
    print("- store_import, push_shipments__*, push_stock__* ...", flush=True)
    dag_test("store_import")
    for sb in sandboxes:
        dag_test(f"push_shipments__{sb.channel.code}")
        dag_test(f"push_stock__{sb.channel.code}")
    print("- a customer brings back a unit of a shipped order at the Shanghai store (退货) ...", flush=True)
    demo_return(engine, store="STORE-SH")
    print(
        "- a transfer (调拨) from the main warehouse to the Shanghai store, half of it received ...",
        flush=True,
    )
    demo_transfer(engine, destination="STORE-SH")
    print("- a sale at the Shanghai store's till, posted to the live POS feed ...", flush=True)
    demo_pos_sale(engine, config, store="STORE-SH")
    print("- light reconciliation of every channel (reconcile_light__*) ...", flush=True)
    for sb in sandboxes:
        dag_test(f"reconcile_light__{sb.channel.code}")
    print()
    print_summary(engine)
    print_reconciliation(engine)
    print()
    print_sales_demo(engine)
    return 1 if failed else 0


def hold_dags(env: dict[str, str]) -> None:
    """Put every DAG of the DAG folder into the metadata database, all paused, before the scheduler starts.

    Task processes report to the API server's Execution API; a task the scheduler queues before the API
    server answers fails its try (``executor_state=failed``) once the task SDK's few retries run out. Pausing
    at creation covers a new database; DAGs a previous demo left unpaused are paused again here."""
    _airflow_ok(env, "dags", "reserialize")
    _airflow_ok(env, "dags", "pause", "--treat-dag-id-as-regex", "--yes", ".")


def _airflow_ok(env: dict[str, str], *args: str) -> None:
    if _airflow(env, *args, log_name="airflow-setup.log").returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed; see {LOG_DIR / 'airflow-setup.log'}")


def _serve(stack: ExitStack, env, sandboxes: list[RunningSandbox], conf: str, engine, webhooks: bool) -> int:
    port = env.get("AIRFLOW__API__PORT", "8080")
    env.update(demo_webhooks.airflow_api_env(port, demo_webhooks.airflow_admin_password(AIRFLOW_HOME)))
    print("- every DAG into the metadata database, paused until the API server answers ...", flush=True)
    hold_dags(env)
    log = open(LOG_DIR / "airflow-standalone.log", "ab")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    standalone = subprocess.Popen(
        [airflow_bin, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.callback(_terminate, standalone)
    print("- starting airflow standalone (API server, scheduler, DAG processor, triggerer) ...", flush=True)
    wait_until(
        "airflow standalone healthy",
        lambda: airflow_healthy(f"http://localhost:{port}"),
        timeout=180,
        process=standalone,
    )
    # Only now may tasks run: every DAG is in the metadata database (hold_dags) and the API server answers.
    _airflow_ok(env, "dags", "unpause", "--treat-dag-id-as-regex", "--yes", ".")
    for sb in sandboxes:
        _airflow(env, "dags", "trigger", sb.channel.dag_id, "-c", conf, log_name="airflow-setup.log")
    password = _admin_password()
    if webhooks:
        receiver = demo_webhooks.start_receiver(
            stack, env, LOG_DIR, demo_webhooks.receiver_port(), _wait_http, _terminate
        )
        print(f"- webhook receiver: {receiver}/webhooks/<channel>", flush=True)
        for line in demo_webhooks.subscribe(sandboxes, receiver, engine):
            print(f"  {line}", flush=True)
    print(
        f"\nAirflow UI: http://localhost:{port}  login: admin / {password}\n"
        f"ChannelHub page (health, exception queue, findings): http://localhost:{port}/plugin/channelhub\n"
        f"DAGs: {', '.join(sb.channel.dag_id for sb in sandboxes)}"
        " (first run triggered; then one every interval)\n"
        f"Logs: {LOG_DIR}   Ctrl-C stops everything started here.\n",
        flush=True,
    )
    try:
        while standalone.poll() is None:
            time.sleep(30)
            print(f"--- {datetime.now(UTC):%H:%M:%S} UTC", flush=True)
            print_summary(engine)
            print_reconciliation(engine)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    return 0


def _admin_password() -> str:
    generated = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if generated.exists():
            return json.loads(generated.read_text()).get("admin", "(see airflow-standalone.log)")
        time.sleep(1)
    return f"(see {generated})"
