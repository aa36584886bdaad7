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
// * Network switches: once connected, a connection that stays `disconnected` a moment, goes
//   `failed`, or sees the network change (`networkChanged()`: the `online` event, a
//   `navigator.connection` change) restarts ICE: `restartIce()` and our offer, through the
//   usual `sfu:offer` (a receive-only session offers too). The server may restart first (its
//   offer carries new credentials): then ours is dropped. Only a connection still not back
//   `RESTART_GIVE_UP_MS` after it broke ends the session.
// * A lost socket (its network went away too): the session stays (`suspend()`); what was
//   sent on the dead socket is lost. Once a new socket took the session over (`sfu:resume`),
//   `resume()` puts the signaling back in step: an offer of ours left unanswered is rolled
//   back and sent again, and ICE restarts unless the connection is up or the server's offer
//   (sent again on the resume) already restarted it.
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
  | 'restartIce'
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
/** `disconnected` this long (often a blip that heals by itself) before we restart ICE. */
const DISCONNECTED_RESTART_MS = 2000;
/** At most one restart offer this often (the server allows 5 offers, then one per 2 s). */
const MIN_RESTART_INTERVAL_MS = 4000;
/** A broken connection not back after this long ends the session (the server's own grace is
 * `ice_restart_grace_ms`, 20 s by default; it then closes the session itself). */
const RESTART_GIVE_UP_MS = 25000;

