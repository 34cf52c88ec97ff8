"""Every platform the hub serves, found by looking: each subpackage of ``platforms`` is one.

This is the one list of platforms; everything else derives from it (``channelhub.platforms`` for the
runtime registry, the config schema's enum, sandboxes, demo, reliability harnesses), and
tests/test_platform_registry.py checks that nothing names a platform on its own. Importing it imports only
the packages' ``__init__`` (declarations), never a connector or a mapping.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module
from pathlib import Path

from platforms.declaration import PlatformDeclaration

PACKAGE_DIR = Path(__file__).resolve().parent


def _discover() -> dict[str, PlatformDeclaration]:
    found: dict[str, PlatformDeclaration] = {}
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        if not info.ispkg:
            continue
        declaration = getattr(import_module(f"platforms.{info.name}"), "DECLARATION", None)
        if not isinstance(declaration, PlatformDeclaration) or declaration.name != info.name:
            raise ImportError(
                f"platforms/{info.name}/__init__.py must declare DECLARATION named {info.name!r}"
            )
        found[info.name] = declaration
    return dict(sorted(found.items()))


DECLARATIONS: dict[str, PlatformDeclaration] = _discover()
PLATFORM_NAMES: tuple[str, ...] = tuple(DECLARATIONS)


def declaration(name: str) -> PlatformDeclaration:
    try:
        return DECLARATIONS[name]
    except KeyError:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(PLATFORM_NAMES)}") from None


def package_file(name: str, file_name: str) -> Path:
    """A file of a platform's package (its payload schema, its notes)."""
    return PACKAGE_DIR / name / file_name
