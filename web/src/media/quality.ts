// Connection quality and the uplink budget, as pure functions over plain numbers (tested in
// Vitest without a browser; qualityMonitor.ts feeds them from getStats()).
//
// * A remote tile's level comes from what we receive of that person (inbound-rtp of their
//   tracks): packet loss, jitter, video freezes and frames, concealed audio.
// * Our own tile's level comes from our link to the server (or, in mesh mode, the worst of our
//   links): the selected candidate pair's round-trip time and available outgoing bitrate, and
//   why the browser holds back our video (outbound-rtp qualityLimitationReason).
// * A level compares two snapshots taken a few seconds apart: counters are totals.

export type QualityLevel = 'good' | 'fair' | 'poor' | 'lost';

/** Totals of one received track (inbound-rtp), as getStats reports them. */
export interface InboundTotals {
  packetsReceived: number;
  packetsLost: number;
  /** Seconds. */
  jitter?: number;
  /** Video. */
  framesDecoded?: number;
  freezeCount?: number;
  /** Seconds. */
  totalFreezesDuration?: number;
  /** Audio. */
  concealedSamples?: number;
  totalSamplesReceived?: number;
}

/** What one remote person's tile is judged on, at one moment. */
export interface ReceivedSnapshot {
  /** Milliseconds (the stats' timestamp). */
  at: number;
  audio?: InboundTotals;
  video?: InboundTotals;
}

/** What our own tile is judged on, at one moment. */
export interface LinkSnapshot {
  at: number;
  /** The selected candidate pair's currentRoundTripTime, seconds. */
  rtt?: number;
  /** bit/s, the browser's estimate of what it may send. */
  availableOutgoingBitrate?: number;
  /** outbound-rtp video: 'none' | 'bandwidth' | 'cpu' | 'other'. */
  qualityLimitationReason?: string;
  /** No selected candidate pair, or the connection is not connected. */
  down?: boolean;
}

/** Which media the tile expects to flow (a muted person sends no audio, and so on). */
export interface Expecting {
  audio: boolean;
  video: boolean;
}

// Thresholds: a little loss or jitter is heard as nothing (FEC, jitter buffer) but is the
// first sign of trouble; beyond the "poor" ones speech breaks up and video stalls.
const LOSS = { fair: 0.02, poor: 0.08 };
const JITTER_S = { fair: 0.03, poor: 0.1 };
const CONCEALED = { fair: 0.03, poor: 0.15 };
const FROZEN = { fair: 0.05, poor: 0.25 };
const RTT_S = { fair: 0.25, poor: 0.6 };
const OUTGOING_BPS = { fair: 300_000, poor: 120_000 };

const rank: Record<QualityLevel, number> = { good: 0, fair: 1, poor: 2, lost: 3 };

/** The worse of the levels (null entries ignored; null when all are). */
export function worst(levels: readonly (QualityLevel | null)[]): QualityLevel | null {
  let out: QualityLevel | null = null;
  for (const level of levels) {
    if (level && (!out || rank[level] > rank[out])) out = level;
  }
  return out;
}

const delta = (cur: number | undefined, prev: number | undefined): number => Math.max(0, (cur ?? 0) - (prev ?? 0));

function grade(value: number, limits: { fair: number; poor: number }): QualityLevel {
  if (value >= limits.poor) return 'poor';
  if (value >= limits.fair) return 'fair';
  return 'good';
}

/** One track's level over the interval, or null when it was not expected to flow. A counter
 * that went backwards (a new connection) restarts the comparison: null. */
function trackLevel(
  prev: InboundTotals | undefined,
  cur: InboundTotals | undefined,
  expected: boolean,
  seconds: number,
  kind: 'audio' | 'video',
): QualityLevel | null {
  if (!expected) return null;
  // Gone since the last sample: lost; never seen (still arriving): not judged yet.
  if (!cur) return prev ? 'lost' : null;
  if (!prev || cur.packetsReceived < prev.packetsReceived) return null;
  const received = cur.packetsReceived - prev.packetsReceived;
  const lost = delta(cur.packetsLost, prev.packetsLost);
  // Audio with DTX still sends a packet every 400 ms of silence: none at all is a lost link.
  if (received === 0) return 'lost';
  const levels: QualityLevel[] = [grade(lost / (lost + received), LOSS), grade(cur.jitter ?? 0, JITTER_S)];
  if (kind === 'audio') {
    const samples = delta(cur.totalSamplesReceived, prev.totalSamplesReceived);
    if (samples > 0) levels.push(grade(delta(cur.concealedSamples, prev.concealedSamples) / samples, CONCEALED));
  } else {
    const frozen = delta(cur.totalFreezesDuration, prev.totalFreezesDuration) / seconds;
    levels.push(grade(frozen, FROZEN));
    if (delta(cur.freezeCount, prev.freezeCount) > 0) levels.push('fair');
    // Packets but no picture: the decoder waits for a keyframe.
    if (cur.framesDecoded !== undefined && delta(cur.framesDecoded, prev.framesDecoded) === 0) levels.push('poor');
  }
  return worst(levels);
}

/** A remote person's level between two snapshots; null when nothing can be judged (nothing
 * expected, or the first snapshot of a new connection). */
export function receivedLevel(prev: ReceivedSnapshot, cur: ReceivedSnapshot, expecting: Expecting): QualityLevel | null {
  const seconds = (cur.at - prev.at) / 1000;
  if (!(seconds > 0)) return null;
  return worst([
    trackLevel(prev.audio, cur.audio, expecting.audio, seconds, 'audio'),
    trackLevel(prev.video, cur.video, expecting.video, seconds, 'video'),
  ]);
}

