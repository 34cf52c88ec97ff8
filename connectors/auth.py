"""Authentication kinds a platform can declare, and the ``Secret`` wrapper that keeps credentials out of text.

A platform spec names one *kind* (``HeaderToken``, ``BasicAuth``, ``OAuth1OneLegged``, ``TokenEndpointAuth``,
...) with the names of the credentials it needs; ``bind(credentials)`` turns it into an ``Authenticator``
holding the actual secrets. The shared ``HttpClient`` calls ``prepare`` once before a request (token
endpoints fetch or refresh there), ``apply`` on every attempt (no I/O), and ``invalidate`` when the platform
says the token expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken

from connectors.errors import AuthError, MalformedResponse

if TYPE_CHECKING:
    from connectors.http import HttpClient, Request


class Secret:
    """A credential. ``str``/``repr``/``format`` never show it; call ``reveal()`` at the last moment."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):
        raise TypeError("a Secret is not pickled; pass credentials through the Airflow Connection")


def as_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@dataclass(frozen=True)
class Cred:
    """Placeholder in a declared request template, replaced by the named credential (revealed) when sent."""

    name: str


def render_template(value: Any, credentials: Mapping[str, Secret | str]) -> Any:
    """Replace every ``Cred`` inside nested dicts/lists by the credential's plain value."""
    if isinstance(value, Cred):
        try:
            found = credentials[value.name]
        except KeyError:
            raise AuthError(f"credential {value.name!r} is missing from the connection") from None
        return found.reveal() if isinstance(found, Secret) else found
    if isinstance(value, Mapping):
        return {key: render_template(item, credentials) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_template(item, credentials) for item in value]
    return value


def _credential(credentials: Mapping[str, Secret | str], name: str) -> Secret:
    try:
        return as_secret(credentials[name])
    except KeyError:
        raise AuthError(f"credential {name!r} is missing from the connection") from None


class Authenticator(ABC):
    """Bound credentials of one connection."""

    def prepare(self, client: HttpClient) -> None:  # noqa: B027 - only token kinds need it
        """Make sure a usable credential is at hand (fetch a token); may do I/O through ``client``."""

    @abstractmethod
    def apply(self, request: Request) -> None:
        """Add the credential to an outgoing request. No I/O."""

    @property
    def generation(self) -> int:
        """Bumped whenever the credential changes (a token refresh)."""
        return 0

    def invalidate(self, generation: int) -> bool:
        """The platform refused the credential of ``generation`` as expired. Return True when a fresh one
        can be obtained (it is dropped only if no other thread replaced it already)."""
        return False

    @abstractmethod
    def secret_values(self) -> tuple[str, ...]:
        """Every plain secret this authenticator may put on the wire (for redaction)."""


class AuthSpec(ABC):
    """How a platform authenticates, by credential *names*; ``bind`` attaches the values. Kinds with a
    short-lived token keep it in ``token_store`` (shared with every connector holding the same credential);
    the others ignore it."""

    @abstractmethod
    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator: ...


# --- no auth ---------------------------------------------------------------------------------------------


class _Anonymous(Authenticator):
    def apply(self, request: Request) -> None:
        return None

    def secret_values(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class NoAuth(AuthSpec):
    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        return _Anonymous()


# --- static token in a header (Shopify X-Shopify-Access-Token, Bearer tokens) ------------------------------


class _HeaderToken(Authenticator):
    def __init__(self, header: str, token: Secret, scheme: str) -> None:
        self._header = header
        self._token = token
        self._scheme = scheme

    def apply(self, request: Request) -> None:
        value = self._token.reveal()
        request.headers[self._header] = f"{self._scheme} {value}" if self._scheme else value

    def secret_values(self) -> tuple[str, ...]:
        return (self._token.reveal(),)

    def __repr__(self) -> str:
        return f"HeaderToken({self._header!r}, token=***)"


@dataclass(frozen=True)
class HeaderToken(AuthSpec):
    header: str = "Authorization"
    credential: str = "access_token"
    scheme: str = ""  # "Bearer" for Authorization: Bearer <token>

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        return _HeaderToken(self.header, _credential(credentials, self.credential), self.scheme)


# --- HTTP basic (WooCommerce consumer key/secret over HTTPS) ----------------------------------------------


class _Basic(Authenticator):
    def __init__(self, username: Secret, password: Secret) -> None:
        self._username = username
        self._password = password

    def apply(self, request: Request) -> None:
        pair = f"{self._username.reveal()}:{self._password.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")

    def secret_values(self) -> tuple[str, ...]:
        pair = f"{self._username.reveal()}:{self._password.reveal()}".encode()
        return (self._username.reveal(), self._password.reveal(), base64.b64encode(pair).decode("ascii"))

    def __repr__(self) -> str:
        return "BasicAuth(username=***, password=***)"


