"""The API reference (docs/reference/*.md, rendered by mkdocstrings) documents every
public name of the public modules, each object once: a name added to an ``__all__``
without a place in the reference fails here, before the site is built.

A ``::: module.name`` directive documents that object; ``::: module`` documents the
names of its ``members:`` list, none with ``members: false``, and otherwise every name of
its ``__all__`` that its ``filters`` keep."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
MODULES = [
    "tether",
    "tether.asyncio",
    "tether.realtime",
    "tether.broker",
    "tether.asgi",
    "tether.metrics",
    "tether.exceptions",
]
DIRECTIVE = re.compile(r"^::: (?P<ident>[\w.]+)\n(?P<options>(?:[ \t]+.*\n?)*)", re.M)


def _resolve(ident: str) -> tuple[Any, Any]:
    """``(parent module or None, object)`` for a dotted identifier."""
    try:
        return None, importlib.import_module(ident)
    except ImportError:
        module_name, _, name = ident.rpartition(".")
        module = importlib.import_module(module_name)
        return module, getattr(module, name)


def _members(options: str) -> list[str] | None:
    """The names of the ``members:`` option (none for ``false``), None when absent."""
    match = re.search(r"^\s*members:\s*(.*)$", options, re.M)
    if match is None:
        return None
    if match[1].strip() == "false":
        return []
    after = options[match.end() :]
    return re.findall(r"^\s+-\s+(\w+)\s*$", after.split("filters:")[0], re.M)


def _filters(options: str) -> list[tuple[re.Pattern[str], bool]]:
    match = re.search(r"^\s*filters:\s*\n((?:\s+-\s+.*\n?)*)", options, re.M)
    if match is None:
        return [(re.compile("^_"), True)]
    found = re.findall(r"^\s+-\s+\"(.*)\"\s*$", match[1], re.M)
    return [(re.compile(f.removeprefix("!")), f.startswith("!")) for f in found]


def _kept(name: str, filters: list[tuple[re.Pattern[str], bool]]) -> bool:
    keep = True
    for pattern, exclude in filters:
        if pattern.search(name):
            keep = not exclude
    return keep


def documented() -> list[tuple[str, Any]]:
    """``(where, object)`` for everything the reference pages render."""
    found = []
    for page in sorted(REFERENCE.glob("*.md")):
        for match in DIRECTIVE.finditer(page.read_text()):
            ident, options = match["ident"], match["options"]
            where = f"{page.name}: ::: {ident}"
            _, obj = _resolve(ident)
            if not hasattr(obj, "__path__") and not hasattr(obj, "__file__"):
                found.append((where, obj))  # one object
                continue
            members = _members(options)
            if members is None:
                filters = _filters(options)
                members = [n for n in getattr(obj, "__all__", ()) if _kept(n, filters)]
            found.extend((f"{where} ({name})", getattr(obj, name)) for name in members)
    return found


def test_every_public_name_is_in_the_reference() -> None:
    objects = [obj for _, obj in documented()]
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name == "__version__":
                continue
            obj = getattr(module, name)
            if not any(obj is other for other in objects):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in docs/reference/*.md: {', '.join(missing)}"


def test_each_object_is_documented_once() -> None:
    seen: dict[int, str] = {}
    twice = []
    for where, obj in documented():
        if id(obj) in seen:
            twice.append(f"{where} and {seen[id(obj)]}")
        seen[id(obj)] = where
    assert not twice, "documented twice (the site would have two anchors): " + "; ".join(twice)


@pytest.mark.parametrize("page", sorted(p.name for p in REFERENCE.glob("*.md")))
def test_reference_pages_are_in_the_nav(page: str) -> None:
    assert f"reference/{page}" in (ROOT / "mkdocs.yml").read_text()
