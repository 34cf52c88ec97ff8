"""Issue 6, the fault matrix at the size of the suite: every fault mode on Shopify and WooCommerce, and on
WeChat Channels, Youzan and Douyin the modes their own paging and tokens meet
(``python -m reliability.fault_matrix`` runs every cell). Each cell's sync, faults and all, must land
exactly what a clean reference sync lands."""

from __future__ import annotations

from reliability.fault_matrix import EXPIRING_TOKENS, MODES, PLATFORMS, run_matrix

CELLS = {
    "douyin": ("duplicated pages", "updates between pages", "clock skew +4 min", "expired tokens"),
    "shopify": tuple(MODES),
    "woocommerce": tuple(MODES),
    "wechat_channels": (
        "duplicated pages",
        "reordered pages",
        "updates inside the window",
        "clock skew +4 min",
        "expired tokens",
    ),
    "youzan": (
        "timeouts",
        "duplicated pages",
        "updates between pages",
        "updates inside the window",
        "clock skew -4 min",
        "expired tokens",
    ),
}


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
    by_mode = dict(zip(MODES, rows, strict=True))
    assert by_mode["expired tokens"].count("ok (2 runs") == 2  # refused, then restored
    assert by_mode["expired tokens"].count("static key: revoked→restored") == 2
    fetching = [p for p in PLATFORMS if "expired tokens" in CELLS[p] and p in EXPIRING_TOKENS]
    assert by_mode["expired tokens"].count("tokens fetched") == len(fetching)
    # Cells not run show "-": only the platforms naming a mode ran it.
    assert {c.platform for c in cells if c.mode == "429 storm"} == {
        p for p in PLATFORMS if "429 storm" in CELLS[p]
    }
    assert by_mode["429 storm"].count("-") == sum("429 storm" not in CELLS[p] for p in PLATFORMS)
    assert "FAIL" not in matrix and all(cell.detail.endswith("orders exact") for cell in cells)
