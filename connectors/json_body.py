"""A platform's answer as JSON, such that one hostile value costs one order, not the page.

msgspec decodes almost every page (about 3x faster than ``json``). What it refuses is read again by
``json``, where a value no decoder keeps as it is becomes an ``Unreadable`` (its JSON text) and every object
holding it, at any depth, lists where under ``UNREADABLE_KEY``: the one order that carries it is queued as a
typed rejection (``channelhub.platforms``) and the rest of its page lands, instead of the page failing on
every retry (a digest, a store or an encode refuses such a value). Such values:

- a string holding half of a surrogate pair (an emoji cut in half in a buyer's note);
- a number past a float's range (``1e400``) or past Python's 4,300-digit integers;
- an array or object nested deeper than ``MAX_DEPTH``: msgspec and ``json`` both give up near 1,000 levels
  (msgspec at 999), so the subtree below ``MAX_DEPTH`` is cut out as text before ``json`` reads the rest.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import msgspec
import requests

UNREADABLE_KEY = "_channelhub_unreadable"

# Real order payloads nest under 10 levels; 256 leaves ``json`` and the recursive marking far from Python's
# recursion limit (1,000), and Postgres stores the cut text as a plain string.
MAX_DEPTH = 256

# A JSON string (escapes included) or a bracket: scanning these skips every bracket written inside a string.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class Unreadable(str):
    """A JSON value no decoder keeps as it is, standing in the payload as its JSON text (escaped to ASCII for
    strings), so that the payload can be stored exactly and queued."""


def decode_json(response: requests.Response) -> Any:
    """The body as JSON: msgspec for UTF-8, ``json`` for other encodings and for what msgspec refuses;
    ValueError for what is not JSON, including the NaN / Infinity literals ``json`` would accept."""
    try:
        return _JSON_DECODER.decode(response.content)
    except (msgspec.DecodeError, RecursionError):
        pass
    text, cut = _cut_deep_subtrees(response.text)
    body = json.loads(
        text, parse_constant=_not_json, parse_float=_float_or_unreadable, parse_int=_int_or_unreadable
    )
    _mark_unreadable(body, cut)
    return body


def _cut_deep_subtrees(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each array or object that opens deeper than ``MAX_DEPTH`` replaced by a placeholder
    string; returns the new text and {placeholder: the subtree's text}. Unbalanced brackets are left as they
    are, for ``json`` to refuse."""
    depth = 0
    cut_from = -1
    parts: list[str] = []
    cut: dict[str, str] = {}
    kept_to = 0
    nonce = uuid.uuid4().hex
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth == MAX_DEPTH + 1:
                cut_from = token.start()
        elif char in "]}":
            if depth == MAX_DEPTH + 1 and cut_from >= 0:
                placeholder = f"\u0000channelhub-cut:{nonce}:{len(cut)}"
                cut[placeholder] = text[cut_from : token.end()]
                parts.append(text[kept_to:cut_from])
                parts.append(json.dumps(placeholder))
                kept_to = token.end()
                cut_from = -1
            depth -= 1
    if not cut:
        return text, cut
    parts.append(text[kept_to:])
    return "".join(parts), cut


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


def _float_or_unreadable(text: str) -> float | Unreadable:
    value = float(text)
    return value if math.isfinite(value) else Unreadable(text)


def _int_or_unreadable(text: str) -> int | Unreadable:
    return int(text) if len(text) <= 4000 else Unreadable(text)


def _mark_unreadable(node: Any, cut: dict[str, str]) -> list[str]:
    """Replace each string holding a lone surrogate, and each placeholder of a cut subtree, by an
    ``Unreadable``; list, in every object above an unreadable value, the paths to it (``UNREADABLE_KEY``).
    Returns the paths under ``node``."""
    found: list[str] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, Unreadable):
            found.append(str(key))
        elif isinstance(value, str):
            if value in cut:
                node[key] = Unreadable(cut[value])
                found.append(str(key))
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                node[key] = Unreadable(json.dumps(value)[1:-1])
                found.append(str(key))
        elif isinstance(value, dict | list):
            found.extend(f"{key}/{path}" for path in _mark_unreadable(value, cut))
    if found and isinstance(node, dict):
        node[UNREADABLE_KEY] = found
    return found


_JSON_DECODER = msgspec.json.Decoder()
