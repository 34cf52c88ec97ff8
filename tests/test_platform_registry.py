"""The registry is the one list of platforms: each package under platforms/ is found, is complete, and no
code anywhere else keeps a list of platform names of its own (the issue: six lists, nothing checking)."""

from __future__ import annotations

import ast
import json
from importlib import import_module
from pathlib import Path

import pytest

from channelhub.config import load_config, yaml_schema
from channelhub.platforms import PLATFORMS
from platforms.registry import DECLARATIONS, PLATFORM_NAMES, package_file
from reliability.fault_matrix import PLATFORMS as MATRIX_PLATFORMS
from sandbox.server import PLATFORMS as SANDBOX_PLATFORMS

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = (
    "canonical",
    "channelhub",
    "connectors",
    "mappings",
    "warehouse",
    "sandbox",
    "reliability",
    "platforms",
    "plugins",
    "dags",
    "bench",
)


def test_every_list_of_platforms_is_the_registry() -> None:
    assert tuple(sorted(path.parent.name for path in ROOT.glob("platforms/*/__init__.py"))) == PLATFORM_NAMES
    assert tuple(PLATFORMS) == PLATFORM_NAMES
    assert SANDBOX_PLATFORMS == PLATFORM_NAMES
    assert MATRIX_PLATFORMS == PLATFORM_NAMES
    channel = yaml_schema()["properties"]["channels"]["items"]["properties"]["platform"]
    assert channel["enum"] == list(PLATFORM_NAMES)
    # The demo runs one channel of each platform.
    assert sorted({c.platform for c in load_config().channels}) == sorted(PLATFORM_NAMES)


@pytest.mark.parametrize("name", PLATFORM_NAMES)
def test_a_platform_package_is_complete(name: str) -> None:
    declared = DECLARATIONS[name]
    json.loads(package_file(name, declared.payload_schema).read_text())
    mapping = import_module(f"platforms.{name}.{declared.mapping_module}")
    for attribute in ("map_order", "unwrap", "PERSONAL_DATA"):
        assert hasattr(mapping, attribute), f"platforms/{name}/mapping.py lacks {attribute}"
    module, function = declared.connector_factory.split(":")
    assert callable(getattr(import_module(f"platforms.{name}.{module}"), function))
    sandbox = import_module(f"sandbox.{name}")
    assert callable(sandbox.create_app)


def _literal_platform_lists(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Tuples, lists, sets and dict keys in the code that name two or more platforms."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [key for key in node.keys if key is not None]
        else:
            continue
        names = [i.value for i in items if isinstance(i, ast.Constant) and i.value in DECLARATIONS]
        if len(names) >= 2:
            found.append((node.lineno, names))
    return found


def test_no_code_keeps_its_own_list_of_platforms() -> None:
    offenders = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, names in _literal_platform_lists(ast.parse(path.read_text(), str(path))):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {names}")
    assert not offenders, "derive these from platforms.registry instead:\n" + "\n".join(offenders)
