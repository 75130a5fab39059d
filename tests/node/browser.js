#!/usr/bin/env node
// Drive Debian's headless Chromium with playwright-core (no browser download).
//
// Usage:
//   node browser.js --url URL [--wait EXPR] [--result EXPR] [--timeout MS]
//                   [--screenshot PATH] [--executable PATH]
//
// Opens URL, waits until the JS expression EXPR is truthy in the page (when given), then
// evaluates --result (defaults to EXPR) and prints exactly one JSON line on stdout:
//   {"ok": true|false, "url": ..., "title": ..., "value": ..., "console": [...],
//    "pageErrors": [...], "screenshot": PATH|null, "error": null|"message"}
// Exit code: 0 when ok, 1 when the page failed or the wait timed out, 2 on bad arguments.
// Everything is bounded by --timeout (default 15000 ms); a watchdog kills the process
// if the browser itself hangs.
'use strict';

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
    wait: null,
    result: null,
    timeout: 15000,
    screenshot: null,
    executable: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    switch (key) {
      case '--url': opts.url = value; i++; break;
      case '--wait': opts.wait = value; i++; break;
      case '--result': opts.result = value; i++; break;
      case '--timeout': opts.timeout = Number(value); i++; break;
      case '--screenshot': opts.screenshot = value; i++; break;
      case '--executable': opts.executable = value; i++; break;
      default:
        // A bare first argument is taken as the URL.
        if (opts.url === null && !key.startsWith('--')) { opts.url = key; break; }
        throw new Error(`unknown argument: ${key}`);
    }
  }
  if (!opts.url) throw new Error('--url is required');
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) throw new Error('bad --timeout');
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`browser.js: ${err.message}\n`);
    process.exit(2);
  }

  // Hard stop even if Chromium wedges: the caller also bounds us, this is belt and braces.
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, error: 'watchdog timeout' }) + '\n');
    process.exit(1);
  }, opts.timeout + 10000);
  watchdog.unref();

  const out = {
    ok: false,
    url: opts.url,
    title: null,
    value: null,
    console: [],
    pageErrors: [],
    screenshot: null,
    error: null,
  };
  let browser = null;
  let page = null;
  try {
    browser = await chromium.launch({
      executablePath: opts.executable,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: opts.timeout,
    });
    page = await browser.newPage();
    page.setDefaultTimeout(opts.timeout);
    page.on('console', (msg) => out.console.push(`${msg.type()}: ${msg.text()}`));
    page.on('pageerror', (err) => out.pageErrors.push(String(err && err.message || err)));

    await page.goto(opts.url, { timeout: opts.timeout, waitUntil: 'load' });
    if (opts.wait) {
      await page.waitForFunction(opts.wait, null, { timeout: opts.timeout, polling: 50 });
    }
    const expr = opts.result || opts.wait;
    if (expr) {
      out.value = await page.evaluate(expr);
    }
    out.title = await page.title();
    out.ok = true;
  } catch (err) {
    out.error = String(err && err.message || err);
  }
  // Taken on failure too: a picture of a stuck page is the quickest diagnosis.
  if (page && opts.screenshot) {
    try {
      await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 });
      out.screenshot = opts.screenshot;
    } catch (_) { /* page gone */ }
  }
  try {
    if (out.title === null && page) out.title = await page.title();
  } catch (_) { /* page gone */ } finally {
    if (browser) {
      try { await browser.close(); } catch (_) { /* already gone */ }
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.ok ? 0 : 1);
}

main();
