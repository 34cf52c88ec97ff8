"""JD 京东 POP (JOS router) simulator: ``render`` (world order -> JD ``orderInfo``), ``listing`` (order
search windows and paging), ``pushes`` (shipments, stock), ``app`` (the gateway: signature, timestamp,
errors, throttling, faults). Facts and sources: platforms/jd/NOTES.md."""

from sandbox.jd.app import SANDBOX_ACCESS_TOKEN, SANDBOX_EXTRA, SANDBOX_LOGIN, create_app

__all__ = ["SANDBOX_ACCESS_TOKEN", "SANDBOX_EXTRA", "SANDBOX_LOGIN", "create_app"]
