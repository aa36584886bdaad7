// Which remote track belongs to whom, and what a tile shows: pure functions over plain data,
// so they are tested without a browser. The server labels every forwarded track twice
// (docs/SFU.md): `a=msid:<publisher userId> <trackId>` in the SDP (so `ontrack` →
// `event.streams[0].id` is the publisher's user id) and the `tracks` list of each offer or
// answer, one entry per live m-line, keyed by `mid`.
import type { SfuTrackInfo } from '../realtime/events';

export type MediaKindName = 'audio' | 'video';

/** What the peer connection receives: one entry per transceiver (as `pc.getTransceivers()`). */
export interface ReceiverView<T> {
  mid: string | null;
  /** The receiving track (always present on a transceiver, live or not). */
  track: T;
  kind: MediaKindName;
  /** `event.streams[0].id` seen in `ontrack` for this mid, if any. */
  streamId?: string | null;
  /** Our own publishing transceivers are not remote media. */
  sending?: boolean;
}

/** Per publisher: their microphone and camera tracks (T = MediaStreamTrack in the app). */
export interface RemoteTracks<T> {
  audio?: T;
  video?: T;
}

export type RemoteMap<T> = Record<string, RemoteTracks<T>>;

/** What the media store needs of a transport, whichever the server's mode: the SFU's one
 * connection (negotiation.ts) or one connection per participant (mesh.ts). */
export interface MediaTransport {
  /** Remote tracks by publisher user id. */
  remote(): RemoteMap<MediaStreamTrack>;
  /** Our microphone or camera switched on/off (beyond `track.enabled`, which the store sets). */
  setSending(kind: MediaKindName, on: boolean): void;
  /** Ends it, peer connections included. Idempotent. */
  close(): void;
}

/** The publisher of the track on `mid`: the server's list first (it is the complete and
 * current one), else the stream id the browser saw in `ontrack`. */
export function publisherOf(mid: string | null, labels: readonly SfuTrackInfo[], streamId?: string | null): string | null {
  if (mid !== null) {
    const label = labels.find((l) => l.mid === mid);
    if (label) return label.userId;
  }
  return streamId || null;
}

/**
 * The remote media as the last description says: every receiving transceiver whose mid is in
 * the server's `tracks` list, grouped by publisher. A departed publisher's m-lines stay in the
 * SDP (inactive) but leave the list, so their tiles lose the media at once. When `labels` is
 * null (no list received yet), the msid stream ids are used.
 */
export function remoteTracksFrom<T>(
  receivers: readonly ReceiverView<T>[],
  labels: readonly SfuTrackInfo[] | null,
  self?: string,
): RemoteMap<T> {
  const map: RemoteMap<T> = {};
  for (const r of receivers) {
    if (r.sending || r.mid === null) continue;
    let userId: string | null;
    let kind: MediaKindName = r.kind;
    if (labels) {
      const label = labels.find((l) => l.mid === r.mid);
      if (!label) continue;
      userId = label.userId;
      kind = label.kind;
    } else {
      userId = r.streamId ?? null;
    }
    if (!userId || userId === self) continue;
    const entry = (map[userId] ??= {});
    if (!entry[kind]) entry[kind] = r.track;
  }
  return map;
}

/** True when the two maps hold the same tracks for the same people (skip a re-render). */
export function sameRemoteMap<T>(a: RemoteMap<T>, b: RemoteMap<T>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] && a[k].audio === b[k].audio && a[k].video === b[k].video);
}

export interface TileInput {
  isMe: boolean;
  isVideoOff: boolean;
  isMuted: boolean;
  /** A video track to show: ours (local camera) or the one received for this person. */
  hasVideo: boolean;
  /** This person's audio level is above the speaking threshold. */
  speaking: boolean;
  /** We chose to receive no video (audio-only). */
  audioOnly?: boolean;
}

export interface TileView {
  /** Video element, else the initials placeholder. */
  showVideo: boolean;
  /** Own preview: mirrored like a mirror, and always muted (no echo). */
  mirrored: boolean;
  mutedBadge: boolean;
  cameraOffBadge: boolean;
  /** Their camera is on but we receive no video (audio-only). */
  audioOnlyBadge: boolean;
  speaking: boolean;
}

/** What a participant's tile shows. A camera that is off (their choice, or none at all)
 * shows the initials; a muted person never shows as speaking. */
export function tileView(input: TileInput): TileView {
  const audioOnly = !!input.audioOnly && !input.isMe;
  return {
    showVideo: input.hasVideo && !input.isVideoOff && !audioOnly,
    mirrored: input.isMe,
    mutedBadge: input.isMuted,
    cameraOffBadge: input.isVideoOff,
    audioOnlyBadge: audioOnly && !input.isVideoOff,
    speaking: input.speaking && !input.isMuted,
  };
}

/** Grid columns for `count` tiles: one big tile alone, two side by side, then a near-square
 * grid; phones (narrow) never go beyond two columns. */
export function gridColumns(count: number, narrow: boolean): number {
  if (count <= 1) return 1;
  if (narrow) return count <= 2 ? 1 : 2;
  if (count <= 4) return 2;
  if (count <= 9) return 3;
  return 4;
}