/** Our own link's level (the later snapshot decides; the earlier one only has to exist). */
export function linkLevel(prev: LinkSnapshot, cur: LinkSnapshot): QualityLevel | null {
  if (!(cur.at > prev.at)) return null;
  if (cur.down) return 'lost';
  const levels: QualityLevel[] = [];
  if (cur.rtt !== undefined) levels.push(grade(cur.rtt, RTT_S));
  const out = cur.availableOutgoingBitrate;
  if (out !== undefined) levels.push(out < OUTGOING_BPS.poor ? 'poor' : out < OUTGOING_BPS.fair ? 'fair' : 'good');
  if (cur.qualityLimitationReason === 'bandwidth') levels.push('fair');
  return levels.length > 0 ? worst(levels) : null;
}

// ---- The uplink budget ----

/** What audio (Opus with FEC, or RED: the frame before sent again) and its packet overhead
 * take of the budget, kbit/s. */
export const AUDIO_RESERVE_KBPS = 80;
/** RTP/SRTP headers and RTCP on top of what the encoder is told, as a share of video. */
const VIDEO_OVERHEAD = 0.1;
/** Below this per connection, video is sent at half the size (and a quarter below half). */
const SMALL_VIDEO_KBPS = 150;
/** Never more than this per sender: an explicit maxBitrate replaces the browser's own ceiling
 * for the picture size (Chromium: 600 kbit/s at 320x240, 2.5 Mbit/s at most for a camera),
 * and a generous budget must not raise it (a page sent 12 Mbit/s of camera noise so). */
export const MAX_VIDEO_KBPS = 2500;

export interface VideoCap {
  /** bit/s for RTCRtpEncodingParameters.maxBitrate. */
  maxBitrate: number;
  scaleResolutionDownBy: number;
}

/**
 * The cap of each video sender so that everything this browser sends stays below
 * `budgetKbps`: `senders` connections each carry our audio and video (1 with the SFU; in mesh
 * mode, one per peer). Audio is reserved first; at least 30 kbit/s of video per sender is
 * kept (a budget too small for that many peers is exceeded rather than sending no picture).
 */
export function videoCap(budgetKbps: number, senders: number): VideoCap {
  const n = Math.max(1, Math.floor(senders));
  const perSender = budgetKbps / n - AUDIO_RESERVE_KBPS;
  const kbps = Math.min(MAX_VIDEO_KBPS, Math.max(30, Math.floor(perSender / (1 + VIDEO_OVERHEAD))));
  const scale = kbps < SMALL_VIDEO_KBPS / 2 ? 4 : kbps < SMALL_VIDEO_KBPS ? 2 : 1;
  return { maxBitrate: kbps * 1000, scaleResolutionDownBy: scale };
}

/**
 * The audio codecs with RED (RFC 2198: each packet carries the frame before it again) first,
 * so the browser sends redundant Opus; `undefined` when the browser has no RED (Firefox, a
 * WebView): it then sends plain Opus as before.
 */
export function redFirst(codecs: readonly RTCRtpCodec[] | undefined): RTCRtpCodec[] | undefined {
  const isRed = (c: RTCRtpCodec) => c.mimeType.toLowerCase() === 'audio/red';
  const red = (codecs ?? []).filter(isRed);
  if (red.length === 0) return undefined;
  return [...red, ...(codecs ?? []).filter((c) => !isRed(c))];
}

/**
 * The simulcast layers for a camera `height` lines tall, lowest first (the SFU ranks them in
 * this order): three from 720 lines, two from 360, none below (one encoding). Each layer's
 * maxBitrate sets the proportions `capEncodings` keeps under the uplink budget; the lowest
 * fits a 300 kbit/s downlink beside the voice.
 */
export function simulcastEncodings(height: number | undefined): RTCRtpEncodingParameters[] | undefined {
  if (!height || height < 360) return undefined;
  if (height < 720) {
    return [
      { rid: 'l', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
      { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 900_000 },
    ];
  }
  return [
    { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ];
}

/** Applies `cap` to a sender's encodings: one encoding gets it whole; simulcast layers keep
 * their proportions, scaled down so that together they stay within it (a layer with no
 * maxBitrate of its own counts as an equal share). */
/** Caps every video sender of `pc` (errors ignored: a closed connection, a receive-only
 * transceiver, parameters not ready yet, which the next call covers). */
export async function capVideoSenders(pc: Pick<RTCPeerConnection, 'getTransceivers'>, cap: VideoCap): Promise<void> {
  // By transceiver, not by sender.track: a camera that is off (replaceTrack(null)) keeps its
  // cap for when it comes back.
  for (const { sender, receiver, currentDirection } of pc.getTransceivers()) {
    if (currentDirection === 'stopped' || receiver.track.kind !== 'video') continue;
    try {
      const params = sender.getParameters();
      if (params.encodings.length === 0) continue;
      params.encodings = capEncodings(params.encodings, cap);
      await sender.setParameters(params);
    } catch {
      // Applied again on the next change.
    }
  }
}

export function capEncodings<E extends { maxBitrate?: number; scaleResolutionDownBy?: number }>(
  encodings: readonly E[],
  cap: VideoCap,
): E[] {
  if (encodings.length === 1) {
    const [only] = encodings;
    return [{ ...only, maxBitrate: cap.maxBitrate, scaleResolutionDownBy: Math.max(only.scaleResolutionDownBy ?? 1, cap.scaleResolutionDownBy) }];
  }
  const share = cap.maxBitrate / Math.max(1, encodings.length);
  const wanted = encodings.map((e) => e.maxBitrate ?? share);
  const total = wanted.reduce((a, b) => a + b, 0);
  const factor = total > cap.maxBitrate ? cap.maxBitrate / total : 1;
  return encodings.map((e, i) => ({ ...e, maxBitrate: Math.floor(wanted[i] * factor) }));
}