@dataclass(frozen=True)
class BasicAuth(AuthSpec):
    username: str = "username"
    password: str = "password"

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        return _Basic(_credential(credentials, self.username), _credential(credentials, self.password))


# --- static credential in the query string (WooCommerce ck/cs fallback) -----------------------------------


class _QueryParams(Authenticator):
    def __init__(self, values: dict[str, Secret]) -> None:
        self._values = values

    def apply(self, request: Request) -> None:
        for param, secret in self._values.items():
            request.params[param] = secret.reveal()

    def secret_values(self) -> tuple[str, ...]:
        return tuple(secret.reveal() for secret in self._values.values())

    def __repr__(self) -> str:
        return f"QueryParams({sorted(self._values)!r}=***)"


@dataclass(frozen=True)
class QueryParams(AuthSpec):
    """``params`` maps query parameter name -> credential name."""

    params: Mapping[str, str] = field(default_factory=dict)

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        return _QueryParams({param: _credential(credentials, name) for param, name in self.params.items()})


# --- OAuth 1.0a "one-legged" (WooCommerce over plain HTTP) --------------------------------------------------

OAUTH1_METHODS = frozenset({"HMAC-SHA1", "HMAC-SHA256"})


def _rfc3986(value: str) -> str:
    """PHP's ``rawurlencode``: everything but ``A-Za-z0-9-._~`` percent-encoded (UTF-8 bytes)."""
    return quote(value, safe="")


def oauth1_base_url(url: str) -> str:
    """The request URL as it enters the signature base string: scheme and host lower-cased, a default port
    dropped, no query or fragment; the path exactly as sent (WooCommerce rebuilds it from the site's home URL
    and the raw request path)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def oauth1_base_string(method: str, url: str, params: Mapping[str, str]) -> str:
    """The signature base string WooCommerce builds (``WC_REST_Authentication::check_oauth_signature``):
    every parameter but ``oauth_signature``, sorted by raw name (``strcmp``), name and value each
    ``rawurlencode``d and joined ``name=value`` by ``&``; then ``METHOD&enc(url)&enc(parameters)``."""
    pairs = sorted((name.encode(), value) for name, value in params.items() if name != "oauth_signature")
    joined = "&".join(f"{_rfc3986(name.decode())}={_rfc3986(value)}" for name, value in pairs)
    return "&".join((method.upper(), _rfc3986(oauth1_base_url(url)), _rfc3986(joined)))


def oauth1_signature(
    method: str, url: str, params: Mapping[str, str], consumer_secret: str, signature_method: str
) -> str:
    """base64 of the HMAC of the base string, keyed by the consumer secret plus ``&`` (WooCommerce does not
    encode the secret, and there is no token secret)."""
    if signature_method not in OAUTH1_METHODS:
        raise ValueError(f"unsupported OAuth 1.0a signature method {signature_method!r}")
    base = oauth1_base_string(method, url, params)
    digest = hashlib.sha256 if signature_method == "HMAC-SHA256" else hashlib.sha1
    signed = hmac.new(f"{consumer_secret}&".encode(), base.encode(), digest).digest()
    return base64.b64encode(signed).decode("ascii")


def oauth1_params(
    method: str,
    url: str,
    params: Mapping[str, Any],
    consumer_key: str,
    consumer_secret: str,
    *,
    timestamp: int,
    nonce: str,
    signature_method: str = "HMAC-SHA256",
) -> dict[str, str]:
    """The five ``oauth_*`` query parameters that sign a request to ``url`` (which may carry a query of its
    own) with ``params`` (values as ``requests`` sends them: ``str(value)``). ``oauth_version`` is omitted,
    as WooCommerce's docs ask."""
    signed: dict[str, str] = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    for name, value in params.items():
        if isinstance(value, list | tuple | set | Mapping):
            # PHP reads a repeated name as its last value and name[] as an array: not signed the same way
            raise ValueError(f"OAuth 1.0a signing takes one value per parameter; {name!r} has several")
        signed[name] = value if isinstance(value, str) else str(value)
    oauth = {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce,
        "oauth_signature_method": signature_method,
        "oauth_timestamp": str(timestamp),
    }
    signed.update(oauth)
    oauth["oauth_signature"] = oauth1_signature(method, url, signed, consumer_secret, signature_method)
    return oauth


