"""Two DAGs per channel: ``reconcile_light__<channel>`` hourly over the last hour and
``reconcile_deep__<channel>`` daily over the last two days.

The work is ``channelhub.reconcile.reconcile_channel``: orders, shipments, ledger and stock compared with the
channel, the safe repairs made, the rest left in the exception queue; findings are kept in the warehouse
(``reconciliation_findings``, shown on the ChannelHub page) and summarised in the task log.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

from channelhub.dag_factory import channel_dag, enabled_channels

DOC = """
### {depth} reconciliation of channel `{code}` ({platform})

Window: {window}. Checks, in order:

1. **orders** on the channel vs the warehouse: missing or older in the warehouse -> re-ingested;
   same version but other money or status -> `amount_mismatch` / `status_mismatch` exception for a person;
2. **shipments** recorded as pushed: offered again; the connector answers "already there" or re-pushes a
   lost one;
3. **ledger**: every stock level equals its ledger sums, else it is set to them;
4. **stock**: the channel's listed quantity vs what the hub last pushed and should push -> pushed again.

The task log ends with a summary (checked / found / repaired / left for a person); every finding is kept in
`reconciliation_findings` and shown on the ChannelHub page.
"""

KINDS = (
    ("reconcile_light", "Light", DeltaDataIntervalTimetable(timedelta(hours=1)), "the run's hour"),
    (
        "reconcile_deep",
        "Deep",
        CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),
        "the two days before the run",
    ),
)

for channel in enabled_channels():
    for kind, depth, schedule, window in KINDS:
        globals()[f"{kind}__{channel.code}"] = channel_dag(
            channel,
            kind=kind,
            description=f"{depth} reconciliation of {channel.code} with the warehouse",
            doc_md=DOC.format(depth=depth, code=channel.code, platform=channel.platform, window=window),
            schedule=schedule,
        )
