"""Many shops of one platform behind one sandbox port (``sandbox.many_shops``), as a chain with a shop per
brand and platform looks to the hub: each shop has its own orders and its own credential, and the hub syncs
each as a channel of its own through the real connector. One contract, every platform of the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hub_configs import hub_config
from sqlalchemy import text

from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.platforms import PLATFORMS
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from connectors.errors import AuthError
from sandbox.clock import Clock
from sandbox.many_shops import run_many_shops

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=3)


def credentials(code: str, conn: dict, secret: str | None = None) -> ChannelCredentials:
    return ChannelCredentials(
        code, conn["host"], conn.get("login"), Secret(secret or conn["password"]), conn.get("extra", {})
    )


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_each_shop_behind_one_port_is_a_channel_with_its_own_orders_and_credential(engine, platform):
    with run_many_shops(
        platform, 3, seed=60, start=NOW - timedelta(hours=4), interval=300, clock=Clock.frozen(NOW)
    ) as shops:
        landed = {}
        for n in (0, 2):
            code = f"many_{platform}_{n}"
            config = hub_config(code, platform, location=f"WH-MANY-{platform}-{n}", overlap_minutes=0)
            register_config(engine, config)
            channel = config.channel(code)
            seed_from_catalog(engine, channel, shops.shop(n).world.catalog)
            result = sync_orders(
                engine, channel, SINCE, NOW, credentials=credentials(code, shops.connection(n))
            )
            # A platform that never lists some orders says so (JD lists an order once it is paid).
            lists = getattr(shops.shop(n).app.state, "lists_order", None)
            updated = shops.shop(n).world.updated_between(SINCE, NOW)
            in_window = [state for state in updated if lists is None or lists(state)]
            assert result.fetched - result.skipped == len(in_window) > 0  # skipped: WooCommerce drafts
            with engine.connect() as conn:
                landed[n] = set(
                    conn.execute(
                        text(
                            "SELECT o.external_id, o.total FROM orders o "
                            "JOIN channels c ON c.id = o.channel_id WHERE c.code = :code"
                        ),
                        {"code": code},
                    ).all()
                )
            assert len(landed[n]) == result.counts.new > 0
        assert landed[0] != landed[2]  # two worlds, not one shop seen twice

        # One shop's credential opens no other shop.
        stolen = credentials(f"many_{platform}_stolen", shops.connection(1), secret=shops.shop_secret(0))
        config = hub_config(f"many_{platform}_stolen", platform, location=f"WH-MANY-{platform}-stolen")
        register_config(engine, config)
        channel = config.channel(f"many_{platform}_stolen")
        with pytest.raises(AuthError) as refused:
            sync_orders(engine, channel, SINCE, NOW, credentials=stolen)
        assert shops.shop_secret(0) not in str(refused.value)
