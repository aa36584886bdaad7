// The connection-quality level from two stats snapshots, and the uplink budget's split.
import { describe, expect, it } from 'vitest';

import {
  redFirst,
  simulcastEncodings,
  AUDIO_RESERVE_KBPS,
  capEncodings,
  linkLevel,
  receivedLevel,
  videoCap,
  worst,
  type InboundTotals,
  type ReceivedSnapshot,
} from '../src/media/quality';

const both = { audio: true, video: true };

/** Two seconds of one person's media: audio at 50 packets/s, video at 30 frames/s. */
function interval(audio: Partial<InboundTotals> = {}, video: Partial<InboundTotals> = {}): [ReceivedSnapshot, ReceivedSnapshot] {
  const prev: ReceivedSnapshot = {
    at: 10_000,
    audio: { packetsReceived: 1000, packetsLost: 0, jitter: 0.005, concealedSamples: 100, totalSamplesReceived: 960_000 },
    video: { packetsReceived: 3000, packetsLost: 0, jitter: 0.01, framesDecoded: 600, freezeCount: 0, totalFreezesDuration: 0 },
  };
  const cur: ReceivedSnapshot = {
    at: 12_000,
    audio: { packetsReceived: 1100, packetsLost: 0, jitter: 0.005, concealedSamples: 100, totalSamplesReceived: 1_056_000, ...audio },
    video: { packetsReceived: 3300, packetsLost: 0, jitter: 0.01, framesDecoded: 660, freezeCount: 0, totalFreezesDuration: 0, ...video },
  };
  return [prev, cur];
}

describe('receivedLevel', () => {
  it('is good when everything flows', () => {
    expect(receivedLevel(...interval(), both)).toBe('good');
  });

  it('grades packet loss: 3 % fair, 10 % poor', () => {
    expect(receivedLevel(...interval({ packetsReceived: 1097, packetsLost: 3 }), both)).toBe('fair');
    expect(receivedLevel(...interval({}, { packetsReceived: 3270, packetsLost: 30 }), both)).toBe('poor');
  });

  it('grades jitter, concealed audio and frozen video', () => {
    expect(receivedLevel(...interval({ jitter: 0.05 }), both)).toBe('fair');
    expect(receivedLevel(...interval({ jitter: 0.2 }), both)).toBe('poor');
    // 20 % of the samples of the interval concealed.
    expect(receivedLevel(...interval({ concealedSamples: 100 + 19_200 }), both)).toBe('poor');
    expect(receivedLevel(...interval({}, { freezeCount: 1, totalFreezesDuration: 0.05 }), both)).toBe('fair');
    expect(receivedLevel(...interval({}, { freezeCount: 2, totalFreezesDuration: 1.2 }), both)).toBe('poor');
    expect(receivedLevel(...interval({}, { framesDecoded: 600 }), both)).toBe('poor');
  });

  it('is lost when an expected track stops or is missing, whatever the other does', () => {
    expect(receivedLevel(...interval({ packetsReceived: 1000 }), both)).toBe('lost');
    const [prev, cur] = interval();
    expect(receivedLevel(prev, { ...cur, video: undefined }, both)).toBe('lost');
  });

  it('judges only what is expected: a muted mic or a camera that is off (or audio-only) is not a loss', () => {
    expect(receivedLevel(...interval({ packetsReceived: 1000 }), { audio: false, video: true })).toBe('good');
    const [prev, cur] = interval({}, { packetsReceived: 3000, framesDecoded: 600 });
    expect(receivedLevel(prev, cur, { audio: true, video: false })).toBe('good');
    expect(receivedLevel(prev, cur, { audio: false, video: false })).toBeNull();
  });

  it('cannot judge a new connection (counters went back) or a zero interval', () => {
    const [prev, cur] = interval({ packetsReceived: 10 });
    expect(receivedLevel(prev, cur, { audio: true, video: false })).toBeNull();
    expect(receivedLevel(prev, prev, both)).toBeNull();
  });
});

describe('linkLevel', () => {
  const at = (ms: number, rest = {}) => ({ at: ms, ...rest });
  it('grades round-trip time and available outgoing bitrate', () => {
    expect(linkLevel(at(0), at(2000, { rtt: 0.02, availableOutgoingBitrate: 2_000_000 }))).toBe('good');
    expect(linkLevel(at(0), at(2000, { rtt: 0.3, availableOutgoingBitrate: 2_000_000 }))).toBe('fair');
    expect(linkLevel(at(0), at(2000, { rtt: 0.02, availableOutgoingBitrate: 100_000 }))).toBe('poor');
    expect(linkLevel(at(0), at(2000, { rtt: 0.8 }))).toBe('poor');
  });

  it('a video held back for bandwidth is fair; a link that is down is lost', () => {
    expect(linkLevel(at(0), at(2000, { rtt: 0.02, qualityLimitationReason: 'bandwidth' }))).toBe('fair');
    expect(linkLevel(at(0), at(2000, { rtt: 0.02, qualityLimitationReason: 'none' }))).toBe('good');
    expect(linkLevel(at(0), at(2000, { down: true }))).toBe('lost');
    expect(linkLevel(at(0), at(2000))).toBeNull();
    expect(linkLevel(at(2000), at(2000, { rtt: 0.02 }))).toBeNull();
  });
});

