"""OAuth 1.0a "one-legged" request signing: what WooCommerce requires over plain HTTP (``OAuth1OneLegged``).

The signing steps are WooCommerce's own (``WC_REST_Authentication::check_oauth_signature``), so a request the
connector signs is one the shop verifies; tests reproduce the WooCommerce docs' example base string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from connectors.auth import Authenticator, AuthSpec, Secret, required_credential

if TYPE_CHECKING:
    from connectors.http import Request
    from connectors.tokens import TokenStore


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
    safe_in_clear = True  # a signature, a nonce and the key's public half: the secret never travels

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
            required_credential(credentials, self.consumer_key),
            required_credential(credentials, self.consumer_secret),
            self.signature_method,
        )
