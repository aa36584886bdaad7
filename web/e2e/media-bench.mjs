// Measures, in headless Chromium against the real binary, how long a person waits from the
// `room:join` ack (the seat is taken, over the socket) until the first remote video frame is
// decoded and shown (requestVideoFrameCallback), from the page's own timestamps
// (window.__talkconnect.marks). Not a test: prints every run and the medians.
//
//   cd web && TALKCONNECT_BIN=… RUNS=9 PUBLISHERS=1 node e2e/media-bench.mjs
//
// PUBLISHERS pages sit in the room with fake camera and microphone; a newcomer then opens
// the lobby (live connection up, signed in), clicks "Join", and is measured; it leaves and the
// next run starts with a fresh browser context. The span includes getUserMedia (fake devices:
// no prompt), `sfu:join`, the offer/answer, ICE + DTLS on loopback, the server's offer with
// the publishers' tracks and the keyframe request.
import { MEDIA_ARGS, createRoom, launchBrowser, sfuEnv, signInAsGuest, startServer } from './harness.mjs';

const RUNS = Number(process.env.RUNS ?? 9);
const PUBLISHERS = Number(process.env.PUBLISHERS ?? 1);

const server = await startServer({ env: sfuEnv(47300, 47399) });
const browser = await launchBrowser({ extraArgs: MEDIA_ARGS });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  const publishers = [];
  let roomId;
  for (let i = 0; i < PUBLISHERS; i++) {
    const page = await (await browser.newContext({ locale: 'en-US' })).newPage();
    await page.goto(i === 0 ? server.url : `${server.url}/r/${roomId}`);
    await signInAsGuest(page, `Publisher ${i + 1}`);
    if (i === 0) roomId = await createRoom(page, { title: 'Bench room' });
    await page.waitForFunction(() => window.__talkconnect?.phase === 'connected', null, { timeout: 30000 });
    publishers.push(page);
  }
  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    const res = await fetch(`${server.url}/api/auth/guest`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ displayName: `Newcomer ${run}` }),
    });
    const session = await res.json();
    const context = await browser.newContext({ locale: 'en-US' });
    await context.addInitScript((value) => {
      if (!localStorage.getItem('talkconnect.session')) localStorage.setItem('talkconnect.session', value);
    }, JSON.stringify(session));
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.documentElement.dataset.realtime === 'connected', null, { timeout: 15000 });
    await page.getByRole('button', { name: 'Join Bench room' }).click();
    await page.waitForFunction(
      (n) => Object.keys(window.__talkconnect?.marks.firstFrameOf ?? {}).length >= n,
      PUBLISHERS,
      { timeout: 30000 },
    );
    const m = await page.evaluate(() => ({ ...window.__talkconnect.marks }));
    const from = (t) => Math.round(t - m.roomJoinAck);
    const row = {
      run,
      localMedia: from(m.localMedia),
      sfuJoinAck: from(m.sfuJoinAck),
      connected: from(m.connected),
      firstFrame: from(m.firstRemoteFrame),
      allFirstFrames: from(Math.max(...Object.values(m.firstFrameOf))),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
    await page.getByRole('button', { name: 'Leave' }).click();
    await page.getByRole('heading', { name: /Live rooms/ }).waitFor({ timeout: 10000 });
    await context.close();
    await new Promise((r) => setTimeout(r, 1000));
  }
  const keys = ['localMedia', 'sfuJoinAck', 'connected', 'firstFrame', 'allFirstFrames'];
  console.log(
    `median over ${RUNS} runs, ${PUBLISHERS} publisher(s), ms after the room:join ack: ` +
      keys.map((k) => `${k} ${median(rows.map((r) => r[k]))}`).join(', '),
  );
  console.log(`firstFrame min ${Math.min(...rows.map((r) => r.firstFrame))}, max ${Math.max(...rows.map((r) => r.firstFrame))}`);
} finally {
  await browser.close();
  await server.stop();
}
