"""The live POS feed's documents in the warehouse: each once per (location, the POS's document id).

``apply_document`` applies a parsed document (``canonical.pos_documents``) the first time it is posted: its
lines go through ``store_imports.import_rows``, the files' own rules, keys and exception queue (a refused
line is a ``bad_import_row`` and the other lines apply), then the document and its answer are kept in
``pos_documents``. Posted again with the same body (its canonical JSON's digest), it answers that first result
and changes nothing; with another body it is refused as a ``pos_document_conflict`` (queued with the body: the
first one stands). A per-document advisory lock makes two concurrent posts of one document apply it once.

A document that cannot be applied at all is queued as ``bad_pos_document`` with its raw body
(``queue_bad_document``), under no channel, like a bad file row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import insert

from canonical.pos_documents import BadPosDocument, PosDocument, document_rows
from warehouse import exceptions as queue
from warehouse.models import locations, pos_documents
from warehouse.store_imports import ImportReport, import_rows

BAD_DOCUMENT = "bad_pos_document"
DOCUMENT_CONFLICT = "pos_document_conflict"
RAW_BODY_KEPT = 1_000_000  # characters of a bad body kept in the queue (the feed caps bodies below that)


@dataclass(frozen=True, slots=True)
class DocumentOutcome:
    """``applied``: posted the first time; ``replayed``: posted before with this body (nothing changed);
    ``conflict``: posted before with another body (refused, queued)."""

    status: str
    result: Mapping[str, Any]
    changed_units: Mapping[str, int] = field(default_factory=dict)  # what the lines did to stock, by effect

    @property
    def stock_changed(self) -> bool:
        return any(self.changed_units.values())


def document_digest(body: Mapping[str, Any]) -> str:
    """The body's identity: the digest of its canonical JSON (key order and spacing do not count)."""
    return queue.digest_of(queue.canonical_json(body))


def apply_document(engine: Engine, document: PosDocument) -> DocumentOutcome:
    """Apply ``document`` once; raises ``BadPosDocument`` for a location the warehouse does not know."""
    digest = document_digest(document.body)
    with _document_lock(engine, document.source):
        with engine.connect() as conn:
            location_id = conn.execute(
                select(locations.c.id).where(locations.c.code == document.location)
            ).scalar()
            if location_id is None:
                raise BadPosDocument(f"unknown location {document.location!r}")
            first = conn.execute(
                select(pos_documents.c.digest, pos_documents.c.result, pos_documents.c.received_at).where(
                    pos_documents.c.location_id == location_id,
                    pos_documents.c.document_id == document.document_id,
                )
            ).first()
        if first is not None:
            return _posted_again(engine, document, digest, first.digest, first.result, first.received_at)
        report = import_rows(
            engine, document.kind, document_rows(document), file=document.source, source=document.source
        )
        result = _result(document, report)
        with engine.begin() as conn:
            conn.execute(
                insert(pos_documents).values(
                    location_id=location_id,
                    document_id=document.document_id,
                    type=document.type,
                    digest=digest,
                    status=result["status"],
                    body=dict(document.body),
                    result=result,
                )
            )
    return DocumentOutcome("applied", result, {k: v for k, v in report.units.items() if v})


def queue_bad_document(
    engine: Engine, store: str, reason: str, errors: Sequence[str], body: bytes, *, code: str = BAD_DOCUMENT
) -> int:
    """Keep a refused document (its body as text, whatever it held) in the exception queue; its id."""
    raw = {"store": store, "body": body.decode("utf-8", "backslashreplace")[:RAW_BODY_KEPT]}
    detail = f"pos feed {store}: {reason}" + "".join(f"; {error}" for error in errors)
    with engine.begin() as conn:
        return queue.record_exception(
            conn, channel=None, reason=code, external_id=None, detail=detail, raw=raw
        )


# -- helpers -------------------------------------------------------------------------------------------------


@contextmanager
def _document_lock(engine: Engine, key: str) -> Iterator[None]:
    """One poster of a document at a time (a session advisory lock on its own connection, so the lines'
    transactions commit as they go)."""
    with engine.connect() as conn:
        params = {"key": key}
        conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), params)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), params)
            conn.commit()


def _posted_again(
    engine: Engine,
    document: PosDocument,
    digest: str,
    first_digest: str,
    first_result: Mapping[str, Any],
    first_received_at: datetime,
) -> DocumentOutcome:
    received = first_received_at.isoformat()
    if digest == first_digest:
        return DocumentOutcome("replayed", {**first_result, "replayed": True, "first_received_at": received})
    reason = (
        f"document {document.document_id} of {document.location} was posted at {received} with another "
        "body; the first one stands: post a correction as a new document"
    )
    body = queue.canonical_json(dict(document.body)).encode("utf-8")
    exception_id = queue_bad_document(engine, document.location, reason, (), body, code=DOCUMENT_CONFLICT)
    return DocumentOutcome(
        "conflict", {"error": DOCUMENT_CONFLICT, "reason": reason, "exception_id": exception_id}
    )


def _result(document: PosDocument, report: ImportReport) -> dict[str, Any]:
    reasons = {rejected.line: rejected.reason for rejected in report.rejected}
    lines = []
    for line in document.lines:
        entry: dict[str, Any] = {
            "line_no": line.line_no,
            "sku": line.sku,
            "outcome": report.outcomes.get(line.line_no, "rejected"),
        }
        if line.line_no in reasons:
            entry["reason"] = reasons[line.line_no]
        lines.append(entry)
    rejected = sum(1 for entry in lines if entry["outcome"] == "rejected")
    status = "applied" if not rejected else "rejected" if rejected == len(lines) else "partial"
    return {
        "document_id": document.document_id,
        "location": document.location,
        "type": document.type,
        "status": status,
        "lines": lines,
        "units": {k: v for k, v in sorted(report.units.items()) if v},
    }
