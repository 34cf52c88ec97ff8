"""One short-lived platform token per credential, shared by every task and process of the hub.

WeChat revokes a token whenever a new one is fetched for the same appid (and counts every fetch against a
daily quota); Youzan limits token calls too. So twenty tasks of one channel starting at once must end up with
one token, not twenty that revoke each other. ``WarehouseTokenStore`` keeps it in ``platform_tokens`` and
renews it under a transaction-scoped advisory lock on its key: the first process to find it missing, expiring
or refused fetches a new one; the others wait for that lock, see the new row and use it.

It stores what the connector's authenticator gives it: an opaque ``sealed`` text (the token encrypted with a
key derived from the app secret, ``connectors.auth``) and its expiry in epoch seconds. It never sees a token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from warehouse.models import platform_tokens

Sealed = tuple[str, float]  # (sealed token, expires at, epoch seconds)


class WarehouseTokenStore:
    """``connectors.tokens.TokenStore`` over the warehouse database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, key: str) -> Sealed | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(platform_tokens.c.sealed, platform_tokens.c.expires_at).where(
                    platform_tokens.c.key == key
                )
            ).first()
        return None if row is None else (row.sealed, row.expires_at.timestamp())

    def renew(
        self, key: str, replacing: str | None, fetch: Callable[[], Sealed], now: Callable[[], float]
    ) -> Sealed:
        """The stored token unless it is ``replacing`` (refused) or expired; else ``fetch()``'s, stored.

        Serialised per key across processes: the advisory lock is held while the token is fetched, so a
        second renewer waits and then finds the first one's token instead of fetching (and revoking) again."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
            row = conn.execute(
                select(platform_tokens.c.sealed, platform_tokens.c.expires_at).where(
                    platform_tokens.c.key == key
                )
            ).first()
            if row is not None and row.sealed != replacing and now() < row.expires_at.timestamp():
                return row.sealed, row.expires_at.timestamp()
            sealed, expires_at = fetch()
            stmt = insert(platform_tokens).values(
                key=key, sealed=sealed, expires_at=datetime.fromtimestamp(expires_at, UTC)
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "sealed": stmt.excluded.sealed,
                        "expires_at": stmt.excluded.expires_at,
                        "renewals": platform_tokens.c.renewals + 1,
                        "updated_at": func.now(),
                    },
                )
            )
            return sealed, expires_at