class _OAuth1(Authenticator):
    def __init__(
        self,
        key: Secret,
        secret: Secret,
        signature_method: str,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._key = key
        self._secret = secret
        self._method = signature_method
        self._clock = clock
        self._nonce = nonce

    def apply(self, request: Request) -> None:
        # Called on every attempt with the absolute URL: a retry is signed afresh (a new nonce; the platform
        # refuses a nonce it has seen).
        request.params.update(
            oauth1_params(
                request.method,
                request.url,
                request.params,
                self._key.reveal(),
                self._secret.reveal(),
                timestamp=int(self._clock()),
                nonce=self._nonce(),
                signature_method=self._method,
            )
        )

    def secret_values(self) -> tuple[str, ...]:
        return (self._key.reveal(), self._secret.reveal())

    def __repr__(self) -> str:
        return f"OAuth1OneLegged({self._method}, consumer_key=***, consumer_secret=***)"


@dataclass(frozen=True)
class OAuth1OneLegged(AuthSpec):
    """OAuth 1.0a without a token ("one-legged"): every request carries ``oauth_consumer_key``,
    ``oauth_timestamp``, ``oauth_nonce``, ``oauth_signature_method`` and ``oauth_signature`` in its query
    string; the body is not signed. What WooCommerce requires over plain HTTP."""

    consumer_key: str = "consumer_key"
    consumer_secret: str = "consumer_secret"
    signature_method: str = "HMAC-SHA256"

    def __post_init__(self) -> None:
        if self.signature_method not in OAUTH1_METHODS:
            raise ValueError(f"signature_method must be one of {sorted(OAUTH1_METHODS)}")

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        return _OAuth1(
            _credential(credentials, self.consumer_key),
            _credential(credentials, self.consumer_secret),
            self.signature_method,
        )


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``): traffic that never
    crosses a network, e.g. to a local TLS-terminating proxy or a sandbox."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- short-lived token from a token endpoint (WeChat cgi-bin/stable_token, Youzan /auth/token) -------------


@dataclass(frozen=True)
class TokenEndpoint:
    """Where a short-lived access token comes from.

    ``params``/``json`` are templates: put ``Cred("appid")`` where a credential goes. The token sits at
    ``token_path`` (dotted) in the response; its lifetime is either ``expires_in_path`` (seconds from now) or
    ``expires_at_path`` (absolute epoch, ``expires_at_unit`` seconds per unit: 0.001 for milliseconds).

    ``force_new_json``: for an endpoint that hands back the token it already issued while that one is valid
    and issues a new one (revoking the old) only when told so (Youzan ``refresh: true``, WeChat
    ``stable_token``'s ``force_refresh: true``, rationed to 20 a day). ``json`` then asks without forcing, so
    no renewal ever revokes a token another process is using; the request is repeated with these fields
    merged in only when the answer is the very token the platform just refused, or one that expires within
    ``refresh_margin_seconds``; the store's single renewal makes that once across every process.
    """

    path: str
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    token_path: str = "access_token"
    expires_in_path: str | None = "expires_in"
    expires_at_path: str | None = None
    expires_at_unit: float = 1.0
    default_lifetime_seconds: float = 3600.0
    refresh_margin_seconds: float = 300.0  # renew this long before the stated expiry (clock skew, slow calls)
    force_new_json: Mapping[str, Any] | None = None


