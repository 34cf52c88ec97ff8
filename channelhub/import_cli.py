"""``channelhub import KIND FILE [--encoding E] [--headers-from SOURCE] [--sheet NAME]``: import one
store/warehouse file (CSV or .xlsx) now.

``--headers-from SOURCE`` reads the file as the drop folder ``SOURCE`` of ``import_sources`` does (its header
names, encoding, sheet and time zone); ``--encoding``, ``--sheet`` and ``--timezone`` override. Without
either the encoding is ``auto``.

Exit codes: 0 every row applied (or was applied before), 1 some rows were rejected (the good ones still
applied; each rejected row is printed as ``FILE:LINE: reason`` on stderr and waits in the exception queue
as ``bad_import_row``), 2 the file cannot be read as that kind or the kind is unknown.
"""

from __future__ import annotations

import argparse
import sys

from canonical.store_encoding import ENCODINGS
from canonical.store_files import KINDS


def cmd_import(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import register_config
    from warehouse.store_imports import FileOptions, ImportFileError, import_file

    if args.kind not in KINDS:
        print(
            f"channelhub: unknown import kind {args.kind!r}: expected one of {', '.join(KINDS)}",
            file=sys.stderr,
        )
        return 2
    config = load_config()
    options = FileOptions()
    if args.headers_from:
        try:
            options = config.import_source(args.headers_from).options
        except KeyError as err:
            print(f"channelhub: {err.args[0]}", file=sys.stderr)
            return 2
    options = FileOptions(
        encoding=args.encoding or options.encoding,
        headers=options.headers,
        sheet=args.sheet or options.sheet,
        timezone=args.timezone or options.timezone,
    )
    engine = get_engine()
    register_config(engine, config)  # the configured locations and channels exist in the warehouse
    try:
        report = import_file(engine, args.kind, args.file, options)
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
        help="import a store/warehouse file (CSV or .xlsx) of one kind (formats: docs/store-imports.md)",
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("file")
    parser.add_argument(
        "--encoding",
        choices=ENCODINGS,
        help="of a CSV file (default: the --headers-from source's, else auto: detected only when certain)",
    )
    parser.add_argument(
        "--headers-from",
        metavar="SOURCE",
        help="read the file as this drop folder of import_sources does (its header names, encoding, sheet)",
    )
    parser.add_argument("--sheet", help="the sheet of an .xlsx workbook (default: the first)")
    parser.add_argument(
        "--timezone", help="IANA zone of times without an offset, e.g. Asia/Shanghai (default: UTC)"
    )
    parser.set_defaults(func=cmd_import)
    return parser
