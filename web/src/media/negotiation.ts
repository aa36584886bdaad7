// One SFU session: the browser's side of the signaling in docs/SFU.md, over one
// RTCPeerConnection. Everything that touches the connection's descriptions runs one step at
// a time, in the order the events came (a queue), so a server offer that arrives while our
// own offer is out is handled after the server has refused ours.
//
// * Publishing: one send-only transceiver per local track, then our offer (`sfu:offer`);
//   the server answers with `sfu:answer`.
// * From then on the server offers (people come and go): we answer every `sfu:offer`.
// * Collisions: the server is impolite (refuses our offer with SFU_NEGOTIATION_IN_PROGRESS),
//   we are polite: roll ours back, answer theirs, send ours again once stable.
// * Trickle ICE: our candidates go out only once the server holds a description of ours (its
//   ack of our first offer or answer); the server's candidates wait for its description.
import type { SfuTrackInfo } from '../realtime/events';
import { SerialPeer } from './serialPeer';
import { remoteTracksFrom, type MediaKindName, type MediaTransport, type ReceiverView, type RemoteMap } from './tracks';

/** What the session needs of an RTCPeerConnection (tests use a fake). */
export type PeerLike = Pick<
  RTCPeerConnection,
  | 'signalingState'
  | 'connectionState'
  | 'remoteDescription'
  | 'localDescription'
  | 'setLocalDescription'
  | 'setRemoteDescription'
  | 'addIceCandidate'
  | 'addTransceiver'
  | 'getTransceivers'
  | 'close'
  | 'onicecandidate'
  | 'ontrack'
  | 'onconnectionstatechange'
>;

export interface SignalSender {
  offer(sdp: string): Promise<void>;
  answer(sdp: string): Promise<void>;
  candidate(candidate: RTCIceCandidateInit): Promise<void>;
}

export interface SessionHooks {
  /** The received tracks or their labels changed: recompute who has which media. */
  onRemoteChange(): void;
  /** The session cannot go on (an error code or a connection state): start a new one. */
  onFailure(reason: string): void;
  onConnectionState?(state: RTCPeerConnectionState): void;
}

/** Error codes of the server that mean "try the same thing again later". */
const RETRY_LATER = new Set(['SFU_RATE_LIMITED']);
const COLLISION = 'SFU_NEGOTIATION_IN_PROGRESS';
const RATE_LIMIT_RETRY_MS = 1500;

const codeOf = (err: unknown): string => (err as { code?: string } | null)?.code ?? String(err);

