"""A Taobao / Tmall TOP simulator over the shared sandbox world (sources: platforms/taobao/NOTES.md).

``render`` turns a world order into a trade as ``taobao.trade.fullinfo.get`` answers it, ``listing`` serves
the increment listing (one-day windows, newest first, ``page_no``/``page_size``, ``total_results`` or
``has_next``) and the trade detail, ``pushes`` the shipment, waybill correction and stock calls, and ``app``
the gateway (signature, timestamp, session, flow control, TOP's error envelope, the fault knobs).
"""

from sandbox.taobao.app import SANDBOX_EXTRA, SANDBOX_LOGIN, SANDBOX_SESSION, create_app

__all__ = ["SANDBOX_EXTRA", "SANDBOX_LOGIN", "SANDBOX_SESSION", "create_app"]
