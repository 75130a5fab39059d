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


# The layers, lowest first; each may use those before it, except where NOT_BELOW says.
LAYERS = ["protocol", "asyncio", "broker", "engine", "realtime"]
# Lower layers that a layer must not use all the same: Engine.IO sessions know nothing of
# fan-out between processes (the realtime layer talks to the broker, the engine never).
NOT_BELOW = {"engine": {"broker"}}
# Modules every layer may use.
SHARED = {"exceptions", "logs", "metrics"}
# The compiled twin of protocol code (masking): part of the protocol layer.
PROTOCOL_TWINS = {"_speedups"}
# The top-level modules: applications of the layers, which no layer imports.
TOP_LEVEL = {"__init__", "asgi", "cli", "cli_connect", "cli_serve", "demo"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _tether_imports(path: Path, *, eager_only: bool = False) -> list[tuple[int, str]]:
    """The ``tether.*`` modules (or package attributes) a file imports, relative imports
    resolved, as ``(line, absolute name)``; ``eager_only``: those run at import time (not
    inside a function, where a lazy import lives)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _imports_in(path.read_text(), package, eager_only=eager_only)


def _imports_in(source: str, package: str, *, eager_only: bool) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    if eager_only:
        nodes: list[ast.stmt] = []
        pending = list(tree.body)
        while pending:
            node = pending.pop()
            nodes.append(node)
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                pending.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
        walked: list[ast.AST] = list(nodes)
    else:
        walked = list(ast.walk(tree))
    found: list[tuple[int, str]] = []
    for node in walked:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tether"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "tether":
                continue
            if node.module is None or base == "tether":
                # ``from .. import exceptions``: the names may be submodules.
                found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _layer(name: str) -> str:
    """The layer or top-level module an absolute ``tether.*`` name belongs to."""
    parts = name.split(".")
    if len(parts) == 1:
        return "__init__"
    head = parts[1]
    if head in PROTOCOL_TWINS:
        return "protocol"
    if head in LAYERS or head in SHARED or head in TOP_LEVEL:
        return head
    return "__init__"  # an attribute of the package itself (``from tether import run``)


def test_import_reader_resolves_relative_and_absolute_imports() -> None:
    source = (
        "import os, tether.realtime\n"
        "from tether.broker import MemoryBroker\n"
        "from ..realtime.hub import Hub\n"
        "from . import packets\n"
        "from .. import exceptions\n"
        "if True:\n"
        "    from tether import run\n"
        "def later():\n"
        "    from ..asgi import ASGIApp\n"
    )
    every = [name for _, name in _imports_in(source, "tether.engine", eager_only=False)]
    assert every == [
        "tether.realtime",
        "tether.broker",
        "tether.realtime.hub",
        "tether.engine.packets",
        "tether.exceptions",
        "tether.run",
        "tether.asgi",
    ]
    eager = {name for _, name in _imports_in(source, "tether.engine", eager_only=True)}
    assert eager == set(every) - {"tether.asgi"}
    layers = [_layer(name) for name in every]
    assert layers == ["realtime", "broker", "realtime", "engine", "exceptions", "__init__", "asgi"]
    assert _layer("tether._speedups") == "protocol"


def test_layers_only_use_layers_below() -> None:
    for rank, layer in enumerate(LAYERS):
        forbidden = set(LAYERS[rank + 1 :]) | NOT_BELOW.get(layer, set()) | TOP_LEVEL
        files = sorted((SRC / layer).rglob("*.py"))
        assert files, layer
        for path in files:
            for line, name in _tether_imports(path):
                target = _layer(name)
                assert target not in forbidden, (
                    f"{path.relative_to(SRC)}:{line} imports {name} ({target})"
                )


def test_engine_never_imports_broker_or_realtime() -> None:
    for path in sorted((SRC / "engine").rglob("*.py")):
        for line, name in _tether_imports(path):
            assert _layer(name) not in {"broker", "realtime"}, f"engine/{path.name}:{line} {name}"


def test_top_level_modules_use_only_tether_layers() -> None:
    # The command line and asgi.py are applications of the layers: any layer goes, nothing
    # unknown.
    known = set(LAYERS) | SHARED | TOP_LEVEL
    for filename in ("cli.py", "cli_connect.py", "asgi.py"):
        for line, name in _tether_imports(SRC / filename):
            assert _layer(name) in known, f"{filename}:{line} imports {name}"


def test_package_init_imports_only_the_plain_websocket_layers_eagerly() -> None:
    # A plain WebSocket user pays for protocol + asyncio only: the optional layers come
    # through __getattr__ (checked at run time by test_optional_layers_are_imported_lazily).
    allowed = {"protocol", "asyncio", "exceptions"}
    eager = _tether_imports(SRC / "__init__.py", eager_only=True)
    assert eager, "the import reader found nothing in tether/__init__.py"
    for line, name in eager:
        assert _layer(name) in allowed, f"__init__.py:{line} imports {name} eagerly"


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
