// What both media transports do with an RTCPeerConnection (negotiation.ts for the SFU,
// mesh.ts per participant): every step that touches its descriptions or candidates runs one
// at a time, in the order the messages came; a remote candidate the connection refuses is
// skipped; closing detaches the handlers first, so nothing of a closed connection reaches the app.

/** What this needs of an RTCPeerConnection (tests use fakes). */
export type SerialPeerLike = Pick<
  RTCPeerConnection,
  'addIceCandidate' | 'close' | 'onicecandidate' | 'ontrack' | 'onconnectionstatechange'
>;

export abstract class SerialPeer<P extends SerialPeerLike> {
  protected closed = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly pc: P) {}

  /** A step threw (not after close): the subclass decides what that means. */
  protected abstract stepFailed(err: unknown): void;

  /** Ends it, the peer connection too. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }

  /** Subclasses drop their own timers and handlers here. */
  protected detach(): void {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves when every step queued so far has run (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  protected enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await step();
      } catch (err) {
        if (!this.closed) this.stepFailed(err);
      }
    });
  }

  protected async addRemoteCandidate(c: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(c);
    } catch {
      // A candidate for an m-line that went away, of an offer we ignored, or malformed: skip it.
    }
  }
}
