// Audio first on a congested downlink (src/sfu/congestion.rs), in real Chromium through the
// real binary, in the network lab of netlab.mjs: a publisher sends about 1 Mbit/s of video
// (random noise) and a voice; the listener's downlink is then cut to 300 kbit/s by `tc tbf`.
// Asserted:
// - the server pauses the video it forwards to the listener (`sfu:video`), and the page says so
//   (the media line and a badge on the publisher's tile);
// - while paused, the listener's audio keeps arriving without a loss burst and its video
//   stops;
// - the link restored, the video comes back by itself (frames decoded again, the notice gone);
// - on a clean link nothing is ever paused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createRoom, expectFlowing, screenshot, signInAsGuest, userIdOf } from './harness.mjs';
import { SITE, labCall, noiseCamera, receiving } from './netlab.mjs';

const { skip: SKIP, call } = labCall('congestion', 'tcc', {
  // One encoding: with simulcast the low layer would fit the narrow link and nothing would
  // pause (web/e2e/simulcast.test.mjs covers that).
  env: { TALKCONNECT__MEDIA__SIMULCAST: 'false' },
  video: noiseCamera(),
});

const delta = (a, b, kind, key) => (b[kind]?.[key] ?? 0) - (a[kind]?.[key] ?? 0);

describe('a listener whose downlink is congested', { skip: SKIP }, () => {
  it('gets the voice without its video, then the video back when the link recovers', { timeout: 240000 }, async () => {
    const pub = await (await call.publisherBrowser.newContext({ locale: 'en-US' })).newPage();
    await pub.goto(SITE);
    await signInAsGuest(pub, 'Publisher');
    const roomId = await createRoom(pub, { title: 'Congested downlink' });
    const publisher = await userIdOf(pub);

    const listener = await (await call.listenerBrowser.newContext({ locale: 'vi-VN' })).newPage();
    await listener.goto(`${SITE}/r/${roomId}`);
    await signInAsGuest(listener, 'Người nghe');
    await listener.locator(`.tile[data-user-id="${publisher}"][data-video="on"] video`).waitFor({ timeout: 60000 });
    await expectFlowing(listener, [publisher], { timeout: 45000 });
    // A clean link: nothing paused for a while (the gate reads loss every 250 ms).
    await listener.waitForTimeout(4000);
    assert.equal(await listener.getByTestId('video-paused').count(), 0, 'paused on a clean link');

    call.lab.setCondition('300k');
    const notice = listener.getByTestId('video-paused');
    await notice.waitFor({ timeout: 20000 });
    assert.match(await notice.innerText(), /Video đang tạm dừng/);
    await listener.locator(`.tile[data-user-id="${publisher}"] [data-testid="video-paused-badge"]`).waitFor({ timeout: 5000 });
    await screenshot(listener, 'congestion-paused');

    // Paused: the voice keeps coming, whole; the picture stops. (The first try of the video
    // comes 8 s after the pause; this window ends well before.)
    await listener.waitForTimeout(1000);
    const a = await receiving(listener, publisher);
    await listener.waitForTimeout(4000);
    const b = await receiving(listener, publisher);
    console.log(`[congestion] while paused: ${JSON.stringify({ a, b })}`);
    const audioReceived = delta(a, b, 'audio', 'packetsReceived');
    const audioLost = delta(a, b, 'audio', 'packetsLost');
    assert.ok(audioReceived >= 100, `audio packets in 4 s while paused: ${audioReceived}`);
    assert.ok(audioLost <= audioReceived / 50, `audio lost ${audioLost} of ${audioReceived} while video was paused`);
    assert.ok(delta(a, b, 'video', 'framesDecoded') <= 5, `video frames decoded while paused: ${delta(a, b, 'video', 'framesDecoded')}`);

    call.lab.setCondition('0');
    await notice.waitFor({ state: 'detached', timeout: 90000 });
    await expectFlowing(listener, [publisher], { timeout: 30000 });
    const logged = call.server.log();
    assert.match(logged, /sfu: downlink video gate .*paused=true/);
    assert.match(logged, /sfu: downlink video gate .*paused=false/);
  });
});
