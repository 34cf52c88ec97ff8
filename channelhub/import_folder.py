"""Import the CSV files that stores and the warehouse drop into a folder (the ``store_import`` DAG's work).

The folder is ``HUB_IMPORT_DIR`` (default ``.state/imports``). A file is taken when its name starts with its
kind and ends in ``.csv`` (``shipments*.csv``, ``counts*.csv``, ``sales*.csv``, any case), oldest first
(modification time, then name), once it has been left alone for ``min_age`` (a writer that is still writing
should write under another name, e.g. ``.part``, and rename when done). Each file goes through
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from canonical.store_files import KINDS
from channelhub.db import STATE_DIR
from warehouse.db_errors import DB_ERRORS, WarehouseUnavailable
from warehouse.store_imports import ImportFileError, ImportReport, import_file

log = logging.getLogger("channelhub.import_folder")

DEFAULT_IMPORT_DIR = STATE_DIR / "imports"
MIN_AGE_SECONDS = 10.0
DONE, FAILED = "done", "failed"


@dataclass
class FolderImport:
    """One file of the folder: its report, or why it could not be imported; and where it went."""

    path: Path
    kind: str
    moved_to: Path
    report: ImportReport | None = None
    error: str | None = None

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
            "report": self.report.as_dict() if self.report else None,
        }


def import_dir() -> Path:
    return Path(os.environ.get("HUB_IMPORT_DIR", DEFAULT_IMPORT_DIR))


def kind_of(name: str) -> str | None:
    """The import kind a file name announces (``counts_store12_20261120.csv`` -> counts), else None."""
    lowered = name.lower()
    if not lowered.endswith(".csv"):
        return None
    return next((kind for kind in KINDS if lowered.startswith(kind)), None)


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
    engine: Engine, folder: Path | None = None, *, min_age: float = MIN_AGE_SECONDS
) -> list[FolderImport]:
    """Import every waiting file of ``folder`` (default ``import_dir()``) and move it out of the way."""
    folder = folder or import_dir()
    folder.mkdir(parents=True, exist_ok=True)  # the drop folder exists from the first run on
    results: list[FolderImport] = []
    for path, kind in pending_files(folder, min_age):
        try:
            report = import_file(engine, kind, path)
        except (*DB_ERRORS, WarehouseUnavailable):
            raise  # the warehouse is down: the file waits for the run's retry (rows are idempotent)
        except ImportFileError as err:
            result = _failed(path, kind, folder, str(err))
        except Exception as err:  # a file no rule foresaw must not block every file after it
            log.exception("%s: the import failed unexpectedly", path)
            result = _failed(path, kind, folder, f"unexpected error {type(err).__name__}: {err}"[:2000])
        else:
            result = FolderImport(path, kind, _move(path, folder / DONE), report=report)
        log.info("%s", result.line())
        results.append(result)
    return results


def _failed(path: Path, kind: str, folder: Path, error: str) -> FolderImport:
    """Move a file that could not be imported to ``failed/``, with ``<name>.report.txt`` beside it saying
    why (what a person opening the folder needs; the task log says it too)."""
    moved = _move(path, folder / FAILED)
    report = moved.with_name(moved.name + ".report.txt")
    report.write_text(
        f"{path.name} ({kind}) was not imported, {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC:\n{error}\n"
        "Fix the file and drop it into the import folder again: rows applied before do not apply twice.\n",
        encoding="utf-8",
    )
    return FolderImport(path, kind, moved, error=error)


def _move(path: Path, target_dir: Path) -> Path:
    """Move ``path`` into ``target_dir`` without overwriting an earlier file of the same name."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    path.replace(target)
    return target
