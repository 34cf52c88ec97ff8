"""One DAG per channel, ``push_stock__<channel>``: tell the channel what each listing may sell.

It runs on the channel's schedule and as soon as stock may have changed (the ``channelhub://warehouse/stock``
Asset that the order sync and store import DAGs update). The work is ``channelhub.stock_push.push_stock``:
only listings whose sellable quantity changed since the last push are sent, so frequent runs are cheap.
"""

from __future__ import annotations

from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import DeltaTriggerTimetable

from channelhub.assets import WAREHOUSE_STOCK
from channelhub.dag_factory import channel_dag, enabled_channels

DOC = """
### Stock push for channel `{code}` ({platform})

Computes each listing's sellable quantity (the channel's stock policy over the warehouse's free stock,
bundles from their components) and pushes the listings that changed since the last push. Every attempt is
in `stock_push_log`; a refusal by the platform opens a `push_failed` exception; transient failures fail the
run after the other listings are pushed, so Airflow retries it.
"""

for channel in enabled_channels():
    globals()[f"push_stock__{channel.code}"] = channel_dag(
        channel,
        kind="push_stock",
        description=f"Push sellable stock to {channel.code}",
        doc_md=DOC.format(code=channel.code, platform=channel.platform),
        schedule=AssetOrTimeSchedule(
            timetable=DeltaTriggerTimetable(channel.schedule), assets=[WAREHOUSE_STOCK]
        ),
    )
