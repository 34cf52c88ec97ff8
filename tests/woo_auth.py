"""``requests`` auth for tests that call a WooCommerce sandbox directly: OAuth 1.0a one-legged over plain
http (what WooCommerce requires there), signed by the connector's own ``connectors.oauth1.oauth1_params``.

    requests.get(f"{shop.base_url}/wp-json/wc/v3/orders", auth=WooOAuth(SANDBOX_LOGIN, SECRET))
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from connectors.oauth1 import oauth1_params


class WooOAuth(requests.auth.AuthBase):
    """Signs the prepared request's URL (its query included) and appends the ``oauth_*`` parameters."""

    def __init__(self, key: str, secret: str, *, signature_method: str = "HMAC-SHA256") -> None:
        self.key, self.secret, self.signature_method = key, secret, signature_method

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        assert request.url is not None and request.method is not None
        oauth = oauth1_params(
            request.method,
            request.url,
            {},
            self.key,
            self.secret,
            timestamp=int(time.time()),
            nonce=secrets.token_hex(16),
            signature_method=self.signature_method,
        )
        parts = urlsplit(request.url)
        query = "&".join(filter(None, (parts.query, urlencode(oauth))))
        request.url = urlunsplit(parts._replace(query=query))
        return request