describe('worst', () => {
  it('orders good < fair < poor < lost and skips nulls', () => {
    expect(worst(['good', null, 'poor', 'fair'])).toBe('poor');
    expect(worst([null, 'lost', 'good'])).toBe('lost');
    expect(worst([null])).toBeNull();
  });
});

describe('uplink budget', () => {
  it('keeps audio and video of every connection within the budget', () => {
    for (const [budget, senders] of [
      [1500, 1],
      [1500, 5],
      [600, 1],
      [3000, 11],
    ]) {
      const cap = videoCap(budget, senders);
      const total = senders * (AUDIO_RESERVE_KBPS + (cap.maxBitrate / 1000) * 1.1);
      expect(total, `${budget} kbit/s over ${senders}`).toBeLessThanOrEqual(budget);
    }
  });

  it('divides the budget among mesh peers and shrinks the picture when a share gets small', () => {
    const sfu = videoCap(1500, 1);
    const mesh = videoCap(1500, 5);
    expect(sfu.maxBitrate).toBeGreaterThan(4 * mesh.maxBitrate);
    expect(sfu.scaleResolutionDownBy).toBe(1);
    expect(mesh.maxBitrate).toBe(199_000);
    expect(videoCap(1500, 8).scaleResolutionDownBy).toBe(2);
    expect(videoCap(300, 3).scaleResolutionDownBy).toBe(4);
    // Too many peers for the budget: a minimal picture rather than none.
    expect(videoCap(300, 10).maxBitrate).toBe(30_000);
    // A generous budget never lifts the browser's own ceiling much.
    expect(videoCap(100_000, 1).maxBitrate).toBe(2_500_000);
  });

  it('caps one encoding whole and simulcast layers in proportion', () => {
    const cap = { maxBitrate: 600_000, scaleResolutionDownBy: 1 };
    const one: { active: boolean; maxBitrate?: number; scaleResolutionDownBy?: number }[] = [{ active: true }];
    expect(capEncodings(one, cap)).toEqual([{ active: true, maxBitrate: 600_000, scaleResolutionDownBy: 1 }]);
    expect(capEncodings([{ scaleResolutionDownBy: 2 }], { maxBitrate: 100_000, scaleResolutionDownBy: 4 })[0].scaleResolutionDownBy).toBe(4);
    const layers = capEncodings(
      [
        { rid: 'q', maxBitrate: 150_000, scaleResolutionDownBy: 4 },
        { rid: 'h', maxBitrate: 500_000, scaleResolutionDownBy: 2 },
        { rid: 'f', maxBitrate: 1_350_000 },
      ],
      cap,
    );
    expect(layers.reduce((sum, l) => sum + (l.maxBitrate ?? 0), 0)).toBeLessThanOrEqual(600_000);
    expect(layers.map((l) => l.maxBitrate)).toEqual([45_000, 150_000, 405_000]);
    expect(layers[0].scaleResolutionDownBy).toBe(4);
    const roomy = capEncodings([{ maxBitrate: 100_000 }, { maxBitrate: 200_000 }], cap);
    expect(roomy.map((l) => l.maxBitrate)).toEqual([100_000, 200_000]);
  });
});

describe('simulcastEncodings', () => {
  it('gives no layers below 360 lines, two up to 719, three from 720, lowest first', () => {
    expect(simulcastEncodings(undefined)).toBeUndefined();
    expect(simulcastEncodings(240)).toBeUndefined();
    expect(simulcastEncodings(360)?.map((e) => [e.rid, e.scaleResolutionDownBy])).toEqual([
      ['l', 2],
      ['h', 1],
    ]);
    const three = simulcastEncodings(720) ?? [];
    expect(three.map((e) => e.rid)).toEqual(['l', 'm', 'h']);
    const rates = three.map((e) => e.maxBitrate ?? 0);
    expect(rates).toEqual([...rates].sort((a, b) => a - b));
    // The lowest layer and the voice fit a 300 kbit/s downlink.
    expect(rates[0] / 1000 + AUDIO_RESERVE_KBPS).toBeLessThan(300);
  });

  it('keeps the layers in proportion under an uplink cap', () => {
    const capped = capEncodings(simulcastEncodings(720) ?? [], videoCap(400, 1));
    const total = capped.reduce((sum, e) => sum + (e.maxBitrate ?? 0), 0);
    expect(total).toBeLessThanOrEqual(videoCap(400, 1).maxBitrate);
    expect(capped[0].maxBitrate).toBeLessThan(capped[2].maxBitrate ?? 0);
  });
});

describe('redFirst', () => {
  const codec = (mimeType: string, sdpFmtpLine?: string): RTCRtpCodec => ({ mimeType, clockRate: 48000, channels: 2, sdpFmtpLine });
  it('puts RED before Opus and keeps the rest in order', () => {
    const chromium = [codec('audio/opus', 'minptime=10;useinbandfec=1'), codec('audio/red', '111/111'), codec('audio/G722'), codec('audio/PCMU')];
    expect(redFirst(chromium)?.map((c) => c.mimeType)).toEqual(['audio/red', 'audio/opus', 'audio/G722', 'audio/PCMU']);
    expect(redFirst([codec('audio/RED'), codec('audio/opus')])?.[0].mimeType).toBe('audio/RED');
  });
  it('changes nothing without RED', () => {
    expect(redFirst([codec('audio/opus'), codec('audio/PCMU')])).toBeUndefined();
    expect(redFirst(undefined)).toBeUndefined();
    expect(redFirst([])).toBeUndefined();
  });
});
