"""``store_import``: every few minutes, import the CSV files stores and the warehouse dropped in the folder.

The DAG only decides *when*; the work is ``channelhub.import_folder.import_folder`` (which calls the same
``warehouse.store_imports.import_file`` as ``channelhub import``). Formats: docs/store-imports.md.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task
from airflow.timetables.interval import DeltaDataIntervalTimetable

from channelhub.alerts import HubNotifier
from channelhub.assets import WAREHOUSE_STOCK

EVERY = timedelta(minutes=float(os.environ.get("HUB_IMPORT_EVERY_MINUTES", "5")))

DOC = """
### Store and warehouse imports

Each run takes the files waiting in `HUB_IMPORT_DIR` (default `.state/imports`) and in each drop folder
under it configured in `import_sources` (config/channels.yaml: encoding, header names, sheet per folder):
`shipments*`/`发货*`, `counts*`/`盘点*` (stock counts) and `sales*`/`销售*` (store POS sales), each `.csv`
(UTF-8, UTF-8 with BOM or GB18030) or `.xlsx`, oldest first, and applies them to the warehouse. Every
row is idempotent (a file imported twice changes nothing). A bad row is queued as `bad_import_row` (detail
`file:line: reason`) while the rest of the file applies; the file then moves to `done/` of its folder, or
to `failed/` when it cannot be read at all (encoding, header). A database outage fails the run and leaves
the files for the retry.

* The task's log and return value (XCom) hold each file's report.
* Returns and exchanges (退换货): `returns*`/`退货*`/`退换货*`/`销售退货*` (docs/returns.md).
* The same import by hand: `channelhub import KIND FILE [--encoding E] [--headers-from FOLDER]`.
* Transfers and purchase receipts: `transfers*`/`调拨*`, `transfer_receipts*`/`调拨收货*`,
  `expected_deliveries*`/`采购单*`, `receipts*`/`采购入库*` (docs/transfers-and-receipts.md); by hand also
  `channelhub transfer|receipt ...`.
"""


@dag(
    dag_id="store_import",
    description="Import shipments, stock counts and store sales dropped as CSV or .xlsx files",
    doc_md=DOC,
    schedule=DeltaDataIntervalTimetable(EVERY),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["channelhub", "import"],
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [HubNotifier()],
    },
)
def store_import() -> None:
    # Counts, sales, returns, transfers and receipts change what channels may sell: the stock pushes
    # run right after.
    @task(task_id="import_files", outlets=[WAREHOUSE_STOCK])
    def import_files() -> dict:
        # Imported here so that parsing the DAG file stays light.
        from channelhub.config import load_config
        from channelhub.db import get_engine
        from channelhub.import_folder import import_dir, import_folder
        from channelhub.sync import register_config

        engine = get_engine()
        config = load_config()
        register_config(engine, config)
        results = import_folder(engine, import_dir(), sources=config.import_sources)
        for result in results:
            print(result.line())  # readable in the task log
        rejected = sum(len(r.report.rejected) for r in results if r.report)
        print(f"{import_dir()}: {len(results)} file(s) imported, {rejected} row(s) rejected")
        return {"folder": str(import_dir()), "files": [r.as_dict() for r in results]}

    import_files()


store_import()
