"""The import layers hold (pyproject.toml's [tool.importlinter] contracts, the same check as `make lint`):
the hub over the platforms over the wire / fields / warehouse over the canonical order; a mapping never
imports a connector; the simulators never import the hub; the registry imports no platform's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
