"""Serve a platform simulator on 127.0.0.1 with uvicorn in a background thread (tests, demo, benchmarks).

with run_sandbox("shopify", seed=7, clock=Clock.frozen(t0)) as sandbox:
    requests.get(f"{sandbox.base_url}/admin/api/2026-10/orders.json",
                 headers={"X-Shopify-Access-Token": sandbox.access_token})

``tls=True`` serves HTTPS with a throwaway certificate (signed by a throwaway CA whose PEM file is
``sandbox.ca_bundle``, for the client's ``verify``): a simulator can then tell TLS from plain HTTP by the
transport itself (``scope["scheme"]``), as WooCommerce's ``is_ssl()`` does.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platforms.registry import PLATFORM_NAMES
from sandbox import shopify
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.world import DEFAULT_INTERVAL, World

PLATFORMS = PLATFORM_NAMES  # every registered platform has its simulator, sandbox.<name>

STARTUP_TIMEOUT_SECONDS = 15.0
log = logging.getLogger(__name__)


@dataclass
class RunningSandbox:
    platform: str
    base_url: str  # e.g. "http://127.0.0.1:54321"
    port: int
    world: World
    faults: Faults
    clock: Clock
    access_token: str = field(repr=False)
    app: FastAPI = field(repr=False)
    ca_bundle: str | None = None  # with tls: the PEM of the CA that signed the sandbox's certificate


def create_platform_app(
    platform: str,
    world: World,
    *,
    access_token: str,
    faults: Faults,
    bucket_size: int,
    leak_per_second: float,
    shop_timezone: str,
) -> FastAPI:
    """Each platform is a package ``sandbox.<platform>`` whose ``__init__`` exports ``create_app(world, *,
    access_token, faults)`` (``access_token`` is the one secret the sandbox checks: token, consumer secret or
    app secret) and, where the platform has a public client id, a ``SANDBOX_LOGIN`` constant; its app keeps
    its renderer as ``app.state.renderer``."""
    if platform not in PLATFORMS:
        raise ValueError(f"no sandbox for platform {platform!r} (have: {', '.join(PLATFORMS)})")
    module = import_module(f"sandbox.{platform}")
    if platform == "shopify":
        return module.create_app(
            world,
            access_token=access_token,
            faults=faults,
            bucket_size=bucket_size,
            leak_per_second=leak_per_second,
            shop_timezone=shop_timezone,
        )
    return module.create_app(world, access_token=access_token, faults=faults)


def sandbox_connection(
    platform: str, base_url: str, secret: str, ca_bundle: str | None = None
) -> dict[str, Any]:
    """An Airflow connection (JSON form) for a running sandbox: its URL and its one secret, plus, where the
    platform has them, its public client id (``SANDBOX_LOGIN``) and non-secret extras (``SANDBOX_EXTRA``),
    and for a TLS sandbox the CA to trust (``ca_bundle``). The connector picks its auth from the URL (e.g.
    WooCommerce: OAuth 1.0a over http, Basic over https)."""
    module = import_module(f"sandbox.{platform}")
    conn: dict[str, Any] = {"conn_type": "http", "host": base_url, "password": secret}
    if login := getattr(module, "SANDBOX_LOGIN", None):
        conn["login"] = login
    if extra := getattr(module, "SANDBOX_EXTRA", None):
        conn["extra"] = dict(extra)
    if ca_bundle:
        conn.setdefault("extra", {})["ca_bundle"] = ca_bundle
    # The keys the hub verifies this sandbox's webhook deliveries with (where they are not the secret).
    if webhook_extra := getattr(module, "webhook_extra", None):
        conn.setdefault("extra", {}).update(webhook_extra(secret))
    return conn


def write_test_certificate(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """(CA PEM, certificate PEM, key PEM) in ``folder``: a throwaway CA and a server certificate it signed
    for ``host``, localhost, 127.0.0.1 and ::1, valid for a week."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def builder(subject: str, issuer: str, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("ChannelHub sandbox CA", "ChannelHub sandbox CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in ("127.0.0.1", "::1", host):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    cert = (
        builder(host, "ChannelHub sandbox CA", key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class QuietClientDisconnects:
    """ASGI wrapper: a client gone before its request body was read is one INFO line, not an ERROR traceback.

    A handler (or a gateway middleware) reading the body of a request whose client has gone (the crash
    harness SIGKILLs the hub mid-request; uvicorn drops even a fully received body once the socket closes)
    gets starlette's ``ClientDisconnect``, which nothing handles, so uvicorn logs "Exception in ASGI
    application" with a traceback. Only that case is quietened: any other exception, and a
    ``ClientDisconnect`` while the server never told the app the client had gone, still reach uvicorn's
    traceback logging.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        try:
            await self.app(scope, watched_receive, send)
        except Exception as error:
            if not (gone and _client_disconnects_only(error)):
                raise
            log.info("%s %s: the client went away mid-request", scope.get("method"), scope.get("path"))


def _client_disconnects_only(error: BaseException) -> bool:
    """``error`` is a ``ClientDisconnect``, or a task group's bundle of nothing else."""
    if isinstance(error, BaseExceptionGroup):
        return all(_client_disconnects_only(inner) for inner in error.exceptions)
    return isinstance(error, ClientDisconnect)


@contextmanager
def run_sandbox(
    platform: str = "shopify",
    *,
    seed: int = 1,
    port: int = 0,
    access_token: str = shopify.DEFAULT_ACCESS_TOKEN,
    start: datetime | None = None,
    interval: timedelta | float = DEFAULT_INTERVAL,
    clock: Clock | None = None,
    faults: Faults | None = None,
    bucket_size: int = 40,
    leak_per_second: float = 2.0,
    shop_timezone: str = shopify.DEFAULT_SHOP_TIMEZONE,
    host: str = "127.0.0.1",
    world: World | None = None,
    tls: bool = False,
) -> Iterator[RunningSandbox]:
    """Serve ``platform``'s simulator until the block exits. ``port=0`` picks a free port.

    ``world`` overrides ``seed``/``start``/``interval``/``clock`` (for callers that built one already).
    ``tls``: serve HTTPS (``base_url`` https, ``ca_bundle`` the CA to trust).
    """
    clock = world.clock if world is not None else (clock or Clock())
    world = world or World(seed, start=start, interval=interval, clock=clock)
    faults = faults if faults is not None else Faults(seed=seed)
    app = create_platform_app(
        platform,
        world,
        access_token=access_token,
        faults=faults,
        bucket_size=bucket_size,
        leak_per_second=leak_per_second,
        shop_timezone=shop_timezone,
    )
    with serve_app(app, host=host, port=port, tls=tls, name=f"sandbox-{platform}") as served:
        try:
            yield RunningSandbox(
                platform=platform,
                base_url=served.base_url,
                port=served.port,
                world=world,
                faults=faults,
                clock=clock,
                access_token=access_token,
                app=app,
                ca_bundle=served.ca_bundle,
            )
        finally:
            if (webhooks := getattr(app.state, "webhooks", None)) is not None:
                webhooks.stop()


@dataclass(frozen=True)
class Served:
    base_url: str
    port: int
    ca_bundle: str | None


@contextmanager
def serve_app(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, tls: bool = False, name: str = "sandbox"
) -> Iterator[Served]:
    """Serve ``app`` with uvicorn in a background thread until the block exits. ``port=0`` picks a free port;
    ``tls`` serves HTTPS with a throwaway certificate (``ca_bundle`` the CA to trust)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    bound_port = listener.getsockname()[1]
    certificates = tempfile.TemporaryDirectory(prefix="sandbox-tls-") if tls else None
    ca_bundle = cert_file = key_file = None
    if certificates is not None:
        ca_bundle, cert_file, key_file = write_test_certificate(Path(certificates.name), host)
    config = uvicorn.Config(
        QuietClientDisconnects(app),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        ssl_certfile=str(cert_file) if cert_file else None,
        ssl_keyfile=str(key_file) if key_file else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"{name}-{bound_port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{name} failed to start on {host}:{bound_port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not start within {STARTUP_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.01)
        yield Served(
            f"{'https' if tls else 'http'}://{host}:{bound_port}",
            bound_port,
            str(ca_bundle) if ca_bundle else None,
        )
    finally:
        server.should_exit = True
        # An idle TLS keep-alive connection closes only when the client answers its close_notify, which a
        # pooled client never sends: uvicorn would wait for it; drop such connections instead.
        server.force_exit = tls
        thread.join(timeout=10)
        listener.close()
        if certificates is not None:
            certificates.cleanup()
