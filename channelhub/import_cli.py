"""``channelhub import shipments|counts|sales FILE``: import one store/warehouse CSV file now.

Exit codes: 0 every row applied (or was applied before), 1 some rows were rejected (the good ones still
applied; each rejected row is printed as ``FILE:LINE: reason`` on stderr and waits in the exception queue
as ``bad_import_row``), 2 the file cannot be read as that kind or the kind is unknown.
"""

from __future__ import annotations

import argparse
import sys

from canonical.store_files import KINDS


def cmd_import(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import register_config
    from warehouse.store_imports import ImportFileError, import_file

    if args.kind not in KINDS:
        print(
            f"channelhub: unknown import kind {args.kind!r}: expected one of {', '.join(KINDS)}",
            file=sys.stderr,
        )
        return 2
    engine = get_engine()
    register_config(engine, load_config())  # the configured locations and channels exist in the warehouse
    try:
        report = import_file(engine, args.kind, args.file)
    except ImportFileError as err:
        print(f"channelhub: {err}", file=sys.stderr)
        return 2
    for rejected in report.rejected:
        print(rejected, file=sys.stderr)
    print(report.summary_line())
    return 0 if report.ok else 1


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Declare ``import KIND FILE`` on the ``channelhub`` command line."""
    parser = subparsers.add_parser(
        "import",
        help="import a store/warehouse CSV file: shipments | counts | sales (formats: docs/store-imports.md)",
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("file")
    parser.set_defaults(func=cmd_import)
    return parser
