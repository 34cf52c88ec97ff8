"""One carrier table: the carriers warehouses name, under every name they write, and a platform's own codes.

A store or WMS writes "SF", "顺丰", "SF Express" or "shunfeng" for the same carrier; each platform wants its
own code for it (Taobao ``SF``, Pinduoduo a numeric ``logistics_id``, Youzan a display name matched against
its live list). The aliases live here once; a platform declares only ``{carrier key: its code}`` in its
package (``platforms/<name>/pushes.py``), so adding a carrier or a platform is one line, not a fifth table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Carrier:
    key: str  # the hub's name for it, what platforms' code tables are keyed by
    names: tuple[str, ...]  # how warehouses write it (compared upper-case, spaces and dashes ignored)


CARRIERS: tuple[Carrier, ...] = (
    Carrier("SF", ("SF", "SF EXPRESS", "SHUNFENG", "SFEXPRESS", "顺丰", "顺丰速运", "顺丰快递", "顺丰速递")),
    Carrier("YTO", ("YTO", "YTO EXPRESS", "YUANTONG", "圆通", "圆通速递", "圆通快递")),
    Carrier("ZTO", ("ZTO", "ZTO EXPRESS", "ZHONGTONG", "中通", "中通快递", "中通速递")),
    Carrier("STO", ("STO", "STO EXPRESS", "SHENTONG", "申通", "申通快递")),
    # Not "YD" (nor "YZPY" below): codes, not names, once the hub's WeChat aliases and not codes of WeChat's
    # table (docs/platform-notes.md, WeChat); a platform whose code one is still takes it as given.
    Carrier("YUNDA", ("YUNDA", "YUNDA EXPRESS", "韵达", "韵达快递", "韵达速递")),
    Carrier("BEST", ("BEST", "HTKY", "BEST EXPRESS", "百世", "百世快递", "百世汇通")),
    Carrier("EMS", ("EMS", "CHINA EMS", "CHINA POST EMS", "中国邮政EMS", "邮政EMS", "中国邮政速递物流")),
    Carrier("CHINA_POST", ("CHINA POST", "CHINAPOST", "POST", "邮政", "邮政快递包裹", "中国邮政")),
    Carrier("JD", ("JD", "JDL", "JD LOGISTICS", "JD EXPRESS", "京东", "京东快递", "京东物流")),
    Carrier("DEPPON", ("DEPPON", "DEPPON EXPRESS", "DBL", "德邦", "德邦快递", "德邦物流")),
    Carrier("JTEXPRESS", ("JTEXPRESS", "J&T", "JT", "J&T EXPRESS", "JITU", "极兔", "极兔速递", "极兔快递")),
    Carrier("CAINIAO", ("CAINIAO", "DANNIAO", "菜鸟速递", "丹鸟", "菜鸟速递(丹鸟)")),
    Carrier("ZJS", ("ZJS", "ZJS EXPRESS", "宅急送")),
    Carrier("UPS", ("UPS",)),
    Carrier("USPS", ("USPS",)),
    Carrier("FEDEX", ("FEDEX", "FEDERAL EXPRESS")),
    Carrier("DHL", ("DHL", "DHL EXPRESS")),
    Carrier("DHL_US", ("DHL US",)),
    Carrier("ONTRAC", ("ONTRAC",)),
    Carrier("ROYAL_MAIL", ("ROYAL MAIL",)),
    Carrier("EVRI", ("EVRI",)),
    Carrier("CANADA_POST", ("CANADA POST",)),
    Carrier("AUSTRALIA_POST", ("AUSTRALIA POST",)),
    Carrier("POSTNL", ("POSTNL",)),
    # "No carrier of the table": WeChat's delivery/send takes OTHER for carriers off its list.
    Carrier("OTHER", ("OTHER", "其他")),
)


def _folded(name: str) -> str:
    return re.sub(r"[\s\-_.]+", "", name).upper()


_BY_NAME: dict[str, str] = {_folded(name): carrier.key for carrier in CARRIERS for name in carrier.names}


def carrier_key(name: str) -> str | None:
    """The hub's key for a carrier as a warehouse wrote it; None when no alias matches."""
    return _BY_NAME.get(_folded(name))


def carrier_code(codes: Mapping[str, str], name: str) -> str | None:
    """A platform's code for the carrier a warehouse named: through the alias table, or the platform's own
    code given as is (a warehouse that already writes Taobao's ``ZJS``); None when the platform has none."""
    key = carrier_key(name)
    if key is not None and key in codes:
        return codes[key]
    return name if name in codes.values() else None
