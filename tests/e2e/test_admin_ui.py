"""The official Socket.IO Admin UI (``@socket.io/admin-ui``) shows an instrumented hub.

A hub with ``hub.instrument(auth=...)`` serves on 127.0.0.1 with live clients: tether's
Python client on both transports and the official Node ``socket.io-client`` on a dynamic
namespace. The dashboard's own static build (``@socket.io/admin-ui/ui/dist`` from
``tests/node/node_modules``) is served from another loopback port, so it is a
cross-origin client as in production, and opened in Debian's headless Chromium, driven
by ``playwright-core``: it logs in through its connection modal (a wrong password
first), and its DOM must show the right clients, servers, namespaces, sockets, rooms and
events; then its own "disconnect" button disconnects a client. Every request the page
makes outside 127.0.0.1 (its web fonts and icons live on CDNs) is aborted.

The screenshot of the dashboard is written to the test's tmp directory and copied to
``/tmp/tether-admin-ui.png`` (both paths are printed: ``pytest -s`` or ``-rA``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tether.realtime import Client, Hub

if TYPE_CHECKING:
    from tests.conftest import Node, NodeProcess

HOST = "127.0.0.1"
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
UI_DIST = NODE_DIR / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
SCREENSHOT = Path("/tmp/tether-admin-ui.png")
USER, PASSWORD = "admin", "correct horse"
BROWSER_TIMEOUT = 30.0

# The browser side, written next to the test's files and run with the node_modules of
# tests/node. It prints one JSON line: what it saw, step by step.
DRIVER = r"""
'use strict';
const { chromium } = require('playwright-core');
const cfg = JSON.parse(process.argv[2]);
const out = { ok: false, steps: [], error: null, blocked: [], pageErrors: [], seen: {},
              screenshots: [] };
let done = false;
function finish(code) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}
setTimeout(() => { out.error = 'watchdog'; finish(1); }, cfg.timeout + 10000).unref();

// In the page: every data table row as its cells' text.
const ROWS = () => [...document.querySelectorAll('.v-data-table tbody tr')]
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.innerText.trim()));
// In the page: the dashboard cards by title.
const CARDS = () => {
  const cards = {};
  for (const card of document.querySelectorAll('.v-card')) {
    const title = card.querySelector('.v-card__title');
    if (!title) continue;
    const name = title.innerText.trim();
    const counts = {};
    for (const tr of card.querySelectorAll('tbody tr')) {
      const cells = [...tr.querySelectorAll('td')];
      if (!cells.length) continue;
      const h2 = tr.querySelector('h2');
      // textContent: the chips' labels are upper-cased by CSS only.
      const key = cells[0].textContent.trim();
      counts[key] = h2 ? Number(h2.innerText.trim()) : Number(cells[1].innerText.trim());
    }
    cards[name] = counts;
  }
  return cards;
};

