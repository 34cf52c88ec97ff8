"""The text of a CSV file in the encoding its drop folder declares, or one detected without guessing.

Store systems export UTF-8 (often with a byte-order mark, as Excel writes it) or GB18030 (GBK's superset,
what Windows in Chinese saves). Read in the wrong one, Chinese text becomes other Chinese text, silently; so
a file is decoded strictly in the declared encoding or refused with the reason, and ``auto`` picks only when
the bytes leave no doubt:

- a byte-order mark decides (UTF-8's, or GB18030's ``84 31 95 33``);
- bytes that are valid UTF-8 are UTF-8 (GB18030 text of more than a character or two is not valid UTF-8);
- otherwise GB18030, only when the bytes decode strictly as GB18030 *and* the decoded header row names the
  kind's columns (``recognises``); anything else is refused: declare the folder's encoding.
"""

from __future__ import annotations

from collections.abc import Callable

from canonical.store_files import ImportFileError

ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gb18030")
UTF8_BOM = b"\xef\xbb\xbf"
GB18030_BOM = b"\x84\x31\x95\x33"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class EncodingRefused(ImportFileError):
    """The bytes are not text in the declared encoding, or no encoding can be told safely.

    ``reason`` is the typed cause: ``not_declared_encoding`` (declared one encoding, the bytes are another or
    none), ``encoding_undetectable`` (``auto`` could not tell), ``unsupported_encoding`` (UTF-16, NUL bytes,
    an encoding name the hub does not read)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


def decode_bytes(data: bytes, declared: str = "auto", recognises: Callable[[str], bool] | None = None) -> str:
    """``data`` as text. ``recognises(text)`` says whether text decoded as GB18030 under ``auto`` starts with
    a header of the kind being imported (without it, ``auto`` never picks GB18030)."""
    encoding = declared.strip().lower().replace("_", "-")
    encoding = {"utf8": "utf-8", "utf-8-bom": "utf-8-sig", "gbk": "gb18030", "gb2312": "gb18030"}.get(
        encoding, encoding
    )
    if encoding not in ENCODINGS:
        raise EncodingRefused(
            "unsupported_encoding", f"unknown encoding {declared!r}: expected one of {', '.join(ENCODINGS)}"
        )
    if data.startswith(UTF16_BOMS):
        raise EncodingRefused(
            "unsupported_encoding",
            "the file is UTF-16 (Excel's 'Unicode text'): save it as CSV UTF-8, or as .xlsx",
        )
    if encoding in ("utf-8", "utf-8-sig"):
        text = _utf8(data, encoding)
    elif encoding == "gb18030":
        text = _gb18030(data)
    else:
        text = _auto(data, recognises)
    if "\x00" in text:
        raise EncodingRefused("unsupported_encoding", "the file holds NUL bytes: not a CSV text file")
    return text


def _utf8(data: bytes, declared: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a BOM is fine in either: Excel writes one
    except UnicodeDecodeError as err:
        raise EncodingRefused(
            "not_declared_encoding", f"declared {declared}, but {_byte(data, err.start)}: {_looks_like(data)}"
        ) from None


def _gb18030(data: bytes) -> str:
    if data.startswith(UTF8_BOM):
        raise EncodingRefused(
            "not_declared_encoding",
            "declared gb18030, but the file starts with UTF-8's byte-order mark: it is UTF-8; "
            "set the folder's encoding to utf-8-sig (or auto)",
        )
    if not data.isascii() and _is_utf8(data):
        raise EncodingRefused(
            "not_declared_encoding",
            "declared gb18030, but the file is valid UTF-8 with non-ASCII text: it looks like UTF-8 "
            "(read as GB18030 it would be garbled); set the folder's encoding to utf-8",
        )
    try:
        return data.removeprefix(GB18030_BOM).decode("gb18030")
    except UnicodeDecodeError as err:
        raise EncodingRefused(
            "not_declared_encoding", f"declared gb18030, but {_byte(data, err.start)}: it is not GB18030 text"
        ) from None


def _auto(data: bytes, recognises: Callable[[str], bool] | None) -> str:
    if data.startswith(UTF8_BOM):
        return _utf8(data, "utf-8-sig (by its byte-order mark)")
    if data.startswith(GB18030_BOM):
        return _gb18030(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        first_bad = err.start
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and recognises is not None and recognises(text):
        return text
    why = (
        "not GB18030 either"
        if text is None
        else "read as GB18030 its first row is not a header of this kind (no certainty it is GB18030)"
    )
    raise EncodingRefused(
        "encoding_undetectable",
        f"not UTF-8 ({_byte(data, first_bad)}) and {why}: cannot tell the encoding safely; "
        "declare it (the folder's encoding in config/channels.yaml, or --encoding)",
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _byte(data: bytes, at: int) -> str:
    return f"byte {at} is 0x{data[at]:02x}"


def _looks_like(data: bytes) -> str:
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        return "it is not UTF-8 text; save the file as UTF-8"
    return "it looks like GB18030; set the folder's encoding to gb18030 (or --encoding gb18030)"
