// Headless Firefox for the browser tests: Debian's firefox-esr driven by geckodriver over
// plain W3C WebDriver HTTP calls (Node's fetch, no client library). scripts/test installs
// both when missing (apt-get install firefox-esr; cargo install geckodriver --locked).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { freePort } from '../../e2e/support/server.mjs';

/** Fake camera and microphone without a prompt, and ICE on loopback, where the tests run:
 * without it Firefox does not reach a TURN server on 127.0.0.1 and the relay-only call never
 * connects. */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.peerconnection.ice.loopback': true,
};

function firefoxBinary() {
  const path = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install -y firefox-esr`);
  return path;
}

function geckodriverBinary() {
  if (process.env.GECKODRIVER_PATH) return process.env.GECKODRIVER_PATH;
  for (const dir of [join(homedir(), '.cargo', 'bin'), '/usr/local/bin', '/usr/bin']) {
    if (existsSync(join(dir, 'geckodriver'))) return join(dir, 'geckodriver');
  }
  throw new Error('geckodriver is missing: cargo install geckodriver --locked');
}

/** A WebDriver error answer as an Error naming the command and the driver's message. */
async function call(base, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
  return json.value;
}

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/** geckodriver on a free port with one Firefox session; `close()` ends both. */
export async function launchFirefox({ prefs = {} } = {}) {
  const port = await freePort();
  const driver = spawn(geckodriverBinary(), ['--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-20000);
  };
  driver.stdout.on('data', keep);
  driver.stderr.on('data', keep);
  // A test run that ends without close() leaves no geckodriver (nor its Firefox) behind.
  const killDriver = () => driver.kill('SIGKILL');
  process.on('exit', killDriver);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const status = await call(base, 'GET', '/status');
      if (status.ready) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || driver.exitCode !== null) {
      driver.kill('SIGKILL');
      throw new Error(`geckodriver did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let session;
  try {
    session = await call(base, 'POST', '/session', {
      capabilities: {
        alwaysMatch: {
          browserName: 'firefox',
          'moz:firefoxOptions': {
            binary: firefoxBinary(),
            args: ['-headless'],
            prefs: { ...FIREFOX_PREFS, ...prefs },
          },
        },
      },
    });
  } catch (err) {
    driver.kill('SIGKILL');
    throw new Error(`${err.message}\n${output}`);
  }
  const s = `/session/${session.sessionId}`;
  const page = {
    version: session.capabilities.browserVersion,
    goto: (url) => call(base, 'POST', `${s}/url`, { url }),
    url: () => call(base, 'GET', `${s}/url`),
    /** Runs `fn` (a function, serialised) in the page with `args`; async functions are awaited. */
    evaluate: (fn, ...args) =>
      call(base, 'POST', `${s}/execute/async`, {
        script: `const done = arguments[arguments.length - 1];
          Promise.resolve((${fn}).apply(null, Array.prototype.slice.call(arguments, 0, -1)))
            .then((v) => done({ ok: v }), (e) => done({ err: String(e && e.stack || e) }));`,
        args,
      }).then((r) => {
        if (r && 'err' in r) throw new Error(`in Firefox: ${r.err}`);
        return r?.ok;
      }),
    /** The first element matching `css`, waited for up to `timeout` ms. */
    async find(css, { timeout = 10000 } = {}) {
      const end = Date.now() + timeout;
      for (;;) {
        const found = await call(base, 'POST', `${s}/elements`, { using: 'css selector', value: css });
        if (found.length > 0) return found[0][ELEMENT];
        if (Date.now() > end) throw new Error(`Firefox: no element ${css} after ${timeout} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    type: (element, text) => call(base, 'POST', `${s}/element/${element}/value`, { text }),
    click: (element) => call(base, 'POST', `${s}/element/${element}/click`, {}),
    screenshot: () => call(base, 'GET', `${s}/screenshot`).then((b64) => Buffer.from(b64, 'base64')),
    log: () => output,
    async close() {
      await call(base, 'DELETE', s).catch(() => {});
      driver.kill('SIGTERM');
      process.off('exit', killDriver);
    },
  };
  return page;
}