class TokenStore(Protocol):
    """Where the short-lived token of one credential is kept, shared by every connector (and, with the
    warehouse's store, every process) holding that credential. It keeps ``(sealed, expires_at)`` pairs: the
    token encrypted by the authenticator, and the epoch second after which it must not be used."""

    def load(self, key: str) -> tuple[str, float] | None: ...

    def renew(
        self,
        key: str,
        replacing: str | None,
        fetch: Callable[[], tuple[str, float]],
        now: Callable[[], float],
    ) -> tuple[str, float]:
        """The stored pair unless it is ``replacing`` (refused by the platform) or expired at ``now()``;
        else ``fetch()``'s, stored. One renewal at a time per key, so concurrent renewers fetch once."""
        ...


class MemoryTokenStore:
    """A ``TokenStore`` inside one process (the default: each connector on its own, as without a store)."""

    def __init__(self) -> None:
        self._pairs: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> tuple[str, float] | None:
        return self._pairs.get(key)

    def renew(
        self,
        key: str,
        replacing: str | None,
        fetch: Callable[[], tuple[str, float]],
        now: Callable[[], float],
    ) -> tuple[str, float]:
        with self._lock:
            found = self._pairs.get(key)
            if found is not None and found[0] != replacing and now() < found[1]:
                return found
            found = self._pairs[key] = fetch()
            return found


