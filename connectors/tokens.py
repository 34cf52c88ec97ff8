"""Short-lived access tokens from a platform's token endpoint (WeChat ``cgi-bin/stable_token``, Youzan
``/auth/token``), kept in a ``TokenStore`` that every connector (and, with the warehouse's store, every
process) holding the same credential shares: a platform that revokes a token whenever another is fetched sees
one fetch per expiry, not one per task.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from connectors.auth import Authenticator, AuthSpec, Secret, as_secret, render_template
from connectors.errors import AuthError, MalformedResponse

if TYPE_CHECKING:
    from connectors.http import HttpClient, Request


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
