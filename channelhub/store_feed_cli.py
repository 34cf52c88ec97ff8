"""``channelhub stores serve``: the live POS feed (``channelhub.store_feed``, docs/pos-feed.md).

- ``serve [--host 127.0.0.1] [--port $HUB_STORE_FEED_PORT or 8791] [--max-bytes N]``: store systems post
  documents to ``/stores/v1/documents``; each store's key is the password of its Airflow connection
  ``pos_<store code>``; stock asset events go through the Airflow connection ``channelhub_airflow_api``.
"""

from __future__ import annotations

import argparse
import os

from channelhub.store_feed import DEFAULT_PORT, DOCUMENTS_PATH, MAX_DOCUMENT_BYTES


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from channelhub.db import get_engine
    from channelhub.store_feed import airflow_stock_changed, create_feed

    app = create_feed(get_engine(), stock_changed=airflow_stock_changed(), max_bytes=args.max_bytes)
    print(f"POS feed on http://{args.host}:{args.port}{DOCUMENTS_PATH}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``stores ...`` on the ``channelhub`` command line."""
    parser = subparsers.add_parser("stores", help="the stores' live POS feed")
    sub = parser.add_subparsers(dest="stores_command", required=True)

    p = sub.add_parser("serve", help="run the POS feed (uvicorn): stores post sales, returns and counts")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("HUB_STORE_FEED_PORT") or DEFAULT_PORT),
        help=f"default $HUB_STORE_FEED_PORT or {DEFAULT_PORT}",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_DOCUMENT_BYTES,
        help=f"the largest document accepted (default {MAX_DOCUMENT_BYTES}; larger: 413)",
    )
    p.set_defaults(func=cmd_serve)