class _TokenFromEndpoint(Authenticator):
    """A token from the platform's token endpoint, kept in a ``TokenStore`` under a key derived from the
    credentials and the platform's origin, sealed (Fernet) with a key derived from the same secrets: whoever
    reads the store without the app secret learns nothing."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        credentials: Mapping[str, Secret | str],
        param: str,
        store: TokenStore | None = None,
        clock=time.time,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = dict(credentials)
        self._param = param
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        self._clock = clock
        self._token: Secret | None = None
        self._sealed: str | None = None  # the stored form of ``_token``
        self._expires_at = 0.0
        self._refused: str | None = None  # the sealed token the platform refused; replaced on next prepare
        self._generation = 0
        self._lock = threading.Lock()
        self.fetch_count = 0  # tokens this authenticator obtained from the platform (observability, tests)
        self.forced_count = 0  # of those, obtained by forcing (``TokenEndpoint.force_new_json``)
        material = "\x1f".join(
            f"{name}={value.reveal() if isinstance(value, Secret) else value}"
            for name, value in sorted(self._credentials.items())
        ).encode()
        self._derive = lambda purpose: hmac.new(material, purpose.encode(), hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(self._derive("channelhub token seal v1")))

    @property
    def generation(self) -> int:
        return self._generation

    def _key(self, client: HttpClient) -> str:
        identity = f"{client.platform}|{client.origin}|{self._endpoint.path}"
        digest = hmac.new(self._derive("channelhub token key v1"), identity.encode(), hashlib.sha256)
        return "token:" + digest.hexdigest()

    def prepare(self, client: HttpClient) -> None:
        with self._lock:
            if self._token is not None and self._clock() < self._expires_at:
                return
            key = self._key(client)
            stored = None if self._refused else self._store.load(key)
            if stored is None or stored[0] == self._refused or self._clock() >= stored[1]:
                stored = self._store.renew(key, self._refused, lambda: self._fetch(client), self._clock)
            self._use(*stored)

    def _use(self, sealed: str, expires_at: float) -> None:
        token = self._unseal(sealed)
        if token is None:  # sealed under other credentials (a rotated secret): never ours to use
            raise AuthError("the stored access token does not belong to these credentials")
        if sealed != self._sealed:
            self._generation += 1
        self._token, self._sealed, self._expires_at, self._refused = Secret(token), sealed, expires_at, None

    def _fetch(self, client: HttpClient) -> tuple[str, float]:
        """A usable token from the platform, sealed, with the instant to stop using it."""
        endpoint = self._endpoint
        token, sealed, use_until = self._request_token(client, endpoint.json)
        if endpoint.force_new_json is not None and (
            use_until <= self._clock() or (self._refused is not None and token == self._unseal(self._refused))
        ):
            # The endpoint handed back the refused (or expiring) token: only forcing brings a new one.
            token, sealed, use_until = self._request_token(
                client, {**(endpoint.json or {}), **endpoint.force_new_json}
            )
            self.forced_count += 1
        self.fetch_count += 1
        return sealed, use_until

    def _unseal(self, sealed: str) -> str | None:
        """The token a sealed text holds; None when these credentials did not seal it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None

    def _request_token(self, client: HttpClient, json: Mapping[str, Any] | None) -> tuple[str, str, float]:
        """(token, sealed token, the instant to stop using it) from one request to the token endpoint."""
        from connectors.http import dig

        endpoint = self._endpoint
        response = client.request(
            endpoint.method,
            endpoint.path,
            params=render_template(dict(endpoint.params), self._credentials),
            json=render_template(json, self._credentials) if json is not None else None,
            authenticate=False,
            rooted=True,
            idempotent=True,
        )
        token = dig(response.body, endpoint.token_path)
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                f"token endpoint answered without {endpoint.token_path!r}", platform=client.platform
            )
        now = self._clock()
        lifetime = endpoint.default_lifetime_seconds
        if (
            endpoint.expires_in_path
            and (expires_in := dig(response.body, endpoint.expires_in_path)) is not None
        ):
            lifetime = float(expires_in)
        elif endpoint.expires_at_path and (expires_at := dig(response.body, endpoint.expires_at_path)):
            lifetime = float(expires_at) * endpoint.expires_at_unit - now
        sealed = self._fernet.encrypt(token.encode()).decode("ascii")
        return token, sealed, now + max(lifetime - endpoint.refresh_margin_seconds, 0.0)

    def apply(self, request: Request) -> None:
        if self._token is None:
            raise AuthError("no access token: prepare() was not called")
        request.params[self._param] = self._token.reveal()

    def invalidate(self, generation: int) -> bool:
        with self._lock:
            # A renewal may revoke the token in force (WeChat's cgi-bin/token, a stable_token force refresh):
            # two threads (or processes) refreshing the same refused token would revoke each other's, so
            # only the token of the refused generation is replaced, and the store hands every other
            # refresher the one new token.
            if generation == self._generation and self._sealed is not None:
                self._refused = self._sealed
                self._token, self._expires_at = None, 0.0
        return True

    def secret_values(self) -> tuple[str, ...]:
        values = [v.reveal() for v in self._credentials.values() if isinstance(v, Secret)]
        if self._token is not None:
            values.append(self._token.reveal())
        return tuple(values)

    def __repr__(self) -> str:
        return f"TokenEndpointAuth({self._endpoint.path!r}, token=***)"


@dataclass(frozen=True)
class TokenEndpointAuth(AuthSpec):
    """Access token from ``endpoint``, sent as query parameter ``param`` on every business call.

    When the platform answers with one of the spec's ``token_expired_codes``, the client invalidates the
    token, gets a new one (from the store when another connector already renewed it) and replays the
    request once."""

    endpoint: TokenEndpoint
    param: str = "access_token"

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        wrapped = {k: _wrap(v) for k, v in credentials.items()}
        return _TokenFromEndpoint(self.endpoint, wrapped, self.param, token_store)


def _wrap(value: Secret | str) -> Secret | str:
    # Ids such as a Youzan kdt_id are not secret, but wrapping every str keeps the rule simple: every
    # credential value is redacted from text.
    return as_secret(value) if isinstance(value, str | Secret) else value
