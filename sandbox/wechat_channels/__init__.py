"""A WeChat Channels shop (微信小店, formerly 视频号小店) ``channels/ec/*`` simulator, with the shop's mini
program (its shipping-info service, ``wxa/sec/order/*``) as a second app.

Sources and corrections: docs/platform-notes.md, WeChat section.

What it reproduces, quirks included:
- Two apps with their own appid, secret, tokens and openids: the shop (``SANDBOX_LOGIN``, secret = the
  sandbox's ``access_token``) and its mini program (``SANDBOX_MINI_PROGRAM_APPID``, secret =
  ``mini_program_secret(access_token)``). ``channels/*`` takes the shop's token, ``wxa/*`` the mini
  program's; another app's token is 48001 [U]. Wrong appid -> 40013, wrong secret -> 40125, wrong
  grant_type -> 40002, on both token endpoints.
- ``POST /cgi-bin/stable_token`` (JSON only) ``{grant_type, appid, secret, force_refresh}``: normal mode hands
  out the app's token in force with its remaining ``expires_in`` (a new one in its last 5 minutes, the old
  one keeping its expiry); ``force_refresh: true`` invalidates it at once and issues a new one, at most 20
  a day (then 45009 [U]) and not within 30 s of the last (the token in force comes back unchanged).
  ``GET /cgi-bin/token`` (old) issues a new token on every call and leaves the app's earlier ones five
  minutes; the two kinds are isolated. Tokens live ``token_lifetime_seconds`` of the *world clock* (a test
  advances the clock, or posts ``{"expire_tokens": true}`` to ``/_sandbox/wechat``; ``{"distrust_tokens":
  true}`` makes calls refuse the live tokens with 40001 while stable_token still hands them out, the case
  ``force_refresh`` is for). ``/_sandbox/wechat`` counts tokens issued (``stable_tokens_issued``,
  ``force_refreshes``) and ``/_sandbox/state`` the requests (``stable_token_requests``).
- Every business call is ``POST <path>?access_token=`` with a JSON body, and every answer is HTTP 200 with
  ``{"errcode", "errmsg"}``; errmsg ends with `` rid: <8 hex digits of the world clock's epoch second>-...``
  (WeChat's rid starts with the answer's time): 41001 token missing, 40001 token unknown (or revoked),
  42001 token expired, 44002 empty body, 47001 body not JSON, 40097 invalid arguments, 45009 daily quota
  (``daily_quota`` calls per UTC day of the world clock), 45011 minute quota (``Faults.rate_limit_storm``),
  -1 system busy (half of ``Faults.server_error_rate``; the other half are gateway 502/503 HTML pages).
  ``Faults.token_expiry_rate`` expires the issued tokens before answering (42001, or 40001 as when they
  were replaced; a token's first call is spared, as a token expires with age); ``credentials_revoked`` is an
  app secret reset (token endpoints 40125, calls 40001); a duplicated page is the previous ``next_key``'s
  answer again.
- ``POST /channels/ec/order/list/get``: ``create_time_range`` and/or ``update_time_range`` (epoch seconds,
  both bounds inclusive, ``end - start <= 7 days``), ``status``, ``openid``, ``page_size <= 100`` (default
  10), opaque ``next_key`` (signed; first call empty) -> ``order_id_list`` of 19-digit **string** ids,
  ``next_key``, ``has_more``. Ids only: each order needs ``POST /channels/ec/order/get {"order_id"}``.
- ``order/get`` renders ``{"order": {...}}``: integer **fen**, epoch seconds, ``product_infos`` with string
  ``product_id``/``sku_id`` and ``sku_code`` blank or missing where the merchant left the channel SKU
  empty, ``price_info``, ``pay_info``, ``delivery_info`` (address, ``delivery_product_info`` per parcel),
  ``aftersale_detail`` (after-sale ids with their numeric status) and ``finish_aftersale_sku_cnt`` for
  refunds, ``status`` 10/20/21/30/100/200/250. ``aftersale/getaftersaleorder {after_sale_order_id}`` ->
  ``after_sale_order`` (one product each: ``product_info.count``, ``refund_info.amount`` in fen, ``type``
  REFUND or RETURN, ``status`` MERCHANT_REFUND_SUCCESS / MERCHANT_RETURN_SUCCESS); unknown id 100002 [U].
- Pushes, recorded in the world's overlay so the next ``order/get`` and listing show them:
  ``order/deliverycompanylist/new/get {ewaybill_only}`` (and the old ``deliverycompanylist/get``) ->
  ``company_list``: the official table (``DELIVERY_COMPANIES``: YUNDA, EMS, ...);
  ``order/delivery/send`` ``{order_id, delivery_list: [{delivery_id, waybill_id, deliver_type: 1,
  product_infos: [{product_id, sku_id, product_cnt}]}]}`` -> one parcel per entry in
  ``delivery_info.delivery_product_info``, status 20 -> 21 (partly) -> 30 (all units), ``ship_done_time``;
  ``order/deliveryinfo/update`` changes parcels' carrier/waybill: ``change_infos [{old, new}]`` (any parcel,
  split ones too; goods unchanged) or ``delivery_list`` (an order shipped in one parcel), at most three
  changes while the order is not completed (every change is kept in ``app.state.delivery_updates``);
  ``product/stock/update`` / ``warehouse/stock/update`` (``diff_type`` 1 add, 2 reduce, 3 set,
  ``out_warehouse_id`` from ``WAREHOUSES``) and ``product/stock/get`` (``normal_stock_num``,
  ``warehouse_stocks``, ``total_stock_num``; the catalog's opening stock until a set).
  Refusals (HTTP 200 errcode bodies): 40097 invalid args (missing ids, ``product_cnt`` <= 0, deliver_type
  other than 1, a changed parcel not on the order), 606031 product/sku not in the order, 606004
  delivery_id not on the list (OTHER is taken), 606005 blank waybill, 606040 whole-order change of split
  parcels, 606041 changes used up, 606042 a change's goods not the parcel's, 101100 a change on an order
  not shipped or completed, 109000 unpaid/cancelled order or more units than remain unshipped, 109001
  every requested unit already shipped, 10020002/10020050/10020060 unknown product / stock below zero /
  unknown warehouse (see the ``ERR_*`` constants for which are confirmed). A waybill sent twice is not
  refused ([U]: the real rule is not documented), so a connector must recognise its own earlier parcel by
  reading the order.

- The mini program's shipping-info service: ``wxa/sec/order/upload_shipping_info`` ``{order_key
  {order_number_type 1: mchid + out_trade_no (this shop's ``SANDBOX_MCHID`` and the Channels order id) | 2:
  transaction_id (``pay_info.transaction_id`` of a paid order)}, delivery_mode 1 UNIFIED (exactly one
  entry) | 2 SPLIT (is_all_delivered required, <= 15 entries), logistics_type 1..4, shipping_list
  [{tracking_no, express_company (the company list's codes), item_desc, contact}], upload_time (RFC 3339,
  later than the last upload), payer {openid under the mini program}}``. An upload replaces the recorded
  list ([U]); after the shipping is finished, one more upload (the re-shipment) is allowed.
  ``wxa/sec/order/get_order`` ``{transaction_id | merchant_id + merchant_trade_no}`` reads it back with the
  payer's ``openid`` under the mini program (``order_state`` 1 待发货 / 2 已发货 / 3 确认收货 (status 100)
  / 5 已退款 (cancelled); 4 交易完成 for ``complete_payments`` posted to ``/_sandbox/wechat``). Refusals:
  10060001 no such payment (unpaid orders, and ``foreign_payments``: paid outside the mini program) [S],
  10060003 the re-shipment used [S], 10060004 payment not shippable [C], 10060031 payer openid not the
  payer's (the shop's openid is not) [S], 47001 data format (types, upload_time not RFC 3339) [C],
  10060014 any other invalid value [U], 10060023 upload_time not increasing [U]; SF without a contact [U].

Simulator choices (the world is platform-neutral; this package adapts it):
- Currency: the world's Decimal amounts are rendered as CNY fen (fine for a simulator). The world's sales
  tax is left out: Chinese retail prices include VAT and the Channels order has no tax field, so
  ``order_price = product_price - discounted_price + freight``.
- Addresses: Channels shops deliver in mainland China, so each world address is re-homed to one of a few
  Chinese places (chosen by a hash of the address, stable) with an 11-digit mobile number.
- WeChat has no "authorized, capture later": a world order authorized at checkout is paid at once here.
- Lines of one order with the same variant are one ``product_infos`` entry (the platform groups by SKU).
- A world refund is one after-sale order per product it covers; a refund of the whole order carries the
  freight on its last after-sale order [U]; a return with restock "return" is a RETURN, any other refund a
  REFUND. Every Channels payment is the mini program's unless posted as ``foreign_payments`` [U].
- Stock is not drawn down by the world's sales: a SKU holds its opening stock until the hub sets it.
- A deliveryinfo/update is an overlay order event without a parcel: the fold ignores it, but the order's
  ``update_time`` moves, so the next incremental pull sees the new waybill.
- Unconfirmed details are marked ``[U]`` where they are rendered: the error code for a span over 7 days, the
  list default page size, the not-found codes, no change on a completed order, 48001 for another app's
  token, the code of the force-refresh limit.

The package: ``wire`` (ids, statuses, carriers, errcodes every part shares), ``render`` (an order
state -> order JSON), ``listing`` (time ranges, ``next_key`` pages, single reads), ``pushes`` (deliveries,
stock) with ``mini_program`` (the shipping-info service), ``app`` (``create_app``: tokens, quota, the
gateway, the ``/_sandbox/wechat`` knobs). This module re-exports what other code imports.
"""

from __future__ import annotations

from sandbox.wechat_channels.app import create_app, mini_program_secret
from sandbox.wechat_channels.render import WeChatChannelsRenderer
from sandbox.wechat_channels.webhooks import webhook_extra
from sandbox.wechat_channels.wire import (
    DELIVERY_COMPANIES,
    SANDBOX_LOGIN,
    SANDBOX_MCHID,
    SANDBOX_MINI_PROGRAM_APPID,
)

__all__ = [
    "DELIVERY_COMPANIES",
    "SANDBOX_LOGIN",
    "SANDBOX_MCHID",
    "SANDBOX_MINI_PROGRAM_APPID",
    "WeChatChannelsRenderer",
    "create_app",
    "mini_program_secret",
    "webhook_extra",
]
