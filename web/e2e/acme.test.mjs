// HTTPS with a certificate the binary got itself from an ACME CA (server.tls.mode = "acme"):
// Debian's pebble (Let's Encrypt's test CA) issues it after checking TLS-ALPN-01 on the
// server's https port, its pebble-challtestsrv resolving the name to 127.0.0.1. Chromium
// trusts pebble's root the way a machine trusts a CA (its NSS store; never "ignore certificate
// errors"), reaches the name through --host-resolver-rules, and the app loads and its
// websocket connects.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { freePort, spawnServer } from '../../e2e/support/server.mjs';
import { createRoom, launchBrowser, screenshot, signInAsGuest, startServer } from './harness.mjs';

const STEP = { timeout: 120000 };
const NAME = 'talk.acme-test.example';
const dir = mkdtempSync(join(tmpdir(), 'tc-acme-'));
const processes = [];
let server;
let browser;
let root;

const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** pebble's own https listeners (directory, management): a CA and a certificate for 127.0.0.1. */
function listenerCertificates() {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', 'listener-ca.key', '-out', 'listener-ca.crt', '-subj', '/CN=TalkConnect test CA for pebble',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'listener.key',
    '-out', 'listener.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'listener.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'listener.csr', '-CA', 'listener-ca.crt', '-CAkey', 'listener-ca.key',
    '-CAcreateserial', '-days', '2', '-out', 'listener.crt', '-extfile', 'listener.ext');
}

/** GET over https trusting `ca` (PEM). */
function get(url, ca) {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

/** Does the server at `port` present, for NAME, a certificate that pebble's `root` vouches for? */
function servesCertificateFrom(root, port) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: NAME, ca: root, rejectUnauthorized: false }, () => {
      const issuer = socket.getPeerCertificate().issuer?.CN ?? '';
      socket.destroy();
      resolve(socket.authorized && issuer.startsWith('Pebble Intermediate CA'));
    });
    socket.on('error', () => resolve(false));
  });
}

/** A home folder whose NSS store trusts pebble's root. */
function homeTrusting(rootPem) {
  const home = join(dir, 'home');
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  writeFileSync(join(dir, 'pebble-root.pem'), rootPem);
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'pebble test root', '-t', 'C,,', '-i', join(dir, 'pebble-root.pem')]);
  return home;
}

before(async () => {
  listenerCertificates();
  const [acmePort, managementPort, dnsPort, dnsManagementPort, port] = await Promise.all(
    [1, 2, 3, 4, 5].map(() => freePort()),
  );
  writeFileSync(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: join(dir, 'listener.crt'),
        privateKey: join(dir, 'listener.key'),
        httpPort: await freePort(),
        tlsPort: port,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  // DNS only: every name resolves to 127.0.0.1 (no AAAA); its own challenge servers off.
  processes.push(
    await spawnServer('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsManagementPort}`,
      '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv6', ''], { ready: /Starting management server/ }),
  );
  processes.push(
    await spawnServer('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_VA_ALWAYS_VALID: '0' },
      ready: /ACME directory available/,
    }),
  );
  const listenerCa = readFileSync(join(dir, 'listener-ca.crt'), 'utf8');
  root = await get(`https://127.0.0.1:${managementPort}/roots/0`, listenerCa);
  server = await startServer({
    port,
    env: {
      TALKCONNECT__SERVER__TLS__MODE: 'acme',
      TALKCONNECT__SERVER__TLS__DOMAIN: NAME,
      TALKCONNECT__SERVER__TLS__ACME_DIRECTORY: `https://127.0.0.1:${acmePort}/dir`,
      TALKCONNECT__SERVER__TLS__ACME_CA_FILE: join(dir, 'listener-ca.crt'),
    },
  });
  browser = await launchBrowser({ home: homeTrusting(root), extraArgs: [`--host-resolver-rules=MAP ${NAME} 127.0.0.1`] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  for (const process of processes) await process.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a certificate from an ACME CA', () => {
  it('is issued by the CA and served without a restart', STEP, async () => {
    const deadline = Date.now() + 90000;
    while (!(await servesCertificateFrom(root, server.port))) {
      assert.ok(Date.now() < deadline, `no certificate from pebble served; the server's log:\n${server.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  it('Chromium trusting the CA opens the app over https and its websocket connects', STEP, async () => {
    const page = await browser.newPage();
    const failures = [];
    page.on('requestfailed', (r) => failures.push(`${r.url()}: ${r.failure()?.errorText}`));
    const websockets = [];
    page.on('websocket', (ws) => websockets.push(ws.url()));
    await page.goto(`https://${NAME}:${server.port}/`);
    await page.getByRole('heading', { name: /Live rooms/ }).waitFor();
    assert.equal(await page.evaluate(() => window.isSecureContext), true);
    await signInAsGuest(page, 'Lan');
    await createRoom(page, { title: 'Chứng chỉ ACME' });
    const chat = page.getByRole('textbox', { name: 'Message' });
    await chat.fill('Xin chào qua ACME');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.chat-message', { hasText: 'Xin chào qua ACME' }).waitFor();
    assert.ok(
      websockets.some((url) => url.startsWith(`wss://${NAME}:${server.port}/socket.io/`)),
      `a websocket over TLS: ${websockets.join(', ')}`,
    );
    assert.deepEqual(failures, []);
    await screenshot(page, 'acme-room');
    await page.close();
  });
});
