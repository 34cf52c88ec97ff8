"""docker-compose.yml, Dockerfile and .env.example (issue 18): the production layout, validated, never run.

There is no container engine on the machines this is tested on, so the compose file is checked the way
compose itself reads it: Debian's ``docker-compose config`` (``make test`` installs it when missing) renders
it with a real ``.env`` made from ``.env.example``, and the rendered services are compared: one image, one
executor, broker, result backend, metadata database and set of secrets for every Airflow service, the
warehouse reaching the tasks, health checks and start order, profiles. The demo profile's setup service runs
here for real against a sandbox and the test warehouse.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from channelhub.compose_demo import sandbox_url, seed_channels
from channelhub.config import parse_config
from channelhub.platforms import PLATFORMS
from sandbox.server import run_sandbox, sandbox_connection
from tests.hub_configs import hub_document

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Every service that runs Airflow (or the hub's code beside it) and so must agree on all of its settings.
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-cli",
    "flower",
    "demo-setup",
    "hub-webhooks",
    "hub-store-feed",
}
LONG_RUNNING = AIRFLOW_SERVICES - {"airflow-init", "airflow-cli", "demo-setup"}
SANDBOXES = {f"sandbox-{platform.replace('_', '-')}": platform for platform in PLATFORMS}
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY$|^AIRFLOW_CONN_", re.IGNORECASE)


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (values here carry no quotes, by the file's own rule)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `make test` installs Debian's docker-compose package")
    # Only the .env decides: none of this session's own variables (HUB_DATABASE_URL, AIRFLOW_*) may leak in.
    environ = {"PATH": "/usr/bin:/bin", "ENV_FILE_PATH": str(env_file)}
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *args,
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def env_values(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A real .env: .env.example with every empty value set as its comments say (a Fernet key for the
    Fernet key, random hex for the rest)."""
    values = read_env(ENV_EXAMPLE)
    for key, value in values.items():
        if not value:
            values[key] = Fernet.generate_key().decode() if "FERNET" in key else secrets.token_hex(24)
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    yield path, values