/** The `a=ice-ufrag` of an SDP: a new one means an ICE restart. */
export const iceUfrag = (sdp: string | undefined): string | null =>
  /^a=ice-ufrag:(.+)$/m.exec(sdp ?? '')?.[1]?.trim() ?? null;

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
  /** Connected once: a later break restarts ICE instead of ending the session. */
  private everConnected = false;
  /** The next offer of ours restarts ICE. */
  private restartWanted = false;
  private lastRestartAt = -Infinity;
  /** ICE restarts this session offered (tests, timeline). */
  restarts = 0;
  private disconnectedTimer: ReturnType<typeof setTimeout> | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private giveUpTimer: ReturnType<typeof setTimeout> | undefined;
  /** The server's ICE ufrag when the socket was lost (`suspend`). */
  private ufragAtSuspend: string | null = null;

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
      this.watchConnection(state);
    };
  }

  /** Adds our tracks as send-only transceivers and sends our offer; `encodings` gives a
   * track's simulcast layers (none: one encoding), `codecs` the codec order to offer for a
   * track (none: the browser's). */
  publish(
    tracks: readonly MediaStreamTrack[],
    stream?: MediaStream,
    encodings?: (track: MediaStreamTrack) => RTCRtpEncodingParameters[] | undefined,
    codecs?: (track: MediaStreamTrack) => RTCRtpCodec[] | undefined,
  ): void {
    for (const track of tracks) {
      const init: RTCRtpTransceiverInit = { direction: 'sendonly' };
      if (stream) init.streams = [stream];
      const layers = encodings?.(track);
      if (layers) init.sendEncodings = layers;
      const transceiver = this.pc.addTransceiver(track, init);
      const order = codecs?.(track);
      if (order) {
        try {
          transceiver.setCodecPreferences(order);
        } catch {
          // A browser that refuses the order offers its own: plain Opus, which works.
        }
      }
      this.own.add(transceiver);
    }
    if (tracks.length > 0) {
      this.offerWanted = true;
      this.enqueue(() => this.makeOffer());
    }
  }

  /** The network changed (`online`, a `navigator.connection` change): restart ICE. */
  networkChanged(): void {
    if (this.everConnected) this.restartIce();
  }

  /** Offers an ICE restart now, or as soon as the restart rate allows. */
  restartIce(): void {
    if (this.closed || this.restartWanted) return;
    const wait = this.lastRestartAt + MIN_RESTART_INTERVAL_MS - Date.now();
    if (wait > 0) {
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => this.restartIce(), wait);
      return;
    }
    this.restartWanted = true;
    this.offerWanted = true;
    this.enqueue(() => this.makeOffer());
  }

  /** Connected at least once: worth keeping across a lost socket. */
  get connectedOnce(): boolean {
    return this.everConnected;
  }

  /** The socket was lost: what the server sends until `resume()` does not reach us. */
  suspend(): void {
    this.ufragAtSuspend = iceUfrag(this.pc.remoteDescription?.sdp);
  }

  /** A new socket took the session over (`sfu:resume`): fresh ICE servers (TURN credentials)
   * for the connection, then the signaling back in step (see the top of this file). */
  resume(iceServers?: RTCIceServer[]): void {
    this.enqueue(async () => {
      const pc = this.pc as PeerLike & Partial<Pick<RTCPeerConnection, 'setConfiguration' | 'getConfiguration'>>;
      if (iceServers && pc.setConfiguration && pc.getConfiguration) {
        try {
          pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
        } catch {
          // Refused (a browser that will not change them): the old ones still serve.
        }
      }
      if (this.pc.signalingState === 'have-local-offer') {
        // Sent on the lost socket, or refused by it: the server answers a new one.
        await this.pc.setLocalDescription({ type: 'rollback' });
        this.offerWanted = this.own.size > 0 || this.restartWanted;
      }
      const serverRestarted = iceUfrag(this.pc.remoteDescription?.sdp) !== this.ufragAtSuspend;
      if (this.everConnected && !serverRestarted && this.pc.connectionState !== 'connected') {
        this.restartWanted = true;
        this.offerWanted = true;
      }
      if (this.offerWanted) await this.makeOffer();
    });
  }

  /** A server `sfu:offer`: roll back our own offer if one is out, apply, answer. */
  handleOffer(sdp: string, tracks: SfuTrackInfo[] | undefined): void {
    this.enqueue(async () => {
      if (this.pc.signalingState !== 'stable') {
        // Polite side of a collision: our offer gives way (it is sent again below).
        await this.pc.setLocalDescription({ type: 'rollback' });
        this.offerWanted = this.own.size > 0 || this.restartWanted;
      }
      const before = iceUfrag(this.pc.remoteDescription?.sdp);
      if (this.restartWanted && before && iceUfrag(sdp) !== before) {
        // The server restarts ICE itself: answering it is our restart too.
        this.restartWanted = false;
        this.offerWanted &&= this.own.size > 0;
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
    clearTimeout(this.disconnectedTimer);
    clearTimeout(this.restartTimer);
    clearTimeout(this.giveUpTimer);
  }

  /** Before the first connection a failure ends the session (the server's connect deadline
   * would); after it, a break is a network switch: restart ICE and give it time. */
  private watchConnection(state: RTCPeerConnectionState): void {
    if (state === 'connected') {
      this.everConnected = true;
      clearTimeout(this.disconnectedTimer);
      clearTimeout(this.giveUpTimer);
      this.disconnectedTimer = undefined;
      this.giveUpTimer = undefined;
      return;
    }
    if (state !== 'disconnected' && state !== 'failed') return;
    if (!this.everConnected) {
      if (state === 'failed') this.fail('connectionFailed');
      return;
    }
    this.giveUpTimer ??= setTimeout(() => this.fail('connectionFailed'), RESTART_GIVE_UP_MS);
    if (state === 'failed') {
      clearTimeout(this.disconnectedTimer);
      this.restartIce();
    } else {
      clearTimeout(this.disconnectedTimer);
      this.disconnectedTimer = setTimeout(() => {
        if (this.pc.connectionState === 'disconnected') this.restartIce();
      }, DISCONNECTED_RESTART_MS);
    }
  }

  protected stepFailed(err: unknown): void {
    this.fail(codeOf(err));
  }

  private async makeOffer(): Promise<void> {
    if (this.closed || this.pc.signalingState !== 'stable') return;
    this.offerWanted = false;
    const restarting = this.restartWanted;
    if (restarting) {
      this.pc.restartIce();
      this.lastRestartAt = Date.now();
    }
    await this.pc.setLocalDescription();
    const sdp = this.pc.localDescription?.sdp ?? '';
    try {
      await this.send.offer(sdp);
      if (restarting) {
        this.restartWanted = false;
        this.restarts += 1;
      }
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
