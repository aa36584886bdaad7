// Just enough of RTCPeerConnection's signaling state machine for the negotiation tests (SFU and
// mesh). `implicitRollback`: an offer in have-local-offer rolls ours back, as browsers do.

interface FakeTransceiver {
  mid: string | null;
  currentDirection: RTCRtpTransceiverDirection | null;
  direction: RTCRtpTransceiverDirection;
  receiver: { track: { kind: string; id: string } };
  sender: { track: unknown; replaceTrack(t: unknown): Promise<void> };
}

export class FakePc {
  signalingState: RTCSignalingState = 'stable';
  connectionState: RTCPeerConnectionState = 'new';
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  onicecandidate: ((e: unknown) => void) | null = null;
  ontrack: ((e: unknown) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  onnegotiationneeded: (() => void) | null = null;
  transceivers: FakeTransceiver[] = [];
  added: RTCIceCandidateInit[] = [];
  log: string[] = [];
  closed = false;
  private offers = 0;
  private stableLocal: { type: string; sdp: string } | null = null;

  constructor(private readonly implicitRollback = false) {}

  async setLocalDescription(desc?: { type: string }) {
    await Promise.resolve();
    if (desc?.type === 'rollback') {
      this.signalingState = 'stable';
      this.localDescription = this.stableLocal;
      this.log.push('rollback');
      return;
    }
    if (this.signalingState === 'stable') {
      this.localDescription = { type: 'offer', sdp: `offer-${++this.offers}` };
      this.signalingState = 'have-local-offer';
    } else if (this.signalingState === 'have-remote-offer') {
      this.localDescription = { type: 'answer', sdp: `answer-to-${this.remoteDescription?.sdp}` };
      this.stableLocal = this.localDescription;
      this.signalingState = 'stable';
      this.negotiated();
    } else {
      throw Object.assign(new Error('bad state'), { name: 'InvalidStateError' });
    }
    this.log.push(`local:${this.localDescription.type}`);
  }

  async setRemoteDescription(desc: { type: string; sdp: string }) {
    await Promise.resolve();
    if (desc.type === 'offer') {
      if (this.implicitRollback && this.signalingState === 'have-local-offer') {
        this.signalingState = 'stable';
        this.localDescription = this.stableLocal;
        this.log.push('rollback');
      }
      if (this.signalingState !== 'stable') throw Object.assign(new Error('glare'), { name: 'InvalidStateError' });
      this.signalingState = 'have-remote-offer';
    } else {
      if (this.signalingState !== 'have-local-offer') throw Object.assign(new Error('no offer'), { name: 'InvalidStateError' });
      this.signalingState = 'stable';
      this.stableLocal = this.localDescription;
      this.negotiated();
    }
    this.remoteDescription = desc;
    this.log.push(`remote:${desc.type}:${desc.sdp}`);
  }

  restartIce() {
    this.log.push('restartIce');
  }

  async addIceCandidate(c: RTCIceCandidateInit) {
    if (!this.remoteDescription) throw new Error('no remote description');
    this.added.push(c);
  }

  /** `what`: a track, or a kind (`addTransceiver('video', {direction})`). */
  addTransceiver(what: { kind: string } | string, init?: { direction?: RTCRtpTransceiverDirection }) {
    const kind = typeof what === 'string' ? what : what.kind;
    const n = this.transceivers.length;
    const sender = {
      track: typeof what === 'string' ? null : (what as unknown),
      async replaceTrack(t: unknown) {
        sender.track = t;
      },
    };
    const t: FakeTransceiver = {
      mid: String(n),
      currentDirection: null,
      direction: init?.direction ?? 'sendrecv',
      receiver: { track: { kind, id: `recv-${n}` } },
      sender,
    };
    this.transceivers.push(t);
    return t;
  }

  addTrack(track: { kind: string }) {
    return this.addTransceiver(track).sender;
  }

  /** A description exchange completed: every transceiver is now negotiated. */
  private negotiated() {
    for (const t of this.transceivers) t.currentDirection = t.direction;
  }

  getTransceivers() {
    return this.transceivers;
  }

  close() {
    this.closed = true;
  }

  candidate(text: string) {
    this.onicecandidate?.({ candidate: { candidate: text, toJSON: () => ({ candidate: text, sdpMid: '0', sdpMLineIndex: 0 }) } });
  }
}

