#!/usr/bin/env node
// Two headless Chromium pages chat through tether's demo app (src/tether/demo).
//
// Usage:
//   node e2e_chat.js --url URL [--room NAME] [--screenshots DIR] [--timeout MS]
//                    [--executable PATH]
//
// Page A (alice) and page B (bob) join the same room; A types (B must show the typing
// indicator), A sends a message (B must show it, A must mark it delivered), B answers
// (A must show it), then B leaves (A's presence count must drop back to 1).
// Prints exactly one JSON line on stdout:
//   {"ok", "steps": [names done], "a": PAGE, "b": PAGE, "typing": text B showed,
//    "screenshots": [paths], "console": [...], "pageErrors": [...], "error"}
// where PAGE is {"messages": [{"nick","text","mine","status"}], "system": [...],
//                "presence": "...", "room": "...", "status": "..."} read from the DOM.
// Exit code 0 when every step passed, 1 otherwise, 2 on bad arguments. Bounded by
// --timeout (default 20000 ms) plus a watchdog.
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-gpu',
  '--disable-dev-shm-usage',
];

function parseArgs(argv) {
  const opts = {
    url: null,
    room: 'e2e',
    screenshots: null,
    timeout: 20000,
    executable: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    switch (key) {
      case '--url': opts.url = value; i++; break;
      case '--room': opts.room = value; i++; break;
      case '--screenshots': opts.screenshots = value; i++; break;
      case '--timeout': opts.timeout = Number(value); i++; break;
      case '--executable': opts.executable = value; i++; break;
      default: throw new Error(`unknown argument: ${key}`);
    }
  }
  if (!opts.url) throw new Error('--url is required');
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) throw new Error('bad --timeout');
  return opts;
}

async function readPage(page) {
  return page.evaluate(() => ({
    messages: [...document.querySelectorAll('#messages li.message')].map((li) => ({
      nick: li.querySelector('.nick').textContent,
      text: li.querySelector('.text').textContent,
      mine: li.classList.contains('mine'),
      status: li.dataset.status || null,
    })),
    system: [...document.querySelectorAll('#messages li.system')].map((li) => li.textContent),
    presence: document.getElementById('presence').textContent,
    room: document.getElementById('room-name').textContent,
    status: document.getElementById('status').textContent,
    typing: document.getElementById('typing').textContent,
  }));
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`e2e_chat.js: ${err.message}\n`);
    process.exit(2);
  }
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, error: 'watchdog timeout' }) + '\n');
    process.exit(1);
  }, opts.timeout + 10000);
  watchdog.unref();

  const out = {
    ok: false, steps: [], a: null, b: null, typing: null, screenshots: [],
    console: [], pageErrors: [], error: null,
  };
  const step = (name) => out.steps.push(name);
  let browser = null;
  let a = null;
  let b = null;

  const shoot = async (page, name) => {
    if (!opts.screenshots || !page || page.isClosed()) return;
    const file = path.join(opts.screenshots, `${name}.png`);
    try {
      await page.screenshot({ path: file, timeout: 5000 });
      out.screenshots.push(file);
    } catch (_) { /* page gone */ }
  };

  try {
    browser = await chromium.launch({
      executablePath: opts.executable, headless: true, args: CHROMIUM_ARGS, timeout: opts.timeout,
    });
    const open = async (label) => {
      const context = await browser.newContext({ viewport: { width: 760, height: 560 } });
      const page = await context.newPage();
      page.setDefaultTimeout(opts.timeout);
      page.on('console', (msg) => out.console.push(`${label} ${msg.type()}: ${msg.text()}`));
      page.on('pageerror', (err) => out.pageErrors.push(`${label}: ${err && err.message || err}`));
      await page.goto(opts.url, { waitUntil: 'load' });
      return page;
    };
    const join = async (page, nick) => {
      await page.waitForSelector('#status.online');
      await page.fill('#nick', nick);
      await page.fill('#room', opts.room);
      await page.click('#join');
      await page.waitForSelector('body.joined');
    };

    a = await open('A');
    b = await open('B');
    await shoot(a, 'join-form');
    await join(a, 'alice');
    step('a-joined');
    await join(b, 'bob');
    step('b-joined');
    await a.waitForFunction(() => document.getElementById('presence').dataset.count === '2');
    await b.waitForFunction(() => document.getElementById('presence').dataset.count === '2');
    step('presence-2');

    // Typing: keystrokes fire "input" events, which send the volatile typing event.
    await a.click('#message-input');
    await a.keyboard.type('hello from alice', { delay: 5 });
    await b.waitForFunction(() => document.getElementById('typing').textContent.includes('alice'));
    out.typing = await b.evaluate(() => document.getElementById('typing').textContent);
    step('typing-shown');
    await shoot(b, 'typing');

    await a.keyboard.press('Enter');
    await b.waitForFunction(() => [...document.querySelectorAll('#messages li.message .text')]
      .some((el) => el.textContent === 'hello from alice'));
    step('b-received');
    await a.waitForSelector('#messages li.message.mine[data-status="delivered"]');
    step('a-delivered');
    await b.waitForFunction(() => document.getElementById('typing').textContent === '');
    step('typing-cleared');

    await b.fill('#message-input', 'hi alice, bob here');
    await b.click('#send');
    await a.waitForFunction(() => [...document.querySelectorAll('#messages li.message .text')]
      .some((el) => el.textContent === 'hi alice, bob here'));
    await b.waitForSelector('#messages li.message.mine[data-status="delivered"]');
    step('a-received');

    await shoot(a, 'alice');
    await shoot(b, 'bob');
    out.b = await readPage(b);

    await b.context().close();
    await a.waitForFunction(() => document.getElementById('presence').dataset.count === '1');
    step('presence-1');
    out.a = await readPage(a);
    await shoot(a, 'alice-alone');
    out.ok = true;
  } catch (err) {
    out.error = String(err && err.message || err);
    for (const [page, name] of [[a, 'failure-a'], [b, 'failure-b']]) await shoot(page, name);
    try { if (a && !a.isClosed()) out.a = await readPage(a); } catch (_) { /* gone */ }
    try { if (b && !b.isClosed()) out.b = await readPage(b); } catch (_) { /* gone */ }
  } finally {
    if (browser) {
      try { await browser.close(); } catch (_) { /* already gone */ }
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.ok ? 0 : 1);
}

main();
