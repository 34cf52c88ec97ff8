"""The Pinduoduo 拼多多 POP gateway simulator (``/api/router``): ``app`` (gateway, signature, timestamp,
tokens, throttling, faults), ``listing`` (increment windows and paging, order details), ``pushes``
(shipments, stock), ``render`` (world order state -> Pinduoduo's JSON). Facts and sources:
platforms/pinduoduo/NOTES.md."""

from sandbox.pinduoduo.app import SANDBOX_EXTRA, SANDBOX_LOGIN, SANDBOX_REFRESH_TOKEN, create_app, sign

__all__ = ["SANDBOX_EXTRA", "SANDBOX_LOGIN", "SANDBOX_REFRESH_TOKEN", "create_app", "sign"]
