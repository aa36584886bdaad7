// Audio and video in mesh mode: one RTCPeerConnection per other participant, signaled
// through the server's `webrtc:*` relay (it only forwards, within the room). The media goes
// browser to browser, so participants learn each other's IP addresses (the room says so).
//
// * Who offers: both sides open a connection (the newcomer for everyone already there, the
//   others when the room state says someone joined), add their tracks (or a receive-only
//   transceiver for a missing kind, so every new connection offers) and offer. Collisions
//   are the "perfect negotiation" pattern: the smaller user id is polite (its offer gives way,
//   by implicit rollback), the other ignores the colliding offer.
// * Which connection: every message names the sending connection (`from`, a fresh id per
//   RTCPeerConnection) and, once known, the receiving one (`to`). A first offer (no `to`)
//   from an unknown connection replaces ours (the other page reloaded or started again); a
//   message for a connection we no longer hold is dropped (routeSignal).
// * Order: each connection handles its descriptions and candidates one at a time, in arrival
//   order; candidates that come before the remote description wait for it.
// * Repair: a failed connection is opened again (the impolite side first, the polite one a
//   little later if nothing came); a re-join after a reconnect opens again every connection
//   that is not connected (resync).
import type { MeshSignal, MeshSignalIn } from '../realtime/events';
import { rtcConfig } from './iceConfig';
import type { PeerLike } from './negotiation';
import { capVideoSenders, videoCap } from './quality';
import { SerialPeer } from './serialPeer';
import type { MediaKindName, MediaTransport, RemoteMap, RemoteTracks } from './tracks';

export type MeshSignalKind = 'offer' | 'answer' | 'candidate';

/** The polite peer of a pair gives way when both offer at once: the smaller user id. Both
 * sides compute the same answer, so exactly one of them is polite. */
export function isPolite(self: string, other: string): boolean {
  return self < other;
}

/** Connections to open and to close to go from `current` to `wanted` (user ids). */
export function peerChanges(current: Iterable<string>, wanted: Iterable<string>): { open: string[]; close: string[] } {
  const have = new Set(current);
  const want = new Set(wanted);
  return {
    open: [...want].filter((id) => !have.has(id)),
    close: [...have].filter((id) => !want.has(id)),
  };
}

/** What to do with a message, given our connection with its sender (if any):
 * `accept` (it is for this connection), `adopt` (the first word from their side of a
 * connection we opened), `create`/`replace` (a new connection of theirs: open ours for it),
 * `drop` (meant for a connection that is gone). */
export type Route = 'accept' | 'adopt' | 'create' | 'replace' | 'drop';

export function routeSignal(
  peer: { id: string; remoteId: string | null } | undefined,
  kind: MeshSignalKind,
  msg: Pick<MeshSignal, 'from' | 'to'>,
): Route {
  const fresh = kind === 'offer' && !msg.to;
  if (!peer) return fresh ? 'create' : 'drop';
  if (msg.to && msg.to !== peer.id) return 'drop';
  if (peer.remoteId === null) return 'adopt';
  if (peer.remoteId === msg.from) return 'accept';
  return fresh ? 'replace' : 'drop';
}

/** What a connection needs of an RTCPeerConnection (tests use a fake). */
export type MeshPeerLike = PeerLike & Pick<RTCPeerConnection, 'addTrack' | 'onnegotiationneeded'>;

/** Sends one message to `userId` (rejects when the server refuses it). */
export type MeshSend = (kind: MeshSignalKind, userId: string, signal: MeshSignal) => Promise<void>;

export interface LocalTracks {
  tracks: readonly MediaStreamTrack[];
  stream: MediaStream;
}

export type Sending = Record<MediaKindName, boolean>;

const KINDS: MediaKindName[] = ['audio', 'video'];

const newConnectionId = (): string =>
  typeof crypto !== 'undefined' && 'randomUUID' in crypto ? crypto.randomUUID() : Math.random().toString(36).slice(2);

/** One connection with one other participant. */
export class MeshPeer extends SerialPeer<MeshPeerLike> {
  /** Their connection, once they said something (null: we offered, no word back yet). */
  remoteId: string | null;
  /** A colliding offer of theirs was ignored (we are impolite): its candidates may fail. */
  private ignoreOffer = false;
  /** Our last offer did not reach them (not connected yet): their offer wins a collision. */
  private offerLost = false;
  private readonly pendingCandidates: RTCIceCandidateInit[] = [];
  private readonly own = new Map<MediaKindName, { sender: RTCRtpSender; track: MediaStreamTrack }>();
  private refused = false;
  private receiveVideo = true;

  constructor(
    readonly userId: string,
    pc: MeshPeerLike,
    private readonly polite: boolean,
    private readonly send: MeshSend,
    private readonly hooks: { onRemoteChange(): void; onState(peer: MeshPeer): void },
    remoteId: string | null = null,
    readonly id: string = newConnectionId(),
  ) {
    super(pc);
    this.remoteId = remoteId;
    pc.onnegotiationneeded = () => this.enqueue(() => this.offer());
    pc.onicecandidate = (e) => {
      if (this.closed || !e.candidate || !e.candidate.candidate) return;
      // A lost candidate is not fatal (others, or the next negotiation, cover it).
      this.signal('candidate', { candidate: e.candidate.toJSON() }).catch(() => {});
    };
    pc.ontrack = () => !this.closed && hooks.onRemoteChange();
    pc.onconnectionstatechange = () => !this.closed && hooks.onState(this);
  }

