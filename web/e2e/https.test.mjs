// A server reached by its name from another machine, as strangers reach a VPS. Over plain
// HTTP the browser gives the page no microphone or camera. Over the binary's own HTTPS, with
// a certificate from a CA that Chromium trusts the way a machine trusts one (its NSS store;
// never "ignore certificate errors"), the page is a secure context, gets both, and the room
// works over wss.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createRoom, launchBrowser, screenshot, signInAsGuest, startServer } from './harness.mjs';

const STEP = { timeout: 60000 };
const NAME = 'talk.test';
const dir = mkdtempSync(join(tmpdir(), 'tc-https-'));
let https;
let plain;
let browser;

const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A CA, and a certificate for NAME that it signed. */
function makeCertificates() {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=TalkConnect test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key',
    '-out', 'server.csr', '-subj', `/CN=${NAME}`);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:${NAME}\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-out', 'server.crt', '-extfile', 'server.ext');
}

/** A home folder whose NSS store trusts the test CA. */
function homeTrustingCa() {
  const home = join(dir, 'home');
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'TalkConnect test CA', '-t', 'C,,', '-i', join(dir, 'ca.crt')]);
  return home;
}

before(async () => {
  makeCertificates();
  https = await startServer({
    env: {
      TALKCONNECT__SERVER__TLS__MODE: 'files',
      TALKCONNECT__SERVER__TLS__CERT_FILE: join(dir, 'server.crt'),
      TALKCONNECT__SERVER__TLS__KEY_FILE: join(dir, 'server.key'),
    },
  });
  plain = await startServer();
  browser = await launchBrowser({ home: homeTrustingCa(), extraArgs: [`--host-resolver-rules=MAP ${NAME} 127.0.0.1`] });
});

after(async () => {
  await browser?.close();
  await https?.stop();
  await plain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const mediaAccess = (page) =>
  page.evaluate(async () => {
    if (!window.isSecureContext || !navigator.mediaDevices) return { secure: window.isSecureContext, tracks: 0 };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const tracks = stream.getTracks().filter((t) => t.readyState === 'live').length;
    stream.getTracks().forEach((t) => t.stop());
    return { secure: true, tracks };
  });

describe('reached by name, not localhost', () => {
  it('over plain HTTP the page gets no microphone or camera', STEP, async () => {
    const page = await browser.newPage();
    await page.goto(`http://${NAME}:${plain.port}/`);
    await page.getByRole('heading', { name: /Live rooms/ }).waitFor();
    assert.deepEqual(await mediaAccess(page), { secure: false, tracks: 0 });
    await page.close();
  });

  it('over the binary’s HTTPS it gets both, and the room works over wss', STEP, async () => {
    const page = await browser.newPage();
    const failures = [];
    page.on('requestfailed', (r) => failures.push(`${r.url()}: ${r.failure()?.errorText}`));
    const websockets = [];
    page.on('websocket', (ws) => websockets.push(ws.url()));
    await page.goto(`https://${NAME}:${https.port}/`);
    assert.deepEqual(await mediaAccess(page), { secure: true, tracks: 2 });
    await signInAsGuest(page, 'Hương');
    await createRoom(page, { title: 'Qua HTTPS' });
    await page.locator('.tile', { hasText: 'Hương' }).waitFor();
    const chat = page.getByRole('textbox', { name: 'Message' });
    await chat.fill('Nghe rõ không?');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.chat-message', { hasText: 'Nghe rõ không?' }).waitFor();
    assert.ok(
      websockets.some((url) => url.startsWith(`wss://${NAME}:${https.port}/socket.io/`)),
      `a websocket over TLS: ${websockets.join(', ')}`,
    );
    assert.deepEqual(failures, []);
    await screenshot(page, 'https-room');
    await page.close();
  });
});
