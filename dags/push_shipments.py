"""One DAG per channel, ``push_shipments__<channel>``: send the warehouse's shipment tracking to the channel.

The work is ``channelhub.shipment_push.push_shipments``: pending shipments are pushed once each; "already
shipped with this tracking" counts as done; a refusal opens a ``push_failed`` exception.
"""

from __future__ import annotations

from airflow.timetables.trigger import DeltaTriggerTimetable

from channelhub.dag_factory import channel_dag, enabled_channels

DOC = """
### Shipment push for channel `{code}` ({platform})

Pushes each shipment the warehouse reported (store import) with its carrier and tracking number, per line
and quantity. A platform's refusal (shipping more than ordered, an unknown carrier, a closed order) opens a
`push_failed` exception with the platform's words; transient failures are retried by Airflow.
"""

for channel in enabled_channels():
    globals()[f"push_shipments__{channel.code}"] = channel_dag(
        channel,
        kind="push_shipments",
        description=f"Push shipment tracking to {channel.code}",
        doc_md=DOC.format(code=channel.code, platform=channel.platform),
        schedule=DeltaTriggerTimetable(channel.schedule),
    )
