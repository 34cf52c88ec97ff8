"""Set-based statements: a whole batch travels as one array per column and ``unnest`` turns it into rows.

One small, constant SQL text per statement (parsed and planned once per connection, whatever the batch
size) instead of a multi-row VALUES list whose text grows with the batch; rows come out of ``unnest`` in
array order, so a batch sorted by key also locks in key order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Columns = Sequence[tuple[str, str]]  # (name, Postgres type)


def unnest(columns: Columns, alias: str = "v") -> str:
    """``unnest(CAST(:a AS text[]), ...) AS v(a, ...)`` binding one array parameter per column."""
    arrays = ", ".join(f"CAST(:{name} AS {pg_type}[])" for name, pg_type in columns)
    names = ", ".join(name for name, _ in columns)
    return f"unnest({arrays}) AS {alias}({names})"


def arrays(columns: Columns, rows: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
    """Parameters for ``unnest(columns)``: rows (tuples in column order) turned into one list per column."""
    listed = list(rows)
    return {name: [row[i] for row in listed] for i, (name, _) in enumerate(columns)}