async function main() {
  const browser = await chromium.launch({
    executablePath: cfg.executable, headless: true, timeout: cfg.timeout,
    args: ['--headless', '--no-sandbox', '--disable-background-networking',
           '--disable-component-update', '--no-first-run', '--disable-gpu',
           '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(cfg.timeout);
  page.on('pageerror', (err) => out.pageErrors.push(String(err && err.message || err)));
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    out.blocked.push(url.origin);
    return route.abort();
  });
  const step = (name) => out.steps.push(name);
  const shot = async (name) => {
    const path = `${cfg.shots}/${name}.png`;
    await page.screenshot({ path, fullPage: true });
    out.screenshots.push(path);
  };
  // Wait until check(seen) holds for what read() finds in the page; keep the last read.
  const until = async (name, read, check, arg) => {
    const deadline = Date.now() + cfg.timeout;
    for (;;) {
      out.seen[name] = await page.evaluate(read, arg);
      if (check(out.seen[name])) return out.seen[name];
      if (Date.now() > deadline) throw new Error(`${name}: not as expected`);
      await page.waitForTimeout(100);
    }
  };
  const view = async (hash) => {
    await page.evaluate((h) => { window.location.hash = h; }, hash);
    await page.waitForTimeout(300);  // the view's slide transition
  };
  try {
    await page.goto(cfg.ui, { waitUntil: 'load' });
    // The connection modal, as a person fills it: a wrong password first.
    await page.getByLabel('Server URL').fill(cfg.server);
    await page.getByLabel('Username').fill(cfg.username);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('Invalid credentials').waitFor();
    step('refused');
    await page.getByLabel('Password').fill(cfg.password);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('header .v-chip', { hasText: /^\s*connected\s*$/i }).first().waitFor();
    step('connected');
    // The modal fades out: wait until it and its overlay are gone.
    await page.waitForFunction(
      () => !document.querySelector('.v-dialog--active, .v-overlay--active'));
    await page.waitForTimeout(300);

    const want = cfg.expect;
    await until('dashboard', CARDS, (c) =>
      c.Clients && c.Clients.WebSocket === want.websocket
      && c.Clients['HTTP long-polling'] === want.polling
      && c.Servers && c.Servers.Healthy === 1 && c.Servers.Unhealthy === 0
      && c.Namespaces && JSON.stringify(c.Namespaces) === JSON.stringify(want.namespaces));
    step('dashboard');
    await shot('dashboard');

    await view('#/sockets');
    await until('sockets', ROWS, (rows) => rows.length === want.sockets.length
      && want.sockets.every((id) => rows.some((r) => r[0] === id)));
    step('sockets');
    await shot('sockets');

    await view('#/rooms');
    await until('rooms', ROWS, (rows) => JSON.stringify(rows.map((r) => [r[0], r[2]]))
      === JSON.stringify(want.rooms));
    step('rooms');

    await view('#/clients');
    await until('clients', ROWS, (rows) => rows.length === want.clients);
    step('clients');

    await view('#/servers');
    await until('servers', ROWS, (rows) => rows.length === 1 && rows[0][0] === want.serverId);
    step('servers');

    await view('#/events');
    await until('events', ROWS, (rows) => want.events.every(
      ([id, type, text]) => rows.some((r) => r.includes(id) && r.includes(type)
        && r.some((cell) => cell.includes(text)))));
    step('events');
    await shot('events');

    // The dashboard's own action: disconnect one socket from the sockets view.
    await view('#/sockets');
    await until('sockets-again', ROWS, (rows) => rows.length === want.sockets.length
      && rows.every((r) => want.sockets.includes(r[0])));
    const row = page.locator('.v-data-table tbody tr', { hasText: cfg.disconnect });
    await row.locator('button').click();
    // The click reaches the row too, which opens that socket's page: back to the list.
    await view('#/sockets');
    await until('after-disconnect', ROWS, (rows) => rows.length === want.sockets.length - 1
      && !rows.some((r) => r[0] === cfg.disconnect));
    step('disconnected');

    await view('#/');
    await page.waitForTimeout(200);
    out.ok = true;
  } catch (err) {
    out.error = String(err && err.stack || err);
    try { await shot('failure'); } catch (_) { /* page gone */ }
  } finally {
    try { await browser.close(); } catch (_) { /* gone */ }
  }
  finish(out.ok ? 0 : 1);
}
main();
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free loopback port (threads of this process)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://{HOST}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def instrumented_hub(origin: str) -> Hub:
    # The dashboard is another origin, and its socket.io-client sends credentials.
    hub = Hub(cors_origins=[origin], cors_credentials=True)
    hub.instrument(
        auth={"type": "basic", "username": USER, "password": PASSWORD},
        server_id="tether-e2e",
        stats_interval=0.5,
    )

    @hub.on("join")
    async def join(socket: Any, room: str) -> str:
        await socket.join(room)
        return "joined"

    @hub.on("chat")
    async def chat(socket: Any, room: str, text: str) -> None:
        await hub.to(room).emit("chat", {"from": socket.sid, "text": text})

    teams = hub.of(re.compile(r"/team-\w+"))

    @teams.on("join")
    async def join_team_room(socket: Any, room: str) -> str:
        await socket.join(room)
        return "joined"

    return hub


@contextlib.asynccontextmanager
async def serving(hub: Hub) -> AsyncIterator[str]:
    async with hub.serve(HOST, 0) as server:
        yield f"http://{HOST}:{server.port}"


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def lines(handle: NodeProcess) -> list[dict[str, Any]]:
    found = []
    for line in list(handle._stdout):
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return found


async def node_line(
    handle: NodeProcess, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> dict[str, Any]:
    """The first JSON line of a ``sio_client.js`` that matches (waited for, bounded)."""
    try:
        await until(lambda: any(match(line) for line in lines(handle)), timeout)
    except TimeoutError:
        raise AssertionError(f"no such line:\n{''.join(handle._stdout)}\n{handle.stderr}") from None
    return next(line for line in lines(handle) if match(line))


def command(handle: NodeProcess, **cmd: Any) -> None:
    assert handle.proc.stdin is not None
    handle.proc.stdin.write(json.dumps(cmd) + "\n")
    handle.proc.stdin.flush()


async def python_user(url: str, transports: list[str], room: str, *more: str) -> Client:
    client = Client(reconnection=False)
    client.on("*", lambda *args: None)
    await client.connect(url, transports=transports)
    for name in (room, *more):
        assert await client.emit_with_ack("join", name, timeout=5) == "joined"
    return client


async def run_browser(node: Node, chromium: Path, tmp_path: Path, config: dict[str, Any]) -> Any:
    """Run the driver with a bound; its process group is killed by PID in any case."""
    script = tmp_path / "admin_ui_driver.js"
    script.write_text(DRIVER)
    config = {**config, "executable": str(chromium), "timeout": int(BROWSER_TIMEOUT * 1000)}
    env = {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}
    proc = await asyncio.create_subprocess_exec(
        node.exe,
        str(script),
        json.dumps(config),
        cwd=NODE_DIR,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), BROWSER_TIMEOUT + 15)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5)
    text = stdout.decode(errors="replace").strip().splitlines()
    assert text, f"no report from the driver:\n{stderr.decode(errors='replace')[-3000:]}"
    return json.loads(text[-1])


