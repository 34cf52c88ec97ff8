"""No credential in anything the suite produced (issue 6): runs last (file name), and scans

- the transcript of every earlier test (captured stdout, stderr and INFO+ log lines of every phase, failure
  reports; written by ``pytest_runtest_logreport`` in conftest.py), Airflow's task logs included;
- every text the warehouse keeps about problems: exceptions and their actions, push errors and logs,
  reconciliation findings, sync counts;

for the sandboxes' secrets, the tokens they issue, the test webhook's token, and any sensitive
``name=value`` pair that was not redacted.
"""

from __future__ import annotations

import re

from conftest import TRANSCRIPT
from sqlalchemy import text
from test_ops_dags import WEBHOOK_TOKEN

from connectors.errors import REDACTED, SENSITIVE_PARAM_NAMES
from sandbox.shopify import DEFAULT_ACCESS_TOKEN
from sandbox.woocommerce import DEFAULT_CONSUMER_SECRET

KNOWN_SECRETS = (DEFAULT_ACCESS_TOKEN, DEFAULT_CONSUMER_SECRET, WEBHOOK_TOKEN)
# Access tokens the WeChat sandbox issues ("8<n>_" + 43 base64url characters) and Youzan's (32 hex digits),
# wherever they stand next to a name that says what they are.
ISSUED_TOKEN = re.compile(r"\b8\d_[A-Za-z0-9_-]{43}\b")
SENSITIVE_PAIR = re.compile(
    r"(?<![A-Za-z0-9_])(?P<key>" + "|".join(sorted(map(re.escape, SENSITIVE_PARAM_NAMES))) + r")"
    r"(?:=|%3D|\"\s*:\s*\"|'\s*:\s*')(?P<value>[^&\s\"',)]{6,})",
    re.IGNORECASE,
)
WAREHOUSE_TEXTS = """
SELECT 'exceptions#' || id, detail || ' ' || coalesce(note, '') FROM exceptions
UNION ALL SELECT 'exception_actions#' || id, coalesce(note, '') || ' ' || outcome FROM exception_actions
UNION ALL SELECT 'stock_push_log#' || id, detail FROM stock_push_log
UNION ALL SELECT 'shipments#' || id, coalesce(push_error, '') FROM shipments
UNION ALL SELECT 'reconciliation_findings#' || id, detail FROM reconciliation_findings
UNION ALL SELECT 'sync_state#' || channel_id, coalesce(last_counts::text, '') FROM sync_state
"""


def leaks(where: str, body: str) -> list[str]:
    found = [f"{where}: a known secret ({secret[:6]}...)" for secret in KNOWN_SECRETS if secret in body]
    found += [f"{where}: an issued access token {m.group()[:8]}..." for m in ISSUED_TOKEN.finditer(body)]
    found += [
        f"{where}: {m.group('key')}={m.group('value')[:4]}..."
        for m in SENSITIVE_PAIR.finditer(body)
        # A secret value has digits (hex, base64, ...); "session=session" in a traceback is no leak.
        if REDACTED not in m.group("value") and re.search(r"\d", m.group("value"))
    ]
    return found


def test_the_scanner_finds_a_planted_credential():
    planted = f"GET /orders?access_token=80_{'A' * 43} X-Token {DEFAULT_ACCESS_TOKEN} secret=s3cr3tvalue"
    assert len(leaks("planted", planted)) == 4
    assert leaks("clean", f"GET /orders?access_token={REDACTED}&page=2") == []


def test_no_credential_in_any_log_line_or_exception_record(engine):
    transcript = TRANSCRIPT.read_text(encoding="utf-8", errors="replace") if TRANSCRIPT.exists() else ""
    found = []
    for section in transcript.split("\n## "):
        where = section.split("\n", 1)[0][:120]
        found += leaks(f"log [{where}]", section)
    with engine.connect() as conn:
        for where, body in conn.execute(text(WAREHOUSE_TEXTS)):
            found += leaks(where, body)
    assert not found, "credentials leaked:\n" + "\n".join(found[:40])
