"""Issue 6, crash injection at the size of the suite: a few seeded trials of ``reliability.crash`` (the full
50-trial run is ``make reliability``). Jobs killed with SIGKILL mid-run and run again leave the warehouse and
every sandbox exactly as an uninterrupted run does."""

from __future__ import annotations

from reliability.crash import run_trials


def test_jobs_killed_mid_run_and_rerun_leave_the_same_state_as_an_uninterrupted_run(pg_server_url):
    lines: list[str] = []
    results = run_trials(runs=2, seed=4, server_url=pg_server_url, report=lines.append)
    print("\n".join(lines))
    assert all(result.ok for result in results), "\n".join(lines)
    kills = [kill for result in results for kill in result.killed]
    assert len(kills) >= 3, "the seeds must land kills"
    assert any(not progress.startswith("0 ") for _, _, progress in kills), "some kill must land mid-work"