async def test_the_dashboard_shows_the_hub_and_disconnects_a_socket(
    node: Node, chromium: Path, node_server: Any, tmp_path: Path
) -> None:
    assert (UI_DIST / "index.html").is_file(), "run `npm install` in tests/node"
    shots = tmp_path / "shots"
    shots.mkdir()
    with static_site(UI_DIST) as ui:
        hub = instrumented_hub(ui)
        async with serving(hub) as url:
            alice = await python_user(url, ["websocket"], "garden")
            bob = await python_user(url, ["polling"], "garden", "kitchen")
            lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            bob.on("disconnect", lambda reason: lost.done() or lost.set_result(reason))
            carol = await asyncio.to_thread(
                node_server,
                "sio_client.js",
                f"{url}/team-red",
                json.dumps({"reconnection": False, "timeout": 50000}),
                ready='{"ev":"ready"',
            )
            connected = await node_line(carol, lambda e: e["ev"] == "connect")
            await node_line(carol, lambda e: e["ev"] == "upgrade")
            alice_sid, bob_sid = alice.sid, bob.sid
            assert alice_sid is not None and bob_sid is not None
            config = {
                "ui": ui + "/index.html",
                "server": url,
                "username": USER,
                "password": PASSWORD,
                "shots": str(shots),
                "disconnect": bob_sid,
                "expect": {
                    # alice, carol and the dashboard itself on WebSocket; bob polls.
                    "websocket": 3,
                    "polling": 1,
                    "namespaces": {"/": 2, "/admin": 1, "/team-red": 1},
                    "sockets": [alice_sid, bob_sid],
                    # Public rooms of "/" and their sizes, by name (patio comes live).
                    "rooms": [["garden", "2"], ["kitchen", "1"], ["patio", "1"]],
                    "clients": 4,
                    "serverId": "tether-e2e",
                    "events": [
                        [alice_sid, "Event received", "chat"],
                        [bob_sid, "Event sent", "chat"],
                        [alice_sid, "Room joined", "patio"],
                    ],
                },
            }
            browser = asyncio.ensure_future(run_browser(node, chromium, tmp_path, config))
            try:
                # Once the dashboard is in, what happens now reaches it live.
                admin = hub.of("/admin")
                await until(lambda: len(admin.sockets) == 1 or browser.done(), 40)
                if not browser.done():
                    await alice.emit("chat", "garden", "hello garden")
                    assert await alice.emit_with_ack("join", "patio", timeout=5) == "joined"
                report = await browser
                if report["ok"]:
                    assert await asyncio.wait_for(lost, 10) == "io server disconnect"
            finally:
                if not browser.done():
                    browser.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await browser
                await alice.disconnect()
                await bob.disconnect()
                carol.stop()

    for png in report["screenshots"]:
        print(f"admin UI screenshot: {png}")
    dashboard = shots / "dashboard.png"
    if dashboard.is_file():
        shutil.copy(dashboard, SCREENSHOT)
        print(f"admin UI dashboard screenshot: {SCREENSHOT}")
    assert report["ok"], json.dumps(report, indent=1)[-6000:]
    assert report["steps"] == [
        "refused",
        "connected",
        "dashboard",
        "sockets",
        "rooms",
        "clients",
        "servers",
        "events",
        "disconnected",
    ]
    assert report["pageErrors"] == []
    assert {re.sub(r":\d+$", "", o) for o in report["blocked"]} <= {
        "https://fonts.googleapis.com",
        "https://cdn.jsdelivr.net",
    }
    seen = report["seen"]
    assert seen["dashboard"]["Namespaces"] == {"/": 2, "/admin": 1, "/team-red": 1}
    sockets = {row[0]: row for row in seen["sockets"]}
    assert sockets[alice_sid][1:3] == ["127.0.0.1", "WebSocket"]
    assert sockets[bob_sid][1:3] == ["127.0.0.1", "HTTP long-polling"]
    assert seen["servers"][0][0] == "tether-e2e"
    assert seen["servers"][0][2] == str(os.getpid())
    assert connected["id"] not in sockets  # carol is on /team-red, not on "/"
    assert dashboard.is_file()


