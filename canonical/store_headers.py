"""Column headers of store files: the hub's English names, and the Chinese names store systems export.

Store systems (秦丝, 管家婆, 友数连锁 and the like) name columns in Chinese, each a little differently.
A header cell resolves to a canonical column by, first, the source's own header map (``headers:`` of its
drop folder in config/channels.yaml, or ``--headers-from``), then the canonical name itself (English, any
case), then the built-in ``HEADER_ALIASES``. Spaces, full-width spaces and case do not matter.

``HEADER_ALIASES`` lists only names whose meaning is the same in every export we know of. Names that mean a
different column in different files (a bare 日期 is the sale's time in one export and the count's in another;
条码 is a barcode, which is not the SKU code in every shop) are left out on purpose: a source that uses them
says so in its header map. A name listed under two columns is refused when this module loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# canonical column -> the names store systems give it. One line per column: a new kind's columns are one
# line each.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("商品编码", "货号", "SKU编码", "商品货号"),
    "quantity": ("数量", "销售数量", "发货数量", "调拨数量", "采购数量", "退货数量"),
    "location": ("门店", "门店编码", "门店编号", "仓库", "仓库编码", "仓库编号"),
    "receipt_id": ("单据编号", "小票号", "销售单号", "收货单号", "入库单号"),
    "line_no": ("行号", "序号"),
    "sold_at": ("销售时间", "销售日期"),
    "unit_price": ("单价", "销售单价"),
    "amount": ("金额", "销售金额", "折后金额"),
    "currency": ("币种",),
    "count_id": ("盘点单号", "盘点单编号"),
    "counted_quantity": ("盘点数量", "实盘数量", "实盘数"),
    "counted_at": ("盘点时间", "盘点日期"),
    "shipment_id": ("发货单号", "发货单编号"),
    "channel": ("渠道", "店铺", "渠道编码", "店铺编码"),
    "order_id": ("订单号", "订单编号", "原订单号"),
    "line_id": ("子订单号", "子订单编号"),
    "carrier": ("快递公司", "物流公司"),
    "tracking_number": ("快递单号", "运单号", "物流单号"),
    "shipped_at": ("发货时间", "发货日期"),
    # transfers (调拨) and purchase receipts (采购入库)
    "transfer_id": ("调拨单号", "调拨单编号"),
    "from_location": ("调出门店", "调出仓库"),
    "to_location": ("调入门店", "调入仓库"),
    "sent_at": ("调出时间", "调出日期"),
    "received_quantity": ("实收数量", "收货数量", "入库数量"),
    "received_at": ("收货时间", "入库时间", "收货日期", "入库日期"),
    "po_id": ("采购单号", "采购订单号"),
    "supplier": ("供应商", "供应商名称"),
    "expected_at": ("预计到货时间", "预计到货日期"),
    # returns and exchanges (退换货)
    "return_id": ("退货单号", "退货单编号", "退换货单号"),
    "reason": ("退货原因", "退换货原因"),
    "returned_at": ("退货时间", "退货日期"),
    "order_line_id": ("订单行号",),
    "exchange_sku": ("换货商品编码", "换货商品", "换货货号"),
    "exchange_quantity": ("换货数量",),
}

_SPACES = str.maketrans("", "", " \t\u3000\u00a0\ufeff")


class HeaderError(ValueError):
    """A header that cannot be resolved to columns without guessing."""


def normalise_header(name: str) -> str:
    """The form headers are compared in: no spaces (ASCII, full-width, non-breaking), lower case."""
    return name.translate(_SPACES).lower()


def _alias_index(aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for column, names in aliases.items():
        for name in (column, *names):
            key = normalise_header(name)
            if index.get(key, column) != column:
                raise HeaderError(f"header alias {name!r} is listed under both {index[key]} and {column}")
            index[key] = column
    return index


ALIAS_INDEX = _alias_index(HEADER_ALIASES)


def source_header_map(headers: Mapping[str, str | None]) -> dict[str, str | None]:
    """A source's header map (its name -> canonical column, or None: a column of its own, to ignore even
    where a built-in name would take it), keyed by the normalised name. Two names that normalise alike but
    map to different columns are refused."""
    resolved: dict[str, str | None] = {}
    for name, column in headers.items():
        key = normalise_header(name)
        if resolved.get(key, column) != column:
            raise HeaderError(f"the header map names {name!r} twice: as {resolved[key]} and as {column}")
        resolved[key] = column
    return resolved


def resolve_header(
    header: Sequence[str], columns: Sequence[str], headers: Mapping[str, str | None] | None = None
) -> list[str]:
    """The column each header cell stands for. A cell naming one of ``columns`` (the kind's columns) gets
    that column's canonical name; any other cell keeps its own (normalised) name and is ignored by the
    parser. Two cells meaning the same column are refused: which one holds the data would be a guess."""
    own = source_header_map(headers or {})
    wanted = set(columns)
    names: list[str] = []
    meaning: dict[str, str] = {}  # canonical column -> the header cell that named it
    for cell in header:
        key = normalise_header(cell)
        column = own[key] if key in own else ALIAS_INDEX.get(key)
        if column in wanted:
            if column in meaning:
                raise HeaderError(
                    f"columns {meaning[column].strip()!r} and {cell.strip()!r} both mean {column}: "
                    "keep one, or name the other null (ignored) in the source's header map"
                )
            meaning[column] = cell
            names.append(column)
        else:
            names.append(key)
    return names


def known_names(column: str) -> list[str]:
    """What a column may be called: its canonical name and its built-in aliases (for messages and docs)."""
    return [column, *HEADER_ALIASES.get(column, ())]
