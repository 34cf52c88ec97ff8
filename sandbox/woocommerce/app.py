"""The WooCommerce sandbox's app: WordPress's authentication (Basic over HTTPS, OAuth 1.0a over HTTP, as
WooCommerce checks them), the host's throttling and faults, the routes and the ``/_sandbox`` knobs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Match

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.common import maybe_truncated
from sandbox.faults import Faults, ServedPages
from sandbox.webhooks import install_webhooks
from sandbox.woocommerce.listing import add_listing_routes
from sandbox.woocommerce.pushes import add_write_routes
from sandbox.woocommerce.render import WooRenderer
from sandbox.woocommerce.stock import CatalogRenderer
from sandbox.woocommerce.store import WRITE_METHODS, WooStore
from sandbox.woocommerce.webhooks import WooWebhooks
from sandbox.woocommerce.wire import (
    API_PREFIX,
    BAD_KEY,
    BAD_SECRET,
    CANNOT_VIEW,
    CRITICAL_ERROR,
    DEFAULT_SITE_TIMEZONE,
    HOST_THROTTLE_PAGE,
    MAX_PER_PAGE,
    NO_ROUTE,
    PLATFORM,
    RETRY_AFTER_SECONDS,
    SANDBOX_LOGIN,
    _error,
)
from sandbox.world import World

# --------------------------------------------------------------------------------------------------
# Authentication: WC_REST_Authentication (woocommerce/woocommerce, includes/class-wc-rest-authentication.php)
# --------------------------------------------------------------------------------------------------

OAUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
OAUTH_WINDOW_SECONDS = 15 * 60  # a timestamp within 15 minutes of the server's clock; nonces kept as long
_OAUTH_HEADER_PARAM = re.compile(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))')


def php_empty(value: Any) -> bool:
    """PHP's ``empty()`` of a request value: missing, "" and "0" are empty."""
    return value is None or value == "" or value == "0" or value == [] or value == {}


