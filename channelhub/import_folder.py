"""Import the files that stores and the warehouse drop into a folder (the ``store_import`` DAG's work).

The folder is ``HUB_IMPORT_DIR`` (default ``.state/imports``), plus each drop folder under it configured in
``import_sources`` (config/channels.yaml: a store system's or a store's folder, with the encoding, header
names and sheet its files are read with; the import folder itself reads with ``auto`` and the built-in
names). A file is taken when its name starts with its kind, in English or Chinese (``KIND_NAME_PREFIXES``:
``shipments*``/``发货*``, ``counts*``/``盘点*``, ``sales*``/``销售*``, ``returns*``/``退货*``/
``退换货*``/``销售退货*``, any case) and ends in ``.csv`` or ``.xlsx``, oldest first (modification time,
then name), once it has been left alone for ``min_age`` (a writer that is still writing should write under
another name, e.g. ``.part``, and rename when done). Each file goes through
``warehouse.store_imports.import_file`` and then moves to ``done/`` (its bad rows are in the report and the
exception queue), or to ``failed/`` with ``<name>.report.txt`` beside it when it cannot be read as its kind
at all, or its import failed in a way no rule foresaw: one bad file never blocks the files after it. A
database failure raises and leaves the file where it is for the next run (importing it again is harmless:
rows are idempotent).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from canonical.store_files import KINDS
from channelhub.config import ImportSourceConfig
from channelhub.db import STATE_DIR
from warehouse.db_errors import DB_ERRORS, WarehouseUnavailable
from warehouse.store_imports import FileOptions, ImportFileError, ImportReport, import_file

log = logging.getLogger("channelhub.import_folder")

DEFAULT_IMPORT_DIR = STATE_DIR / "imports"
MIN_AGE_SECONDS = 10.0
DONE, FAILED = "done", "failed"
FILE_SUFFIXES = (".csv", ".xlsx")
# File name prefix -> the kind it announces, besides the kind's own name. The longest prefix wins (销售退货 is
# a return, not a sale); a name the table maps to None is never taken by a shorter one.
KIND_NAME_PREFIXES: dict[str, str | None] = {
    "发货": "shipments",
    "盘点": "counts",
    "销售": "sales",
    "调拨": "transfers",
    "调拨收货": "transfer_receipts",
    "调拨入库": "transfer_receipts",
    "采购单": "expected_deliveries",
    "采购入库": "receipts",
    "销售退货": "returns",
    "退货": "returns",
    "退换货": "returns",
    "换货": "returns",
}


@dataclass
class FolderImport:
    """One file of the folder: its report, or why it could not be imported; and where it went."""

    path: Path
    kind: str
    moved_to: Path
    report: ImportReport | None = None
    error: str | None = None
    reason: str | None = None  # why not, typed (ImportFileError.reason: not_declared_encoding, ...)

    def line(self) -> str:
        if self.report is not None:
            return f"{self.report.summary_line()} -> {self.moved_to}"
        return f"{self.path} ({self.kind}): not imported: {self.error} -> {self.moved_to}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "kind": self.kind,
            "moved_to": str(self.moved_to),
            "error": self.error,
            "reason": self.reason,
            "report": self.report.as_dict() if self.report else None,
        }


def import_dir() -> Path:
    return Path(os.environ.get("HUB_IMPORT_DIR", DEFAULT_IMPORT_DIR))


def kind_of(name: str) -> str | None:
    """The import kind a file name announces (``counts_store12_20261120.csv`` -> counts,
    ``盘点_SH01.xlsx`` -> counts), else None."""
    lowered = name.lower()
    if not lowered.endswith(FILE_SUFFIXES):
        return None
    prefixes: dict[str, str | None] = {kind: kind for kind in KINDS} | KIND_NAME_PREFIXES
    matching = [prefix for prefix in prefixes if lowered.startswith(prefix.lower())]
    if not matching:
        return None
    kind = prefixes[max(matching, key=len)]
    return kind if kind in KINDS else None


def pending_files(folder: Path, min_age: float = MIN_AGE_SECONDS) -> list[tuple[Path, str]]:
    """(file, kind) of the files waiting in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    now = time.time()
    waiting: list[tuple[float, str, Path, str]] = []
    for path in folder.iterdir():
        kind = kind_of(path.name)
        if kind is None or not path.is_file():
            continue
        modified = path.stat().st_mtime
        if now - modified < min_age:
            log.info("%s: changed %.1f s ago; left for the next run", path, now - modified)
            continue
        waiting.append((modified, path.name, path, kind))
    return [(path, kind) for _, _, path, kind in sorted(waiting)]


def import_folder(
    engine: Engine,
    folder: Path | None = None,
    *,
    min_age: float = MIN_AGE_SECONDS,
    sources: Sequence[ImportSourceConfig] = (),
) -> list[FolderImport]:
    """Import every waiting file of ``folder`` (default ``import_dir()``) and of each configured drop folder
    under it, each read with its source's settings, and move each file out of the way (into its own
    folder's ``done/`` or ``failed/``)."""
    folder = folder or import_dir()
    # The import folder itself first: auto and the built-in header names, unless configured as ".".
    settings: dict[str, FileOptions] = {".": FileOptions()}
    settings.update({source.folder.strip("/") or ".": source.options for source in sources})
    results: list[FolderImport] = []
    for relative, options in settings.items():
        results.extend(_import_one_folder(engine, folder / relative, options, min_age))
    return results


def _import_one_folder(
    engine: Engine, folder: Path, options: FileOptions, min_age: float
) -> list[FolderImport]:
    folder.mkdir(parents=True, exist_ok=True)  # the drop folder exists from the first run on
    results: list[FolderImport] = []
    for path, kind in pending_files(folder, min_age):
        try:
            report = import_file(engine, kind, path, options)
        except (*DB_ERRORS, WarehouseUnavailable):
            raise  # the warehouse is down: the file waits for the run's retry (rows are idempotent)
        except ImportFileError as err:
            result = _failed(path, kind, folder, str(err), err.reason)
        except Exception as err:  # a file no rule foresaw must not block every file after it
            log.exception("%s: the import failed unexpectedly", path)
            error = f"unexpected error {type(err).__name__}: {err}"[:2000]
            result = _failed(path, kind, folder, error, "unexpected_error")
        else:
            result = FolderImport(path, kind, _move(path, folder / DONE), report=report)
        log.info("%s", result.line())
        results.append(result)
    return results


def _failed(path: Path, kind: str, folder: Path, error: str, reason: str) -> FolderImport:
    """Move a file that could not be imported to ``failed/``, with ``<name>.report.txt`` beside it saying
    why (what a person opening the folder needs; the task log says it too)."""
    moved = _move(path, folder / FAILED)
    report = moved.with_name(moved.name + ".report.txt")
    report.write_text(
        f"{path.name} ({kind}) was not imported, {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC:\n{error}\n"
        f"reason: {reason}\n"
        "Fix the file and drop it into the import folder again: rows applied before do not apply twice.\n",
        encoding="utf-8",
    )
    return FolderImport(path, kind, moved, error=error, reason=reason)


def _move(path: Path, target_dir: Path) -> Path:
    """Move ``path`` into ``target_dir`` without overwriting an earlier file of the same name."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    path.replace(target)
    return target
