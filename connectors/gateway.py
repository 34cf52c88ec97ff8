"""The marketplaces' signed gateways as one auth kind: Taobao TOP, Pinduoduo, JD JOS and Douyin shop.

All four take every call at one router URL: the API's name as a parameter (``method`` / ``type``), the app's
public key, the shop's token, a timestamp, and a signature over *all* parameters sorted by name, keyed by
the app secret. They differ only in names and details, which a platform declares here:

- the signed text is ``k1v1k2v2...`` over the sorted parameters (never the ``sign`` itself, never an
  empty value: TOP, PDD and JD skip those); ``md5`` wraps it as ``secret + text + secret`` and hashes it;
  ``hmac-md5`` / ``hmac-sha256`` key an HMAC with the secret (TOP's ``hmac``, Douyin's ``hmac-sha256``);
  hex, upper case for TOP/PDD/JD, lower for Douyin;
- ``json_param``: JD (``360buy_param_json``) and Douyin (``param_json``) carry the business parameters as
  one JSON text, keys sorted and without spaces (Douyin signs that exact text, so it must be canonical); the
  endpoint declares them as plain parameters and the window and paging values are added the same way, so the
  framework's windows and paginators work unchanged;
- ``signed_params``: Douyin signs only ``app_key, method, param_json, timestamp, v``; the others sign all.
- ``hmac_wraps_secret``: Douyin's HMAC-SHA256 hashes ``secret + text + secret`` (keyed by the secret), as its
  MD5 does; TOP's ``hmac`` hashes the bare text (official doudian Go SDK ``utils/sign_util.go``).
- the timestamp: Beijing wall time ``yyyy-MM-dd HH:mm:ss`` (TOP, JD; the gateways refuse one more than ten
  minutes off) or epoch seconds (PDD, Douyin).

The secret never travels; the token does (as a parameter), so the client still refuses plain http to a
non-loopback host. A fresh timestamp and signature are made on every attempt (``apply``), so a retry is
never refused as stale.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from connectors.auth import Authenticator, AuthSpec, Secret, required_credential

if TYPE_CHECKING:
    from connectors.http import Request
    from connectors.tokens import TokenStore

SignAlgorithm = Literal["md5", "hmac-md5", "hmac-sha256"]
BEIJING = timezone(timedelta(hours=8))


def beijing_time(now: float | None = None) -> str:
    """TOP's and JD's timestamp: Beijing wall time, to the second."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, BEIJING)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def epoch_seconds(now: float | None = None) -> str:
    """PDD's and Douyin's timestamp."""
    return str(int(time.time() if now is None else now))


def canonical_json(value: Any) -> str:
    """Business parameters as the gateways sign them: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def as_text(value: Any) -> str:
    """A parameter as it goes on the wire (and into the signature): JSON for structures, lower-case JSON
    booleans (``use_has_next=true``), the rest as ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return canonical_json(value)
    return str(value)


def sign(
    params: Mapping[str, str],
    secret: str,
    algorithm: SignAlgorithm,
    *,
    uppercase: bool = True,
    only: frozenset[str] | None = None,
    hmac_wraps_secret: bool = False,
) -> str:
    """The gateways' signature of ``params`` (already text): sorted ``k1v1k2v2``, empty values skipped.
    ``hmac_wraps_secret``: an HMAC over ``secret + text + secret`` (Douyin) instead of the bare text."""
    text = "".join(
        f"{key}{value}"
        for key, value in sorted(params.items())
        if value != "" and (only is None or key in only)
    )
    if algorithm == "md5":
        digest = hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest()
    else:
        hash_name = "md5" if algorithm == "hmac-md5" else "sha256"
        signed = f"{secret}{text}{secret}" if hmac_wraps_secret else text
        digest = hmac.new(secret.encode(), signed.encode(), hash_name).hexdigest()
    return digest.upper() if uppercase else digest


@dataclass(frozen=True)
class SignedGatewayAuth(AuthSpec):
    """One marketplace gateway's signing, declared. Credential *names* (``app_key``, ``app_secret``,
    ``token``) are the keys of the mapping ``bind`` receives; parameter names are the platform's."""

    app_key_param: str  # "app_key" (TOP, JD, Douyin), "client_id" (PDD)
    token_param: str | None  # "session" (TOP), "access_token" (PDD, JD, Douyin); None: the call takes none
    algorithm: SignAlgorithm = "md5"
    sign_method_param: str | None = "sign_method"  # None: the platform has one method and no parameter
    sign_method_names: Mapping[str, str] = field(
        default_factory=lambda: {"md5": "md5", "hmac-md5": "hmac", "hmac-sha256": "hmac-sha256"}
    )
    timestamp: Callable[[], str] = beijing_time
    static_params: Mapping[str, str] = field(default_factory=dict)  # {"v": "2.0", "format": "json"}
    json_param: str | None = None  # JD "360buy_param_json", Douyin "param_json"
    # The parameters that stay outside ``json_param`` (system ones): everything the auth adds, plus these.
    system_params: frozenset[str] = frozenset({"method", "type"})
    signed_params: frozenset[str] | None = None  # None: every parameter is signed
    uppercase: bool = True
    hmac_wraps_secret: bool = False  # Douyin: the HMAC's text is wrapped in the secret, as MD5's is
    sign_param: str = "sign"
    app_key: str = "app_key"
    app_secret: str = "app_secret"
    token: str = "access_token"

    def bind(
        self, credentials: Mapping[str, Secret | str], *, token_store: TokenStore | None = None
    ) -> Authenticator:
        token = required_credential(credentials, self.token) if self.token_param else None
        return _SignedGateway(
            self,
            required_credential(credentials, self.app_key),
            required_credential(credentials, self.app_secret),
            token,
        )


class _SignedGateway(Authenticator):
    def __init__(self, spec: SignedGatewayAuth, app_key: Secret, app_secret: Secret, token: Secret | None):
        self._spec = spec
        self._app_key = app_key
        self._app_secret = app_secret
        self._token = token

    def access_token(self) -> str | None:
        """The shop's token for this call (a subclass fetching short-lived tokens overrides it)."""
        return self._token.reveal() if self._token is not None else None

    def apply(self, request: Request) -> None:
        spec = self._spec
        system = {spec.app_key_param: self._app_key.reveal(), "timestamp": spec.timestamp()}
        if spec.token_param and (token := self.access_token()):
            system[spec.token_param] = token
        if spec.sign_method_param:
            system[spec.sign_method_param] = spec.sign_method_names[spec.algorithm]
        system.update(spec.static_params)
        params = {key: as_text(value) for key, value in request.params.items() if value is not None}
        if spec.json_param is not None:
            business = {
                key: value
                for key, value in request.params.items()
                if key not in spec.system_params and key != spec.json_param and value is not None
            }
            params = {key: value for key, value in params.items() if key in spec.system_params}
            params[spec.json_param] = canonical_json(business)
        params.update(system)
        params.pop(spec.sign_param, None)
        params[spec.sign_param] = sign(
            params,
            self._app_secret.reveal(),
            spec.algorithm,
            uppercase=spec.uppercase,
            only=spec.signed_params,
            hmac_wraps_secret=spec.hmac_wraps_secret,
        )
        request.params = params

    def secret_values(self) -> tuple[str, ...]:
        values = [self._app_secret.reveal()]
        if (token := self.access_token()) is not None:
            values.append(token)
        return tuple(values)

    def __repr__(self) -> str:
        return f"SignedGateway(app_key={self._app_key.reveal()!r}, secret=***)"
