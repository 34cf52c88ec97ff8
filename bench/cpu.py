"""CPU seconds of processes, read from ``/proc`` (Linux): what the hub, Postgres and the sandbox each spend.

A process's CPU is its ``utime + stime``; a server's is its own plus its reaped children's (``cutime +
cstime``: a Postgres backend that exited is counted in the postmaster) plus its live children's.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, text

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces: the fields after it start past the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds of ``pid`` (with its reaped children's when asked); 0.0 once it is gone."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICKS


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def server_cpu(pid: int) -> float:
    """CPU seconds of a server process and every process it started, live or reaped."""
    return process_cpu(pid, reaped_children=True) + sum(process_cpu(child) for child in _children(pid))


def postmaster_pid(engine: Engine) -> int | None:
    """The pid of the Postgres server behind ``engine`` when it runs on this machine, else None."""
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        parent = int(_stat(backend)[1])
    except OSError:  # another machine (or another pid namespace): its CPU cannot be read here
        return None
    return parent
