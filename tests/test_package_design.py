"""House rules that keep the layers honest (see shared/DESIGN.md)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import tether

SRC = Path(tether.__file__).parent
FORBIDDEN_IN_PROTOCOL = {"asyncio", "socket", "ssl", "time", "threading", "redis", "selectors"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_layer_does_no_io() -> None:
    files = sorted((SRC / "protocol").glob("*.py"))
    assert files
    for path in files:
        bad = _imports(path) & FORBIDDEN_IN_PROTOCOL
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_wire_formats_of_engine_and_realtime_are_sans_io() -> None:
    for path in (SRC / "engine" / "packets.py", SRC / "realtime" / "packets.py"):
        bad = _imports(path) & FORBIDDEN_IN_PROTOCOL
        assert not bad, f"{path} imports {sorted(bad)}"


def test_layers_only_use_layers_below() -> None:
    order = ["protocol", "asyncio", "broker", "engine", "realtime"]
    for rank, layer in enumerate(order):
        above = set(order[rank + 1 :])
        for path in (SRC / layer).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                    top = node.module.split(".")[0]
                    assert top not in above, f"{layer}/{path.name} imports {top}"


def test_every_public_module_declares_and_honours_all() -> None:
    for info in pkgutil.walk_packages([str(SRC)], "tether."):
        name = info.name
        if name.split(".")[-1].startswith("_") or name.startswith("tether.demo"):
            continue
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        for attr in exported:
            assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


def test_top_level_api() -> None:
    for name in ("serve", "connect", "broadcast", "WebSocket", "ConnectionClosed", "run"):
        assert name in tether.__all__
    assert issubclass(tether.OpenTimeout, TimeoutError)
    assert issubclass(tether.ConnectionClosedOK, tether.TetherError)


def test_every_exception_lives_in_the_one_tree() -> None:
    import tether.exceptions as exceptions

    names: dict[str, str] = {}
    for info in pkgutil.walk_packages([str(SRC)], "tether."):
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if not (isinstance(value, type) and issubclass(value, BaseException)):
                continue
            if value.__module__ != info.name or attr.startswith("_"):
                continue
            assert info.name == "tether.exceptions", f"{info.name}.{attr} is outside exceptions"
    for attr in exceptions.__all__:
        cls = getattr(exceptions, attr)
        assert issubclass(cls, exceptions.TetherError), attr
        assert attr not in names, f"two exceptions named {attr}"
        names[attr] = cls.__module__
        assert attr in (exceptions.__doc__ or ""), f"{attr} is not drawn in the docstring"


def test_optional_layers_are_imported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tether\n"
        "assert 'tether.realtime' not in sys.modules\n"
        "assert tether.realtime.Hub.__name__ == 'Hub'\n"
        "assert tether.engine.EngineServer and tether.broker.MemoryBroker\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