  /** Audio-only (`on` false): every video transceiver stops receiving (sendonly, or inactive
   * when we send no video), which renegotiates, and the other side stops sending it. */
  setReceiveVideo(on: boolean): void {
    if (this.closed) return;
    this.receiveVideo = on;
    this.applyReceiveVideo();
  }

  private applyReceiveVideo(): void {
    const sends = this.own.has('video');
    for (const t of this.pc.getTransceivers()) {
      if (t.receiver.track.kind !== 'video' || t.currentDirection === 'stopped') continue;
      const mine = sends && t.sender === this.own.get('video')?.sender;
      const want: RTCRtpTransceiverDirection = this.receiveVideo ? (mine ? 'sendrecv' : 'recvonly') : mine ? 'sendonly' : 'inactive';
      if (t.direction !== want) t.direction = want;
    }
  }

  /** Our tracks (each sent or held back as `sending` says); a receive-only transceiver for a
   * kind we do not have, so that this connection offers and receives it all the same. */
  addLocal(local: LocalTracks | null, sending: Sending): void {
    for (const kind of KINDS) {
      const track = local?.tracks.find((t) => t.kind === kind);
      if (track && local) {
        const sender = this.pc.addTrack(track, local.stream);
        this.own.set(kind, { sender, track });
        if (!sending[kind]) void sender.replaceTrack(null);
      } else {
        this.pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
    this.applyReceiveVideo();
  }

  /** Mic or camera off: nothing of it leaves this browser (no silence, no black frames). */
  setSending(kind: MediaKindName, on: boolean): void {
    const own = this.own.get(kind);
    if (!own || this.closed) return;
    const want = on ? own.track : null;
    if (own.sender.track !== want) own.sender.replaceTrack(want).catch(() => {});
  }

  /** A message from their side (already routed to this connection). */
  receive(kind: MeshSignalKind, msg: MeshSignal): void {
    this.enqueue(async () => {
      if (kind === 'candidate') {
        if (!msg.candidate?.candidate) return;
        if (this.pc.remoteDescription) await this.addRemoteCandidate(msg.candidate);
        else this.pendingCandidates.push(msg.candidate);
        return;
      }
      if (!msg.sdp) return;
      if (kind === 'answer') {
        // A late answer to an offer we rolled back: nothing to apply.
        if (this.pc.signalingState !== 'have-local-offer') return;
        await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      } else {
        const collision = this.pc.signalingState !== 'stable';
        this.ignoreOffer = collision && !this.polite && !this.offerLost;
        if (this.ignoreOffer) return;
        // Polite (or our offer never arrived): setRemoteDescription rolls ours back.
        await this.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        // Transceivers their offer created receive video unless we are audio-only.
        this.applyReceiveVideo();
      }
      for (const c of this.pendingCandidates.splice(0)) await this.addRemoteCandidate(c);
      if (kind === 'offer') {
        await this.pc.setLocalDescription();
        await this.signal('answer', { sdp: this.pc.localDescription?.sdp ?? '' });
      }
      this.hooks.onRemoteChange();
    });
  }

  /** What we receive from them: the first receiving track of each kind. */
  remote(): RemoteTracks<MediaStreamTrack> {
    const out: RemoteTracks<MediaStreamTrack> = {};
    for (const t of this.pc.getTransceivers()) {
      if (t.currentDirection !== 'sendrecv' && t.currentDirection !== 'recvonly') continue;
      const kind = t.receiver.track.kind === 'video' ? 'video' : 'audio';
      out[kind] ??= t.receiver.track;
    }
    return out;
  }

  protected detach(): void {
    this.pc.onnegotiationneeded = null;
  }

  /** A description the browser refused: this connection is no good, open another. */
  protected stepFailed(err: unknown): void {
    console.warn(`[media] mesh connection with ${this.userId}: ${String(err)}`);
    this.refused = true;
    this.hooks.onState(this);
  }

  private async offer(): Promise<void> {
    // Not stable: the browser asks again once it is, if there is still something to offer.
    if (this.pc.signalingState !== 'stable') return;
    await this.pc.setLocalDescription();
    try {
      await this.signal('offer', { sdp: this.pc.localDescription?.sdp ?? '' });
      this.offerLost = false;
    } catch {
      // They have no socket in the room yet: when they come, their offer is taken.
      this.offerLost = true;
    }
  }

  private signal(kind: MeshSignalKind, body: Omit<MeshSignal, 'from' | 'to'>): Promise<void> {
    const msg: MeshSignal = { from: this.id, ...body };
    if (this.remoteId) msg.to = this.remoteId;
    return this.send(kind, this.userId, msg);
  }


  /** Broken beyond repair: failed, or a description the browser refused. */
  get broken(): boolean {
    return this.refused || this.pc.connectionState === 'failed' || this.pc.connectionState === 'closed';
  }
}

export interface MeshOptions {
  self: string;
  iceServers: RTCIceServer[];
  local: LocalTracks | null;
  sending: Sending;
  send: MeshSend;
  /** Audio-only when false (see MeshPeer.setReceiveVideo). */
  receiveVideo?: boolean;
  /** The uplink budget (kbit/s) shared by our video senders to every peer. */
  uplinkKbps?: number;
  onRemoteChange(): void;
  /** Makes a peer connection (tests pass a fake). */
  createPeerConnection?: (config: RTCConfiguration) => MeshPeerLike;
}

/** Delay before opening a failed connection again: the impolite side first. */
const REOPEN_MS = { impolite: 1000, polite: 4000 };

/** Every connection of this page in one room. */
export class MeshSession implements MediaTransport {
  readonly peers = new Map<string, MeshPeer>();
  private wanted = new Set<string>();
  private readonly reopenTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private sending: Sending;
  private closed = false;

  constructor(private readonly options: MeshOptions) {
    this.sending = { ...options.sending };
  }

  /** The other participants of the room: connections opened and closed to match. */
  sync(userIds: Iterable<string>): void {
    if (this.closed) return;
    this.wanted = new Set([...userIds].filter((id) => id !== this.options.self));
    const { open, close } = peerChanges(this.peers.keys(), this.wanted);
    close.forEach((id) => this.drop(id));
    open.forEach((id) => this.open(id));
    if (close.length > 0) this.options.onRemoteChange();
  }

  /** After a re-join: every connection that is not up is opened again. */
  resync(): void {
    for (const [id, peer] of this.peers) {
      if (peer.pc.connectionState !== 'connected') this.open(id);
    }
  }

  /** A `webrtc:*` message from another participant. */
  receive(kind: MeshSignalKind, msg: MeshSignalIn): void {
    const sender = msg.senderUserId;
    if (this.closed || sender === this.options.self) return;
    const current = this.peers.get(sender);
    const route = routeSignal(current, kind, msg);
    if (route === 'drop') return;
    const peer = current && (route === 'accept' || route === 'adopt') ? current : this.open(sender, msg.from);
    peer.remoteId = msg.from;
    peer.receive(kind, msg);
  }

  remote(): RemoteMap<MediaStreamTrack> {
    const map: RemoteMap<MediaStreamTrack> = {};
    for (const [id, peer] of this.peers) {
      const tracks = peer.remote();
      if (tracks.audio || tracks.video) map[id] = tracks;
    }
    return map;
  }

  setSending(kind: MediaKindName, on: boolean): void {
    this.sending[kind] = on;
    this.peers.forEach((p) => p.setSending(kind, on));
  }

  /** Audio-only on every connection, present and future. */
  setReceiveVideo(on: boolean): void {
    this.options.receiveVideo = on;
    this.peers.forEach((p) => p.setReceiveVideo(on));
  }

  /** Each peer's share of the uplink budget: re-applied whenever the number of peers changes. */
  private applyBudget(): void {
    const budget = this.options.uplinkKbps;
    if (!budget || this.closed) return;
    const cap = videoCap(budget, this.peers.size);
    this.peers.forEach((p) => void capVideoSenders(p.pc, cap));
  }

  close(): void {
    this.closed = true;
    [...this.peers.keys()].forEach((id) => this.drop(id));
  }

  /** A new connection with `userId` (replacing any), answering `remoteId`'s offer if given. */
  private open(userId: string, remoteId: string | null = null): MeshPeer {
    this.drop(userId);
    const create = this.options.createPeerConnection ?? ((config) => new RTCPeerConnection(config));
    const pc = create(rtcConfig(this.options.iceServers));
    const peer = new MeshPeer(userId, pc, isPolite(this.options.self, userId), this.options.send, {
      onRemoteChange: () => this.peers.get(userId) === peer && this.options.onRemoteChange(),
      onState: (p) => this.stateChanged(p),
    }, remoteId);
    this.peers.set(userId, peer);
    if (this.options.receiveVideo === false) peer.setReceiveVideo(false);
    peer.addLocal(this.options.local, this.sending);
    this.applyBudget();
    return peer;
  }

  private drop(userId: string): void {
    clearTimeout(this.reopenTimers.get(userId));
    this.reopenTimers.delete(userId);
    const had = this.peers.get(userId);
    had?.close();
    this.peers.delete(userId);
    if (had) this.applyBudget();
  }

  private stateChanged(peer: MeshPeer): void {
    if (this.peers.get(peer.userId) !== peer) return;
    this.options.onRemoteChange();
    if (!peer.broken || this.reopenTimers.has(peer.userId)) return;
    const delay = isPolite(this.options.self, peer.userId) ? REOPEN_MS.polite : REOPEN_MS.impolite;
    this.reopenTimers.set(
      peer.userId,
      setTimeout(() => {
        this.reopenTimers.delete(peer.userId);
        // Still the failed one (no new offer of theirs replaced it) and still wanted.
        if (this.peers.get(peer.userId) === peer && this.wanted.has(peer.userId)) this.open(peer.userId);
      }, delay),
    );
  }
}
