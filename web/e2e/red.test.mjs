// Redundant audio (RED, RFC 2198; src/sfu/red.rs) in real Chromium through the real binary, in
// the network lab of netlab.mjs: the publisher's page lists RED first, so its voice goes out as
// RED (each packet carries the frame before it again); the SFU forwards it as RED to the
// listener, whose downlink then drops 5 % of its datagrams at random. Asserted:
// - both pages agreed on audio/red (the publisher's m-line lists it first, the listener's
//   answer for the publisher's voice has it);
// - packets are lost on the listener's link, but almost none of its audio is concealed: a
//   single lost packet is played from the next one's copy (plain Opus conceals about as much
//   as is lost: docs/BENCHMARKS.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createRoom, expectFlowing, signInAsGuest, userIdOf } from './harness.mjs';
import { SITE, labCall, receiving } from './netlab.mjs';

const { skip: SKIP, call } = labCall('red', 'tcr');

/** The codec names of each audio m-line of the page's `local` or `remote` description, in
 * the order listed (the first is the one sent). getStats names the primary codec (Opus) even
 * for RED, so the descriptions say what was agreed. */
function audioFormats(page, which) {
  return page.evaluate((which) => {
    const sdp = window.__talkconnect.pc[which === 'local' ? 'localDescription' : 'remoteDescription']?.sdp ?? '';
    return sdp
      .split('\r\nm=')
      .filter((section) => section.startsWith('audio'))
      .map((section) => {
        const names = Object.fromEntries([...section.matchAll(/^a=rtpmap:(\d+) ([^/]+)\//gm)].map((m) => [m[1], m[2].toLowerCase()]));
        return section.split('\r\n')[0].split(' ').slice(3).map((pt) => names[pt]);
      });
  }, which);
}

const delta = (a, b, key) => (b.audio?.[key] ?? 0) - (a.audio?.[key] ?? 0);

describe('a listener on a lossy downlink', { skip: SKIP }, () => {
  it('hears the voice whole: the publisher sends RED and the SFU forwards it', { timeout: 180000 }, async () => {
    const pub = await (await call.publisherBrowser.newContext({ locale: 'en-US' })).newPage();
    await pub.goto(SITE);
    await signInAsGuest(pub, 'Publisher');
    const roomId = await createRoom(pub, { title: 'Lossy downlink' });
    const publisher = await userIdOf(pub);

    const listener = await (await call.listenerBrowser.newContext({ locale: 'en-US' })).newPage();
    await listener.goto(`${SITE}/r/${roomId}`);
    await signInAsGuest(listener, 'Listener');
    await expectFlowing(listener, [publisher], { timeout: 60000 });
    // The SFU's answer to the publisher lists RED first: Chromium sends RED only then.
    const published = await audioFormats(pub, 'remote');
    assert.deepEqual(published[0].slice(0, 2), ['red', 'opus'], `the publisher's audio m-line: ${JSON.stringify(published)}`);
    // The listener took RED for the publisher's voice (the server offers Opus, then RED).
    const received = await audioFormats(listener, 'local');
    assert.ok(received.some((formats) => formats.includes('red')), `the listener's audio m-lines: ${JSON.stringify(received)}`);

    call.lab.setCondition('5');
    await listener.waitForTimeout(2000);
    const a = await receiving(listener, publisher);
    await listener.waitForTimeout(12000);
    const b = await receiving(listener, publisher);
    call.lab.setCondition('0');
    const lost = delta(a, b, 'packetsLost');
    const arrived = delta(a, b, 'packetsReceived');
    const concealedPct = (100 * delta(a, b, 'concealedSamples')) / Math.max(1, delta(a, b, 'totalSamplesReceived'));
    console.log(`[red] 5 % loss, 12 s: audio packets lost ${lost} of ${lost + arrived}, concealed ${concealedPct.toFixed(2)} %, events ${delta(a, b, 'concealmentEvents')}`);
    assert.ok(arrived >= 300, `audio keeps arriving: ${arrived} packets in 12 s`);
    assert.ok(lost >= 5, `the link loses packets (${lost}): the condition applies`);
    // About 5 % would be concealed without RED; with it only two losses in a row are.
    assert.ok(concealedPct < 1.5, `concealed ${concealedPct.toFixed(2)} % of the audio at 5 % loss`);
  });
});
