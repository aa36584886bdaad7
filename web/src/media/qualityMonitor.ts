// Samples getStats() of the room's peer connections every few seconds and turns each pair of
// samples into a level per tile (quality.ts): remote people by the inbound-rtp of their
// tracks (matched by track id, so the SFU's one connection and mesh mode's many work alike),
// ourselves by the link (candidate pair, outbound video).
import { signal } from '@preact/signals';

import { linkLevel, receivedLevel, worst, type Expecting, type InboundTotals, type LinkSnapshot, type QualityLevel, type ReceivedSnapshot } from './quality';
import type { RemoteMap } from './tracks';

export const SAMPLE_MS = 2000;

/** Level per user id (ours included); absent: not judged yet. */
export const qualityLevels = signal<Readonly<Record<string, QualityLevel>>>({});

export interface QualitySources {
  /** Every live peer connection of the room (one with the SFU; one per peer in mesh mode). */
  connections(): RTCPeerConnection[];
  remote(): RemoteMap<MediaStreamTrack>;
  self(): string | null;
  /** What to expect of a remote person (their mic and camera state, audio-only). */
  expecting(userId: string): Expecting;
}

type Stat = Record<string, unknown> & { type: string; id: string };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** One received track's totals from an inbound-rtp entry. */
function inboundTotals(s: Stat): InboundTotals {
  return {
    packetsReceived: num(s.packetsReceived) ?? 0,
    packetsLost: num(s.packetsLost) ?? 0,
    jitter: num(s.jitter),
    framesDecoded: num(s.framesDecoded),
    freezeCount: num(s.freezeCount),
    totalFreezesDuration: num(s.totalFreezesDuration),
    concealedSamples: num(s.concealedSamples),
    totalSamplesReceived: num(s.totalSamplesReceived),
  };
}

/** Inbound totals by track id, and the link, of one connection's report. */
export function readReport(report: Iterable<Stat>, at: number, state: RTCPeerConnectionState): { inbound: Map<string, InboundTotals>; link: LinkSnapshot } {
  const stats = [...report];
  const inbound = new Map<string, InboundTotals>();
  for (const s of stats) {
    if (s.type === 'inbound-rtp' && typeof s.trackIdentifier === 'string') inbound.set(s.trackIdentifier, inboundTotals(s));
  }
  const transport = stats.find((s) => s.type === 'transport' && typeof s.selectedCandidatePairId === 'string');
  const pair =
    stats.find((s) => s.type === 'candidate-pair' && s.id === transport?.selectedCandidatePairId) ??
    stats.find((s) => s.type === 'candidate-pair' && s.nominated === true && s.state === 'succeeded');
  const video = stats.find((s) => s.type === 'outbound-rtp' && s.kind === 'video');
  const link: LinkSnapshot = {
    at,
    rtt: num(pair?.currentRoundTripTime),
    availableOutgoingBitrate: num(pair?.availableOutgoingBitrate),
    qualityLimitationReason: typeof video?.qualityLimitationReason === 'string' ? video.qualityLimitationReason : undefined,
    down: state === 'failed' || state === 'disconnected' || state === 'closed',
  };
  return { inbound, link };
}

/** Starts sampling; returns the function that stops it. */
export function startQualityMonitor(sources: QualitySources): () => void {
  let received = new Map<string, ReceivedSnapshot>();
  let links = new Map<RTCPeerConnection, LinkSnapshot>();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const at = Date.now();
      const inbound = new Map<string, InboundTotals>();
      const nextLinks = new Map<RTCPeerConnection, LinkSnapshot>();
      const linkLevels: (QualityLevel | null)[] = [];
      for (const pc of sources.connections()) {
        const report = await pc.getStats();
        const read = readReport(report.values() as Iterable<Stat>, at, pc.connectionState);
        read.inbound.forEach((v, k) => inbound.set(k, v));
        nextLinks.set(pc, read.link);
        const prev = links.get(pc);
        if (prev) linkLevels.push(linkLevel(prev, read.link));
      }
      links = nextLinks;
      const levels: Record<string, QualityLevel> = {};
      const nextReceived = new Map<string, ReceivedSnapshot>();
      for (const [userId, tracks] of Object.entries(sources.remote())) {
        const snapshot: ReceivedSnapshot = {
          at,
          audio: tracks.audio ? inbound.get(tracks.audio.id) : undefined,
          video: tracks.video ? inbound.get(tracks.video.id) : undefined,
        };
        nextReceived.set(userId, snapshot);
        const prev = received.get(userId);
        const level = prev ? receivedLevel(prev, snapshot, sources.expecting(userId)) : null;
        if (level) levels[userId] = level;
      }
      received = nextReceived;
      const self = sources.self();
      const own = worst(linkLevels);
      if (self && own) levels[self] = own;
      // The tiles re-render only when a level changed.
      const before = qualityLevels.value;
      const keys = Object.keys(levels);
      if (keys.length !== Object.keys(before).length || keys.some((k) => before[k] !== levels[k])) qualityLevels.value = levels;
    } catch {
      // A connection closed under us: the next sample starts over.
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), SAMPLE_MS);
  return () => {
    clearInterval(timer);
    qualityLevels.value = {};
  };
}
