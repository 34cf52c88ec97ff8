"""Authentication kinds a platform can declare, and the ``Secret`` wrapper that keeps credentials out of text.

A platform spec names one *kind* (``NoAuth``, ``HeaderToken``, ``BasicAuth``, ``QueryParams`` here;
``OAuth1OneLegged`` in ``connectors.oauth1``; ``TokenEndpointAuth`` in ``connectors.tokens``) with the names
of the credentials it needs; ``bind(credentials)`` turns it into an ``Authenticator`` holding the actual
secrets. The shared ``HttpClient`` calls ``prepare`` once before a request (token endpoints fetch or refresh
there), ``apply`` on every attempt (no I/O), and ``invalidate`` when the platform says the token expired.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from connectors.errors import AuthError

if TYPE_CHECKING:
    from connectors.http import HttpClient, Request
    from connectors.tokens import TokenStore


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


def required_credential(credentials: Mapping[str, Secret | str], name: str) -> Secret:
    try:
        return as_secret(credentials[name])
    except KeyError:
        raise AuthError(f"credential {name!r} is missing from the connection") from None


class Authenticator(ABC):
    """Bound credentials of one connection."""

    # Whether what ``apply`` puts on the wire may cross a network in clear text: only a signature that
    # reveals no secret (OAuth 1.0a), or nothing at all. The client refuses plain http otherwise.
    safe_in_clear: bool = False

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
    safe_in_clear = True

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
        return _HeaderToken(self.header, required_credential(credentials, self.credential), self.scheme)


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
        return _Basic(
            required_credential(credentials, self.username), required_credential(credentials, self.password)
        )


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
        return _QueryParams(
            {param: required_credential(credentials, name) for param, name in self.params.items()}
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
