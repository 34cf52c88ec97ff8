"""A signed gateway whose shop token expires and is renewed through the gateway itself (Pinduoduo's
``pdd.pop.auth.token.refresh``; Douyin's ``token.refresh`` has the same shape).

The renewal is an ordinary gateway call: the API's name, the app key, a timestamp and the signature, plus
the long-lived refresh token, and no access token. Its answer names the new access token and its lifetime.
The token is kept in a ``connectors.tokens.TokenStore`` exactly as ``TokenEndpointAuth`` keeps its tokens
(sealed, shared by every process holding the same credentials), so a refused token is renewed once across
processes and the client replays the request (``ErrorPolicy.token_expired_codes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from connectors.auth import Authenticator, Secret, render_template, required_credential
from connectors.errors import MalformedResponse
from connectors.gateway import SignedGatewayAuth, _SignedGateway
from connectors.http import Request, dig
from connectors.tokens import TokenEndpoint, _TokenFromEndpoint, _wrap

if TYPE_CHECKING:
    from connectors.http import HttpClient
    from connectors.tokens import TokenStore


@dataclass(frozen=True)
class GatewayTokenRefresh:
    """The renewal call, declared: ``params`` are templates (``Cred("refresh_token")``)."""

    method: str  # the API name, e.g. "pdd.pop.auth.token.refresh"
    path: str  # the router's path (site-rooted), e.g. "/api/router"
    params: Mapping[str, Any] = field(default_factory=dict)
    token_path: str = "access_token"
    expires_in_path: str | None = "expires_in"
    default_lifetime_seconds: float = 3600.0
    refresh_margin_seconds: float = 300.0


@dataclass(frozen=True)
class RefreshedGatewayAuth(SignedGatewayAuth):
    """``SignedGatewayAuth`` whose token comes from ``refresh`` instead of the connection."""

    refresh: GatewayTokenRefresh | None = None
    method_param: str = "type"  # "type" (Pinduoduo), "method" (Douyin, TOP)

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        if self.refresh is None:
            raise ValueError("RefreshedGatewayAuth needs its refresh call declared")
        app_key = required_credential(credentials, self.app_key)
        app_secret = required_credential(credentials, self.app_secret)
        # The renewal is signed like any call, but carries no access token (it is what it fetches).
        signer = _SignedGateway(replace(self, token_param=None), app_key, app_secret, None)
        wrapped = {name: _wrap(value) for name, value in credentials.items()}
        tokens = _GatewayTokens(self.refresh, self.method_param, signer, wrapped, token_store)
        return _RefreshedGateway(self, app_key, app_secret, tokens)


class _GatewayTokens(_TokenFromEndpoint):
    """``TokenEndpointAuth``'s store, sealing and single renewal, with the request made as a signed
    gateway call."""

    def __init__(
        self,
        refresh: GatewayTokenRefresh,
        method_param: str,
        signer: _SignedGateway,
        credentials: Mapping[str, Secret | str],
        store: TokenStore | None,
    ) -> None:
        endpoint = TokenEndpoint(
            refresh.path,
            method="POST",
            params=refresh.params,
            token_path=refresh.token_path,
            expires_in_path=refresh.expires_in_path,
            default_lifetime_seconds=refresh.default_lifetime_seconds,
            refresh_margin_seconds=refresh.refresh_margin_seconds,
        )
        super().__init__(endpoint, credentials, param="", store=store)
        self._refresh = refresh
        self._method_param = method_param
        self._signer = signer

    def current(self) -> str | None:
        return self._token.reveal() if self._token is not None else None

    def _request_token(self, client: HttpClient, json: Mapping[str, Any] | None) -> tuple[str, str, float]:
        endpoint = self._endpoint
        params = render_template(dict(endpoint.params), self._credentials)
        request = Request(
            "POST",
            endpoint.path,
            params={self._method_param: self._refresh.method, **params},
            idempotent=True,
            rooted=True,
        )
        self._signer.apply(request)
        response = client.send(request, authenticate=False)
        token = dig(response.body, endpoint.token_path)
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                f"{self._refresh.method} answered without {endpoint.token_path!r}", platform=client.platform
            )
        lifetime = endpoint.default_lifetime_seconds
        if endpoint.expires_in_path and (expires_in := dig(response.body, endpoint.expires_in_path)):
            lifetime = float(expires_in)
        sealed = self._fernet.encrypt(token.encode()).decode("ascii")
        now = self._clock()
        # A lifetime shorter than the margin is still used until just before it ends, never not at all.
        margin = min(endpoint.refresh_margin_seconds, lifetime / 2)
        return token, sealed, now + max(lifetime - margin, 0.0)


class _RefreshedGateway(_SignedGateway):
    def __init__(
        self, spec: RefreshedGatewayAuth, app_key: Secret, app_secret: Secret, tokens: _GatewayTokens
    ) -> None:
        super().__init__(spec, app_key, app_secret, None)
        self._tokens = tokens

    @property
    def fetch_count(self) -> int:
        return self._tokens.fetch_count

    def prepare(self, client: HttpClient) -> None:
        self._tokens.prepare(client)

    @property
    def generation(self) -> int:
        return self._tokens.generation

    def invalidate(self, generation: int) -> bool:
        return self._tokens.invalidate(generation)

    def access_token(self) -> str | None:
        return self._tokens.current()

    def secret_values(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*super().secret_values(), *self._tokens.secret_values())))

    def __repr__(self) -> str:
        return f"RefreshedSignedGateway(app_key={self._app_key.reveal()!r}, secret=***, token=***)"
