"""A Griffe extension for the API reference: the docstrings of tether are Google style
with a few reStructuredText habits, which this turns into Markdown before mkdocstrings
renders them:

- roles (``:class:`~tether.realtime.Hub```, ``:meth:`drain```, ``:mod:`.socket```)
  become cross-references, resolved from the docstring's own scope; one whose target is
  not on the site renders as plain code, without a warning;
- a paragraph ending in ``::`` introduces the indented block after it (a code block in
  Markdown too): the ``::`` becomes ``:``, or goes when it stands alone.

Only the text handed to the renderer changes; the sources stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|meth|func|attr|mod|data|exc|obj):`([^`]+)`")
FUNCTION_ROLES = {"meth", "func"}


def _target(text: str) -> tuple[str, str]:
    """``(title, target)`` of a role's text: ``title <target>``, ``~a.b.c`` or ``a.b.c``."""
    explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", text)
    if explicit:
        return explicit[1], explicit[2]
    if text.startswith("~"):
        target = text[1:]
        return target.rsplit(".", 1)[-1], target
    return text.lstrip("."), text


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as written in ``obj``'s docstring, or None."""
    if target.startswith("."):
        module = obj.module
        candidates = [module.path + target]
        if module.parent is not None:
            candidates.append(module.parent.path + target)
        if obj.is_class or (obj.parent is not None and obj.parent.is_class):
            cls = obj if obj.is_class else obj.parent
            assert cls is not None
            candidates.insert(0, cls.path + target)
        for candidate in candidates:
            if _exists(obj, candidate):
                return candidate
        return None
    head, _, rest = target.partition(".")
    if head == "tether":
        return target
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, KeyError, AttributeError):
        return None
    return f"{resolved}.{rest}" if rest else resolved


def _exists(obj: griffe.Object, path: str) -> bool:
    try:
        obj.modules_collection.get_member(path)
    except (KeyError, ValueError, AttributeError):
        return False
    return True


def _convert(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match[str]) -> str:
        kind, body = match[1], match[2]
        title, target = _target(body)
        if kind in FUNCTION_ROLES and not title.endswith(")"):
            title += "()"
        path = _resolve(obj, target) or target.lstrip("~.")
        return f'<autoref identifier="{path}" optional>`{title}`</autoref>'

    text = ROLE.sub(role, text)
    # reStructuredText's literal-block marker.
    text = re.sub(r"(?m)^(\s*)::\s*$", "", text)
    text = re.sub(r"(?m)(\S)::\s*$", r"\1:", text)
    return text


class RstToMarkdown(griffe.Extension):
    """Rewrite the reStructuredText habits of every docstring of the package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _convert(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