export class SfuSession extends SerialPeer<PeerLike> implements MediaTransport {
  /** The server's `tracks` of its last description (null before the first). */
  labels: SfuTrackInfo[] | null = null;
  private readonly streamIds = new Map<string, string>();
  private readonly own = new Set<RTCRtpTransceiver>();
  /** The server holds a description of ours: our candidates may go. */
  private serverHasOurs = false;
  private readonly localCandidates: RTCIceCandidateInit[] = [];
  private readonly remoteCandidates: RTCIceCandidateInit[] = [];
  /** Our offer was refused for a collision (or never sent): send it once stable. */
  private offerWanted = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    pc: PeerLike,
    private readonly send: SignalSender,
    private readonly hooks: SessionHooks,
    /** Our user id: the server never sends us our own tracks, but never map them anyway. */
    private readonly self?: string,
  ) {
    super(pc);
    pc.onicecandidate = (e) => {
      if (this.closed || !e.candidate || !e.candidate.candidate) return;
      const c = e.candidate.toJSON();
      if (this.serverHasOurs) this.sendCandidate(c);
      else this.localCandidates.push(c);
    };
    pc.ontrack = (e) => {
      const mid = e.transceiver?.mid;
      const id = e.streams[0]?.id;
      if (mid && id) this.streamIds.set(mid, id);
      if (!this.closed) this.hooks.onRemoteChange();
    };
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      const state = pc.connectionState;
      this.hooks.onConnectionState?.(state);
      if (state === 'failed') this.fail('connectionFailed');
    };
  }

  /** Adds our tracks as send-only transceivers and sends our offer. */
  publish(tracks: readonly MediaStreamTrack[], stream?: MediaStream): void {
    for (const track of tracks) {
      const init: RTCRtpTransceiverInit = { direction: 'sendonly' };
      if (stream) init.streams = [stream];
      this.own.add(this.pc.addTransceiver(track, init));
    }
    if (tracks.length > 0) {
      this.offerWanted = true;
      this.enqueue(() => this.makeOffer());
    }
  }

  /** A server `sfu:offer`: roll back our own offer if one is out, apply, answer. */
  handleOffer(sdp: string, tracks: SfuTrackInfo[] | undefined): void {
    this.enqueue(async () => {
      if (this.pc.signalingState !== 'stable') {
        // Polite side of a collision: our offer gives way (it is sent again below).
        await this.pc.setLocalDescription({ type: 'rollback' });
        this.offerWanted = this.own.size > 0;
      }
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      if (tracks) this.labels = tracks;
      await this.flushRemoteCandidates();
      await this.pc.setLocalDescription();
      const answer = this.pc.localDescription?.sdp ?? '';
      this.hooks.onRemoteChange();
      await this.send.answer(answer);
      this.ourDescriptionArrived();
      if (this.offerWanted) await this.makeOffer();
    });
  }

  /** A server `sfu:answer` to our offer (a late one, after a rollback, is ignored). */
  handleAnswer(sdp: string, tracks: SfuTrackInfo[] | undefined): void {
    this.enqueue(async () => {
      if (this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      if (tracks) this.labels = tracks;
      await this.flushRemoteCandidates();
      this.hooks.onRemoteChange();
    });
  }

  /** A server `sfu:candidate`: added once the server's description is in. */
  handleCandidate(candidate: RTCIceCandidateInit): void {
    if (!candidate.candidate) return;
    this.enqueue(async () => {
      if (this.pc.remoteDescription) await this.addRemoteCandidate(candidate);
      else this.remoteCandidates.push(candidate);
    });
  }

  /** What the connection receives, for remoteTracksFrom(). */
  receivers(): ReceiverView<MediaStreamTrack>[] {
    return this.pc.getTransceivers().map((t) => ({
      mid: t.mid,
      track: t.receiver.track,
      kind: t.receiver.track.kind === 'video' ? 'video' : 'audio',
      streamId: t.mid ? (this.streamIds.get(t.mid) ?? null) : null,
      sending: this.own.has(t),
    }));
  }

  remote(): RemoteMap<MediaStreamTrack> {
    return remoteTracksFrom(this.receivers(), this.labels, this.self);
  }

  /** The server stops forwarding a muted track (`media:toggle-*`); `track.enabled` does the rest. */
  setSending(_kind: MediaKindName, _on: boolean): void {}

  protected detach(): void {
    clearTimeout(this.retryTimer);
  }

  protected stepFailed(err: unknown): void {
    this.fail(codeOf(err));
  }

  private async makeOffer(): Promise<void> {
    if (this.closed || this.pc.signalingState !== 'stable') return;
    this.offerWanted = false;
    await this.pc.setLocalDescription();
    const sdp = this.pc.localDescription?.sdp ?? '';
    try {
      await this.send.offer(sdp);
    } catch (err) {
      const code = codeOf(err);
      if (code === COLLISION) {
        // The server's offer is on its way; handleOffer rolls ours back and sends it again.
        this.offerWanted = true;
        return;
      }
      if (RETRY_LATER.has(code)) {
        this.offerWanted = true;
        await this.pc.setLocalDescription({ type: 'rollback' });
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.enqueue(() => this.makeOffer()), RATE_LIMIT_RETRY_MS);
        return;
      }
      throw err;
    }
    this.ourDescriptionArrived();
  }

  private ourDescriptionArrived(): void {
    if (this.serverHasOurs) return;
    this.serverHasOurs = true;
    for (const c of this.localCandidates.splice(0)) this.sendCandidate(c);
  }

  private sendCandidate(c: RTCIceCandidateInit): void {
    // A lost candidate is not fatal (others, or the next negotiation, cover it).
    this.send.candidate(c).catch(() => {});
  }

  private async flushRemoteCandidates(): Promise<void> {
    for (const c of this.remoteCandidates.splice(0)) await this.addRemoteCandidate(c);
  }

  private fail(reason: string): void {
    if (this.closed) return;
    this.hooks.onFailure(reason);
  }
}