async def test_the_admin_namespace_refuses_wrong_credentials(node_server: Any) -> None:
    hub = instrumented_hub("http://127.0.0.1:1")
    async with serving(hub) as url:
        wrong = await asyncio.to_thread(
            node_server,
            "sio_client.js",
            f"{url}/admin",
            json.dumps({"auth": {"username": USER, "password": "guess"}, "reconnection": False}),
            ready='{"ev":"ready"',
        )
        refused = await node_line(wrong, lambda e: e["ev"] in ("connect", "connect_error"))
        assert refused == {"ev": "connect_error", "message": "invalid credentials", "data": None}
        wrong.stop()
        right = await asyncio.to_thread(
            node_server,
            "sio_client.js",
            f"{url}/admin",
            json.dumps({"auth": {"username": USER, "password": PASSWORD}, "reconnection": False}),
            ready='{"ev":"ready"',
        )
        await node_line(right, lambda e: e["ev"] == "connect")
        session = await node_line(right, lambda e: e.get("name") == "session")
        assert isinstance(session["args"][0], str) and session["args"][0]
        config = await node_line(right, lambda e: e.get("name") == "config")
        assert "DISCONNECT" in config["args"][0]["supportedFeatures"]
        right.stop()


async def test_a_disconnect_command_from_an_admin_client_reaches_the_target(
    node_server: Any,
) -> None:
    hub = instrumented_hub("http://127.0.0.1:1")
    async with serving(hub) as url:
        target = await asyncio.to_thread(
            node_server,
            "sio_client.js",
            f"{url}/team-blue",
            json.dumps({"reconnection": False}),
            ready='{"ev":"ready"',
        )
        sid = (await node_line(target, lambda e: e["ev"] == "connect"))["id"]
        admin = Client(reconnection=False)
        await admin.connect(
            url, namespaces=["/admin"], auth={"username": USER, "password": PASSWORD}
        )
        try:
            board = admin.socket("/admin")
            await board.emit("join", "/team-blue", "blue-room", sid)
            team = hub.namespaces["/team-blue"]
            await until(lambda: "blue-room" in team.sockets[sid].rooms)
            await board.emit("_disconnect", "/team-blue", False, sid)
            gone = await node_line(target, lambda e: e["ev"] == "disconnect")
            assert gone["reason"] == "io server disconnect"
            assert "/team-blue" not in hub.namespaces  # a dynamic namespace, now empty
        finally:
            await admin.disconnect()
            target.stop()


@pytest.fixture(autouse=True)
def _node_modules_have_the_dashboard(node: Node) -> None:
    if not (UI_DIST / "index.html").is_file():
        pytest.fail("@socket.io/admin-ui is missing from tests/node/node_modules: npm install")