def php_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``$_GET`` from decoded query pairs, as PHP builds it: a repeated name keeps its last value, ``a[]`` and
    ``a[k]`` make arrays, and dots and spaces in a name become underscores."""
    found: dict[str, Any] = {}
    for raw_name, value in pairs:
        name, bracket, rest = raw_name.partition("[")
        name = name.lstrip(" ").replace(".", "_").replace(" ", "_")
        if not name:
            continue
        if not bracket or "]" not in rest:
            found[name] = value
            continue
        inner = rest.split("]", 1)[0]
        array = found.get(name)
        if not isinstance(array, dict):
            array = found[name] = {}
        if inner == "":
            numeric = [key for key in array if isinstance(key, int)]
            array[max(numeric) + 1 if numeric else 0] = value
        else:
            array[int(inner) if inner.isdigit() else inner] = value
    return found


def rawurlencode(value: Any) -> Any:
    """``wc_rest_urlencode_rfc3986``: PHP ``rawurlencode`` of a value, or of each value of an array."""
    if isinstance(value, dict):
        return {key: rawurlencode(item) for key, item in value.items()}
    return quote(str(value), safe="")


def _join_with_equals_sign(params: dict[Any, Any], joined: list[str], key: str = "") -> list[str]:
    for param_key, param_value in params.items():
        name = f"{key}%5B{param_key}%5D" if key else str(param_key)  # nested arrays: name[key]
        if isinstance(param_value, dict):
            _join_with_equals_sign(param_value, joined, name)
        else:
            joined.append(rawurlencode(f"{name}={param_value}"))
    return joined


def wc_signature(method: str, base_request_uri: str, params: dict[str, Any], secret: str) -> str:
    """``check_oauth_signature``'s own computation, step by step: sort by name (``strcmp``), encode names and
    values, join each pair with ``=`` and encode it again, join the pairs with ``%26``; the string to sign is
    ``METHOD&rawurlencode(base request URI)&pairs``; HMAC keyed by ``consumer_secret . '&'``."""
    ordered = dict(sorted(params.items(), key=lambda item: item[0].encode()))
    normalized = {rawurlencode(key): rawurlencode(value) for key, value in ordered.items()}
    query_string = "%26".join(_join_with_equals_sign(normalized, []))
    string_to_sign = f"{method.upper()}&{rawurlencode(base_request_uri)}&{query_string}"
    algorithm = str(params["oauth_signature_method"]).replace("HMAC-", "").lower()
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), algorithm).digest()
    return base64.b64encode(digest).decode("ascii")


class WooAuthentication:
    """Who a request is, the way WooCommerce decides it: over TLS (``is_ssl()``) HTTP Basic, or the
    ``consumer_key``/``consumer_secret`` query parameters, are tried first; then (always, and only, over
    plain HTTP) OAuth 1.0a one-legged from the query string or an ``Authorization: OAuth`` header. A form-
    encoded POST body is not read here (WooCommerce merges ``$_POST`` in too): the hub sends JSON bodies.

    ``authenticate`` answers True (a valid key), an error body (a 401 WooCommerce raises itself), or None:
    no credential it reads (the route's own permission check then refuses, 401 ``woocommerce_rest_cannot_*``).
    The OAuth timestamp is checked against the host's clock (plus the faults' skew): what a WordPress server
    compares with, whatever moment the order world is frozen at.
    """

    def __init__(self, consumer_key: str, consumer_secret: str, faults: Faults) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.faults = faults
        self._nonces: dict[Any, str] = {}  # the key's ``nonces`` column: timestamp -> nonce
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.faults.clock_skew_seconds

    def _known(self, key: str) -> bool:
        # A revoked key is deleted in WooCommerce: it is then as unknown as a wrong one.
        return not self.faults.credentials_revoked and hmac.compare_digest(
            key.encode(), self.consumer_key.encode()
        )

    def authenticate(self, request: Request) -> bool | dict[str, Any] | None:
        error: dict[str, Any] | None = None
        if request.url.scheme == "https":  # is_ssl(): from the transport itself
            verdict = self._basic(request)
            if verdict is True:
                return True
            error = verdict
        verdict = self._oauth(request)
        if verdict is True:
            return True
        return verdict or error

    def _basic(self, request: Request) -> bool | dict[str, Any] | None:
        """``perform_basic_authentication``: the query parameters first, else the Basic header. An unknown key
        is no error (nothing authenticated); a known key with the wrong secret is."""
        key, secret = request.query_params.get("consumer_key"), request.query_params.get("consumer_secret")
        if php_empty(key) or php_empty(secret):
            key = secret = None
            header = request.headers.get("Authorization", "")
            if header[:6].lower() == "basic ":
                try:
                    decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    decoded = ""
                key, _, secret = decoded.partition(":")
        if php_empty(key) or php_empty(secret) or not self._known(str(key)):
            return None
        if not hmac.compare_digest(str(secret).encode(), self.consumer_secret.encode()):
            return BAD_SECRET
        return True

    def _oauth(self, request: Request) -> bool | dict[str, Any] | None:
        """``perform_oauth_authentication``: every check and error in WooCommerce's order."""
        params: dict[str, Any] = php_query(request.query_params.multi_items())
        header = request.headers.get("Authorization", "").strip()
        if header.startswith("OAuth "):
            for match in _OAUTH_HEADER_PARAM.finditer(header):
                params[match[1]] = unquote_plus(match[3] or match[4])
        missing = [name for name in OAUTH_PARAMS if php_empty(params.get(name))]
        if len(missing) == len(OAUTH_PARAMS):
            return None  # not even trying OAuth
        if missing:
            word = "parameter" if len(missing) == 1 else "parameters"
            return _error(
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth {word} {', '.join(missing)}",
                401,
            )
        if not self._known(str(params["oauth_consumer_key"])):
            return BAD_KEY
        # The base request URI: the site's home URL (here: the host the request named, and the path the site
        # is mounted under, the ASGI root_path), the scheme of the transport, and the request's raw path.
        scheme = "https" if request.url.scheme == "https" else "http"
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        host = request.headers.get("host", request.url.netloc)
        home = f"{scheme}://{host}{request.scope.get('root_path', '')}"
        base_request_uri = f"{home}/{raw_path.decode('latin-1').lstrip('/')}"
        provided = unquote(str(params.pop("oauth_signature")).replace(" ", "+"))
        if params["oauth_signature_method"] not in ("HMAC-SHA1", "HMAC-SHA256"):
            return _error(
                "woocommerce_rest_authentication_error",
                "Invalid signature - signature method is invalid.",
                401,
            )
        expected = wc_signature(request.method, base_request_uri, params, self.consumer_secret)
        if not hmac.compare_digest(expected.encode(), provided.encode()):
            return _error(
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
                401,
            )
        return self._timestamp_and_nonce(str(params["oauth_timestamp"]), str(params["oauth_nonce"]))

    def _timestamp_and_nonce(self, timestamp: str, nonce: str) -> bool | dict[str, Any]:
        """``check_oauth_timestamp_and_nonce``. WooCommerce keeps one nonce per timestamp (the array is keyed
        by it): a second request in the same second replaces the first one's nonce."""
        now = self.now()
        try:
            at = float(timestamp)
        except ValueError:
            at = math.nan
        if not now - OAUTH_WINDOW_SECONDS <= at <= now + OAUTH_WINDOW_SECONDS:
            return _error("woocommerce_rest_authentication_error", "Invalid timestamp.", 401)
        with self._lock:
            if nonce in self._nonces.values():
                return _error(
                    "woocommerce_rest_authentication_error",
                    "Invalid nonce - nonce has already been used.",
                    401,
                )
            self._nonces[int(timestamp) if timestamp.isdigit() else timestamp] = nonce
            for kept in list(self._nonces):
                if float(kept) < now - OAUTH_WINDOW_SECONDS:
                    del self._nonces[kept]
        return True


