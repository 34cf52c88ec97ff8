"""A Youzan 有赞云 Open API simulator over the shared sandbox world (sources: docs/platform-notes.md, Youzan).

What it reproduces, quirks included:
- ``POST /auth/token`` with JSON ``{client_id, client_secret, authorize_type: "silent", grant_id: <kdt_id>,
  refresh}`` -> ``{"success":true,"code":200,"data":{"access_token","expires": <epoch ms>,"scope",
  "authority_id"},"message":null}``. A self-use app has one live token per shop: ``refresh: false`` (or
  absent) hands it back while it is valid, unchanged, and issues a new one only once it expired;
  ``refresh: true`` issues a new one and the old one is refused from then on (Youzan's pages say at once or
  within the hour; the sandbox takes the stricter). Tokens live 7 days of real time (the connector plans
  with the real clock; ``app.state.token_lifetime`` shortens the ones issued next). Refusals are HTTP 200
  ``{"success":false,"code","data":null,"message"}``: a body that is not JSON 1000, an unknown client_id
  1103 "Client 不存在", a wrong secret 1000 "应用信息错误", an ``authorize_type`` other than silent 1105,
  a shop that granted nothing (or withdrew its grant) 1103 "授权关系不存在". ``stats``: ``token_requests``
  counts every call, ``tokens_issued`` the new tokens.
- Business calls ``POST /api/{method}/{version}?access_token=...`` with a JSON body. The gateway answers
  HTTP 200 ``{"gw_err_resp":{"trace_id","err_msg","err_code"}}``: a path without a version 4001, an unknown
  method or version 4005 (both before the token is looked at), a content type it does not take 4007, no
  token in the query string (a header or a body field does not count) 4201 "非法的请求凭证", a token it
  never issued or that was replaced 4203 "Token 不存在", an expired one 4202 "请求凭证过期", throttling
  ``throttle_code`` (4101 "请求太频繁" by default). ``POST /_sandbox/youzan/expire_tokens`` expires every
  issued token, ``/_sandbox/youzan/revoke_tokens`` forgets them.
- The >= 4.0 envelope ``{"success","code","message","data","trace_id"}``; business errors are HTTP 200
  with ``success: false`` *and* a ``data`` holding an empty list: a client reading only the list is fooled.
  With ``app.state.legacy_envelope`` the 3.0.0 methods answer in the 3.x envelope instead,
  ``{"response": {...}}`` and ``{"error_response": {"code", "msg"}}``.
- ``youzan.trades.sold.get`` 4.0.0-4.0.4: ``start_update``/``end_update`` (and ``start_created``/
  ``end_created``) as ``"yyyy-MM-dd HH:mm:ss"`` Beijing time, both bounds inclusive; an incomplete pair is
  ignored, as documented; start after end, a span over 3 months or an end more than 7 days ahead are errors.
  ``page_no`` from 1 up to 100, ``page_size`` default 20 and at most 100
  (over: code 5000 "每页最多显示100条数据").
  Results sorted by update time, newest first. ``app.state.list_shape`` says how the answer states its
  paging: ``total_results`` (the whole window's count, 4.0.0's model), ``paginator`` (``{page, page_size,
  total_count}``) or ``has_next`` (``paginator: {page, page_size, has_next}``, no count).
- ``youzan.trade.get`` 4.0.0: ``{"tid"}`` -> ``data`` = ``{full_order_info, refund_order, delivery_order,
  order_promotion}``. Each item of the sold.get list has the same shape (refunds and deliveries included),
  so one mapping reads both.
- Throttling: ``qps_limit`` (per token, off by default) and ``Faults.rate_limit_storm`` answer the gateway's
  ``throttle_code``; ``server_error_rate`` gives 500/502/503 (HTML from the gateway),
  ``truncated_body_rate`` cut bodies, ``malformed_order_rate`` a line ``num`` of "2件".
  ``token_expiry_rate`` expires every issued token before answering (4202; a token's first call is spared);
  ``credentials_revoked`` is a withdrawn grant: ``/auth/token`` answers 1103 "授权关系不存在" and every call
  4201; a duplicated page is the page it served last for the ``page_no`` asked for now.

How the world becomes Youzan:
- Money: the world's Decimal amounts rendered as CNY yuan strings (a simulator, not an exchange rate);
  ``deduction_pay``/``deduction_real_pay`` are integer fen. The world's sales tax is not rendered: Chinese
  retail prices include VAT and Youzan has no tax field, so ``pay_info.payment`` = goods - discounts + post.
- Times: world UTC seconds as naive GMT+8 strings; "" when unset.
- Lines: ``item_id``/``sku_id`` are the world's Youzan listing ids, ``outer_sku_id`` the SKU the merchant
  typed on Youzan (sometimes ""). Every variant is rendered with its own ``sku_id``; real single-spec
  items carry ``sku_id`` 0, which the mapping also handles.
- Payment: Youzan captures at checkout, so the world's "authorized" orders are paid at creation here.
- Refunds: one ``refund_order`` per world refund of a paid order, ``refund_state`` 60 (success), ``oids`` of
  the refunded lines and ``refund_fee`` = their apportioned payment (+ shipping for a cancellation).
  Refunds of unpaid orders move no money and are not rendered (the order is just closed).
- Deliveries: Youzan ships whole sub-orders. A line appears in a ``delivery_order`` (``express_state`` 1) once
  all its units are out, in the package that completed it; earlier partial packages of the same lines are
  extra ``dists``. Hub-pushed shipments are ``express_type`` 1 (API), the world's own ones 0 (manual).

What the hub can push:
- ``youzan.logistics.express.get`` 3.0.0 -> ``data.allExpress[{id, name, display}]``: the carriers
  ``out_stype`` takes. The ids below are the sandbox's [U]; a connector must read them from this call,
  never hard-code them.
- ``youzan.logistics.online.confirm`` 3.0.0 ``{tid, out_stype, out_sid, oids: "oid1,oid2", is_no_express}``
  -> ``data.is_success``. It ships whole sub-orders (every unit still open on each oid; no oids: every open
  sub-order) and records one package in the world. The whole call is refused when any named oid cannot
  ship: ``105000016`` order not found, ``102570007`` a sub-order already shipped, ``102570020`` nothing
  shippable (unpaid, closed or cancelled trade, a refunded or foreign oid), ``105000003`` a waybill that is
  not 6-32 letters, digits or dashes [U rule], ``UNKNOWN_EXPRESS_CODE`` an ``out_stype`` not in the list [U].
- ``youzan.logistics.online.update`` 3.0.0 ``{tid, trade_express_modify: [{dist_id, express_id,
  express_no}]}`` (a list, or the JSON string of one as the Java SDK sends it) re-labels a shipped
  package [C: SDK names and typings; errors U], only once the whole order shipped (status
  WAIT_BUYER_CONFIRM_GOODS [S]; else ``NOT_ALL_SHIPPED``). The world's fulfilment keeps its original
  tracking; the sandbox overrides what it renders, bumps the trade's update time and records each change
  in ``app.state.tracking_updates`` (``stats`` ``tracking_updates``).
- ``youzan.item.quantity.update`` 3.0.0 ``{item_id, sku_id (omit for single-spec items), quantity, type}``:
  type 0 sets the quantity (default), 1 adds to it; recorded with ``world.overlay.record_stock_set`` at
  location 0 (Youzan has no locations here). There is no compare-and-set. ``youzan.item.get`` 3.0.0
  ``{item_id}`` -> ``data.item{item_id, title, item_no, quantity, skus[{sku_id, item_no, quantity,
  properties_name_json}]}`` reads stock back (``skus`` is empty for a single-spec item) [U: response shape].
- ``POST /_sandbox/youzan/fail_next {"method", "count", "after_commit"}``: the next ``count`` calls of
  ``method`` answer a gateway 502, before acting or (``after_commit``) after acting, as a lost answer would.

The package: ``render`` (an order state -> ``full_order_info``), ``listing`` (sold.get's windows and
pages, trade.get), ``pushes`` (shipments and stock), ``app`` (``create_app``: the gateway, tokens, QPS limits,
injected faults, the ``/_sandbox/youzan`` knobs). This module re-exports what other code imports.
"""

from __future__ import annotations

from sandbox.youzan.app import DEFAULT_THROTTLE_CODE, SANDBOX_EXTRA, SANDBOX_KDT_ID, SANDBOX_LOGIN, create_app
from sandbox.youzan.pushes import EXPRESS_IDS, ITEM_NOT_FOUND, NOT_ALL_SHIPPED
from sandbox.youzan.render import CHINA, YouzanRenderer

__all__ = [
    "CHINA",
    "DEFAULT_THROTTLE_CODE",
    "EXPRESS_IDS",
    "ITEM_NOT_FOUND",
    "NOT_ALL_SHIPPED",
    "SANDBOX_EXTRA",
    "SANDBOX_KDT_ID",
    "SANDBOX_LOGIN",
    "YouzanRenderer",
    "create_app",
]
