"""A Douyin shop 抖店 open-platform simulator over the shared sandbox world: ``render`` (world order state ->
Douyin's shop order), ``listing`` (``order.searchList``: windows, pages), ``pushes`` (order detail, shipping,
stock) and ``app`` (the gateway: signature, timestamp, token, throttling, error envelope, faults). Sources:
platforms/douyin/NOTES.md."""

from sandbox.douyin.app import SANDBOX_EXTRA, SANDBOX_LOGIN, SANDBOX_SHOP_ID, create_app

__all__ = ["SANDBOX_EXTRA", "SANDBOX_LOGIN", "SANDBOX_SHOP_ID", "create_app"]