def refused(method: str, path: str) -> dict[str, Any]:
    """What a route's permission check answers a request that authenticated as no one (WooCommerce's
    ``WC_REST_Posts_Controller`` / ``WC_REST_CRUD_Controller`` wording; 401 while not logged in)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    one = last.isdigit() or re.fullmatch(r"[0-9a-f]{32}", last) is not None
    if method in ("GET", "HEAD"):
        if one:
            return _error("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.", 401)
        return CANNOT_VIEW
    if method == "DELETE":
        return _error(
            "woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource.", 401
        )
    if one:  # POST, PUT, PATCH on one resource: an update
        return _error(
            "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.", 401
        )
    return _error("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.", 401)


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    consumer_key: str = SANDBOX_LOGIN,
    site_timezone: str = DEFAULT_SITE_TIMEZONE,
    shipment_tracking: bool = True,
    checkout_drafts: bool = True,
) -> FastAPI:
    """The WooCommerce simulator over ``world``; ``access_token`` is the consumer secret it accepts.
    ``shipment_tracking``: whether the shop has the Shipment Tracking extension; ``checkout_drafts``:
    whether abandoned checkout drafts show in listings (both also switchable at run time with ``POST
    /_sandbox/woocommerce {"shipment_tracking": false, "checkout_drafts": false}``)."""
    if not access_token or not consumer_key:
        raise ValueError("the consumer key and secret must not be empty")
    renderer = WooRenderer(world, site_timezone=site_timezone)
    store = WooStore(world, shipment_tracking=shipment_tracking, checkout_drafts=checkout_drafts)
    products = CatalogRenderer(store, renderer.base_url)
    stats = RequestStats("api_requests", "throttled", "unauthorized", "injected_errors")
    count = stats.count

    app = FastAPI(title="ChannelHub WooCommerce sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.store = store
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)
    auth = WooAuthentication(consumer_key, access_token, faults)

    def route_exists(scope: Any) -> bool:
        for route in app.router.routes:
            if getattr(route, "path", "") == "/wp-json/{rest:path}":
                continue  # the catch-all that answers rest_no_route
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return True
        return False

    @app.middleware("http")
    async def wordpress(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith("/wp-json/"):
            return await call_next(request)
        count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        # The host sits in front of WordPress: its throttling and gateway errors come before any auth.
        if faults.roll(faults.rate_limit_storm):
            count("throttled")
            return Response(
                HOST_THROTTLE_PAGE, 429, headers={"Retry-After": RETRY_AFTER_SECONDS}, media_type="text/html"
            )
        if faults.roll(faults.server_error_rate):
            count("injected_errors")
            status = faults.choose((500, 502, 503))
            if status == 500:
                return json_response(CRITICAL_ERROR, 500)
            title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
            page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
            page += "</body></html>"
            return Response(page, status, media_type="text/html")
        verdict = auth.authenticate(request)
        if verdict is not True:
            if verdict is None and not route_exists(request.scope):
                return json_response(NO_ROUTE, 404)  # WordPress routes before the permission check
            count("unauthorized")
            return json_response(verdict or refused(request.method, request.url.path), 401)
        if request.method in WRITE_METHODS and (failure := store.take_write_failure()) is not None:
            # The gateway loses a write's answer: before WordPress saw it, or after it was applied.
            count("injected_errors")
            if failure == "after":
                applied = await call_next(request)
                async for _ in applied.body_iterator:  # type: ignore[attr-defined]
                    pass
            page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
            page += "</h1></center></body></html>"
            return Response(page, 502, media_type="text/html")
        response = await call_next(request)
        return await maybe_truncated(response, faults)

    hold_back_answers(app, faults, ("/wp-json/",))

    add_listing_routes(app, world, faults, renderer, store, served)

    add_write_routes(app, world, renderer, store, products)

    install_webhooks(app, WooWebhooks(world, faults, renderer, store))

    @app.api_route("/wp-json/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown_route(rest: str) -> Response:
        return json_response(NO_ROUTE, 404)

    add_admin_routes(
        app,
        platform=PLATFORM,
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "api": API_PREFIX,
            "site_timezone": site_timezone,
            "consumer_key": consumer_key,
            "max_per_page": MAX_PER_PAGE,
            "store": store.summary(),
        },
    )

    @app.get("/_sandbox/woocommerce")
    def get_store_settings() -> Response:
        return json_response(store.summary())

    @app.post("/_sandbox/woocommerce")
    async def set_store_settings(request: Request) -> Response:
        """Body: any of {"shipment_tracking": bool, "checkout_drafts": bool, "fail_writes": n,
        "fail_writes_after_apply": bool}."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of settings")
            store.configure(changes)
        except ValueError as error:
            return json_response({"errors": str(error)}, 400)
        return json_response(store.summary())

    return app
