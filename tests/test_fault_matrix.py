"""Issue 6, the fault matrix at the size of the suite (``python -m reliability.fault_matrix``: every cell).

Which cells run is derived from the registry, never listed per platform: every platform meets expired tokens
(or, with static credentials, a revoked and restored one), and the other modes are dealt round the platforms
they apply to so that each mode runs on at least two of them (webhook deliveries: the platforms that push).
Each cell's sync, faults and all, must land exactly what a clean reference sync lands."""

from __future__ import annotations

from reliability.fault_matrix import EXPIRING_TOKENS, MODES, PLATFORMS, run_matrix, runs_on

ALWAYS = "expired tokens"


def suite_cells() -> dict[str, tuple[str, ...]]:
    """Mode number m runs on the i-th platform it applies to when (m + i) % stride == 0: each mode on >= 2
    of them (webhook deliveries apply only to the platforms that push over HTTP)."""
    cells: dict[str, list[str]] = {platform: [] for platform in PLATFORMS}
    for m, (name, mode) in enumerate(MODES.items()):
        eligible = [platform for platform in PLATFORMS if runs_on(mode, platform)]
        stride = max(1, len(eligible) // 2)
        for i, platform in enumerate(eligible):
            if name == ALWAYS or (m + i) % stride == 0:
                cells[platform].append(name)
    return {platform: tuple(modes) for platform, modes in cells.items()}


CELLS = suite_cells()


def test_the_suite_cells_cover_every_mode_twice_and_tokens_everywhere():
    runs = {mode: sum(mode in modes for modes in CELLS.values()) for mode in MODES}
    assert all(count >= min(2, len(PLATFORMS)) for count in runs.values()), runs
    assert runs[ALWAYS] == len(PLATFORMS)


def test_every_fault_mode_lands_exactly_what_a_clean_sync_lands(fresh_database_url):
    printed: list[str] = []
    cells = run_matrix(fresh_database_url, only=CELLS, report=printed.append)
    matrix = "\n".join(printed)
    print(matrix)
    wanted = [(platform, mode) for platform in PLATFORMS for mode in MODES if mode in CELLS[platform]]
    assert [(cell.platform, cell.mode) for cell in cells] == wanted
    assert all(cell.ok for cell in cells), matrix
    assert {c.mode for c in cells} == set(MODES) and {c.platform for c in cells} == set(PLATFORMS)

    header, *rows = matrix.splitlines()
    assert header.split() == ["fault", "mode", *PLATFORMS]
    assert [row[: len(mode)] for row, mode in zip(rows, MODES, strict=True)] == list(MODES)
    for mode, row in zip(MODES, rows, strict=True):  # a cell not run shows "-", one run shows its verdict
        not_run = sum(mode not in modes for modes in CELLS.values())
        assert row[len(mode) :].split().count("-") == not_run, row
    tokens_row = rows[list(MODES).index(ALWAYS)]
    static = len(PLATFORMS) - len(EXPIRING_TOKENS)
    assert tokens_row.count("static key: revoked→restored") == static  # refused, then restored
    assert tokens_row.count("ok (2 runs") == static
    assert tokens_row.count("tokens fetched") == len(EXPIRING_TOKENS)
    assert "FAIL" not in matrix and all(cell.detail.endswith("orders exact") for cell in cells)