@pytest.fixture(scope="module")
def services(env_values: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    env_file, _ = env_values
    done = compose(env_file, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    """.env.example as committed has every secret empty: compose stops and names what to set."""
    env_file = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)
    done = compose(env_file, "config")
    assert done.returncode != 0
    assert re.search(r"set \w+ in \.env", done.stderr), done.stderr


def test_every_airflow_service_shares_image_executor_broker_database_and_secrets(
    services: dict[str, Any], env_values: tuple[Path, dict[str, str]]
) -> None:
    _, values = env_values
    assert set(services) >= AIRFLOW_SERVICES
    airflow_url = f"postgresql+psycopg2://airflow:{values['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow"
    expected = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:@redis:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": airflow_url.replace("postgresql+psycopg2", "db+postgresql"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
        "AIRFLOW__CORE__FERNET_KEY": values["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": values["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__API__SECRET_KEY": values["AIRFLOW_API_SECRET_KEY"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": "/opt/channelhub/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER": "/opt/channelhub/plugins",
    }
    Fernet(values["AIRFLOW_FERNET_KEY"])  # a usable key, as .env.example's command makes one
    first = services["airflow-apiserver"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == first["image"], name
        assert service["build"] == {"context": str(ROOT), "dockerfile": "Dockerfile"}, name
        environment = service["environment"]
        assert {key: environment.get(key) for key in expected} == expected, name
        # The whole .env reaches every Airflow container: the channels' connections with it.
        for key, value in values.items():
            if key.startswith("AIRFLOW_CONN_"):
                assert environment[key] == value, (name, key)
    # The sandboxes run the same image (the sandbox package is in it) and are built, never pulled.
    for name in SANDBOXES:
        assert services[name]["image"] == first["image"]
        assert services[name]["build"] == first["build"]


def test_the_warehouse_is_a_database_of_its_own_that_reaches_the_tasks(
    services: dict[str, Any], env_values: tuple[Path, dict[str, str]]
) -> None:
    _, values = env_values
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        warehouse = make_url(environment["HUB_DATABASE_URL"])
        metadata = make_url(environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert (warehouse.host, warehouse.database, warehouse.username) == (
            "postgres",
            "channelhub",
            "channelhub",
        )
        assert warehouse.password == values["HUB_DB_PASSWORD"]
        assert (metadata.host, metadata.database, metadata.username) == ("postgres", "airflow", "airflow")
        assert environment["HUB_IMPORT_DIR"] == "/opt/channelhub/imports", name
        # Every worker sees the same import folder, whichever of them runs store_import.
        assert any(volume.endswith(":/opt/channelhub/imports:rw") for volume in services[name]["volumes"])
    # Postgres creates both databases, each with its owner, from the same passwords.
    postgres = services["postgres"]
    assert postgres["environment"]["AIRFLOW_DB_PASSWORD"] == values["AIRFLOW_DB_PASSWORD"]
    assert postgres["environment"]["HUB_DB_PASSWORD"] == values["HUB_DB_PASSWORD"]
    assert any("postgres-init.sh:/docker-entrypoint-initdb.d/" in volume for volume in postgres["volumes"])
    init_sql = (ROOT / "deploy" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE airflow OWNER airflow" in init_sql
    assert "CREATE DATABASE channelhub OWNER channelhub" in init_sql


def test_airflow_init_migrates_airflow_and_the_warehouse(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = "\n".join(init["command"])
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"  # the image's entrypoint: airflow db migrate
    assert "/entrypoint airflow version" in script
    assert "python -m channelhub.cli db migrate" in script
    assert "airflow pools set" in script


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    for name in {"postgres", "redis", *LONG_RUNNING, *SANDBOXES}:
        assert services[name]["healthcheck"]["test"], name
    for name in LONG_RUNNING | {"airflow-init", "demo-setup"}:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
        if name != "airflow-init":
            assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
    # A task reports to the API server from its first moment.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    setup = services["demo-setup"]["depends_on"]
    assert setup["airflow-apiserver"] == {"condition": "service_healthy"}
    for name in SANDBOXES:
        assert setup[name] == {"condition": "service_healthy"}


def test_profiles(services: dict[str, Any]) -> None:
    """Flower only with --profile flower, the sandboxes and their setup only with --profile demo."""
    assert services["flower"]["profiles"] == ["flower"]
    assert services["airflow-cli"]["profiles"] == ["debug"]
    for name in [*SANDBOXES, "demo-setup"]:
        assert services[name]["profiles"] == ["demo"], name
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", *LONG_RUNNING - {"flower"}, "airflow-init"}


def test_demo_sandboxes_and_their_connections(
    services: dict[str, Any], env_values: tuple[Path, dict[str, str]]
) -> None:
    """One sandbox per platform of the registry; each demo channel's connection in .env.example reaches
    its platform's sandbox (through the loopback forward) with the secret that sandbox checks."""
    _, values = env_values
    forwards = dict(item.split("=", 1) for item in values["HUB_DEMO_SANDBOX_FORWARDS"].split(","))
    config = parse_config(yaml.safe_load((ROOT / "config" / "channels.yaml").read_text()))
    assert {c.platform for c in config.channels} == set(PLATFORMS)
    for channel in config.channels:
        name = next(name for name, platform in SANDBOXES.items() if platform == channel.platform)
        sandbox = services[name]
        command = sandbox["command"][-1]
        port = re.search(r"--port (\d+)", command).group(1)
        assert f"python -m sandbox {channel.platform} --host 0.0.0.0 --port {port}" in command
        assert str(port) in [str(p) for p in sandbox["expose"]]
        local_port = next(local for local, target in forwards.items() if target == f"{name}:{port}")
        connection = json.loads(values[f"AIRFLOW_CONN_{channel.conn_id.upper()}"])
        token = sandbox["environment"]["SANDBOX_ACCESS_TOKEN"]
        assert connection == sandbox_connection(channel.platform, f"http://127.0.0.1:{local_port}", token)
        # No secret of the Airflow stack in a sandbox.
        assert set(sandbox["environment"]) == {
            "CONNECTION_CHECK_MAX_COUNT",
            "DEMO_HISTORY_HOURS",
            "SANDBOX_ACCESS_TOKEN",
        }


def _environments(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("environment"), dict):
            yield node["environment"]
        for value in node.values():
            yield from _environments(value)


def test_no_literal_secret_in_the_compose_file() -> None:
    """Every secret-looking setting of docker-compose.yml is a ${...} from .env, and so is the password of
    every URL; the demo's sandbox credentials live in .env.example only."""
    raw_text = COMPOSE_FILE.read_text()
    raw = yaml.safe_load(raw_text)
    for environment in _environments(raw):
        for key, value in environment.items():
            value = str(value)
            if SECRET_NAMES.search(key) and key != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE":
                assert value.startswith("${") and value.endswith("}"), key
            for password in re.findall(r"://[^:/@]*:([^@]*)@", value):
                assert password == "" or password.startswith("${"), key
            assert not key.startswith("AIRFLOW_CONN_"), key  # connections come from .env only
    for key, value in read_env(ENV_EXAMPLE).items():
        if value and SECRET_NAMES.search(key):
            assert value not in raw_text, key


def test_the_image_is_the_pinned_airflow_with_the_locked_project() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow = next(pin.split("==")[1] for pin in pins if pin.startswith("apache-airflow=="))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{airflow}-python3.11\nFROM ${{AIRFLOW_IMAGE}}" in dockerfile
    assert "--constraint /opt/channelhub/requirements.lock --editable /opt/channelhub" in dockerfile
    assert '"/opt/channelhub/deploy/entrypoint.sh"' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", ".state", ".git", ".env"} <= set(ignored)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_demo_setup_seeds_each_channel_from_its_sandbox(fresh_database_url: str) -> None:
    """What the demo-setup service does before unpausing: the catalog, listings and opening stock from the
    world the sandbox serves (its seed asked of it), once however often it runs; the first sync starts at
    the sandbox's first order."""
    config = parse_config(hub_document({"shop": "shopify", "yz": "youzan"}, location="WH-MAIN"))
    engine = create_engine(fresh_database_url)
    try:
        with (
            run_sandbox("shopify", seed=20261124, access_token="t-shop") as shop,
            run_sandbox("youzan", seed=20261127, access_token="t-yz") as yz,
        ):
            environ = {
                "AIRFLOW_CONN_SHOP": json.dumps(sandbox_connection("shopify", shop.base_url, "t-shop")),
                "AIRFLOW_CONN_YZ": json.dumps(sandbox_connection("youzan", yz.base_url, "t-yz")),
            }
            first = seed_channels(engine, config, environ)
            counts = _listing_counts(engine)
            again = seed_channels(engine, config, environ)
            assert _listing_counts(engine) == counts
        assert [(s.channel.code, s.seed) for s in first] == [("shop", 20261124), ("yz", 20261127)]
        assert first == again
        assert first[0].since == shop.world.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert counts["shop"] > 0 and counts["yz"] > 0
        with pytest.raises(KeyError, match="AIRFLOW_CONN_SHOP is not set"):
            sandbox_url(config.channel("shop"), {})
        with pytest.raises(KeyError) as refused:
            sandbox_url(config.channel("shop"), {"AIRFLOW_CONN_SHOP": "http://user:t-shop@host"})
        assert "t-shop" not in str(refused.value)
    finally:
        engine.dispose()


def _listing_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.code, count(*) FROM channel_listings l JOIN channels c ON c.id = l.channel_id"
                " GROUP BY c.code"
            )
        ).all()
        ledger = conn.execute(text("SELECT count(*) FROM stock_ledger")).scalar()
    return {**dict(rows), "ledger": ledger}
