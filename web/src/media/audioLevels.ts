// Audio levels of the local microphone and of every remote participant: one AudioContext, an
// AnalyserNode per audio track, sampled ten times a second; speaking.ts turns the levels into
// a smoothed on/off per person. Nothing is played through Web Audio (the analysers feed a
// silent gain so the graph keeps running); the <audio> elements play the sound.
import { DEFAULT_SPEAKING, SILENT, nextSpeaking, rmsLevel, type SpeakingState } from './speaking';

const SAMPLE_MS = 100;

interface Watch {
  track: MediaStreamTrack;
  source: MediaStreamAudioSourceNode;
  analyser: AnalyserNode;
  buffer: Uint8Array<ArrayBuffer>;
  state: SpeakingState;
}

export class AudioLevels {
  private ctx: AudioContext | null = null;
  private sink: GainNode | null = null;
  private readonly watches = new Map<string, Watch>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private last = 0;
  private speaking = new Set<string>();

  constructor(private readonly onChange: (speaking: ReadonlySet<string>) => void) {}

  /** Watches exactly these tracks (key → audio track); others stop being watched. */
  sync(tracks: ReadonlyMap<string, MediaStreamTrack>): void {
    for (const [key, w] of this.watches) {
      if (tracks.get(key) !== w.track) this.unwatch(key);
    }
    for (const [key, track] of tracks) {
      if (!this.watches.has(key)) this.watch(key, track);
    }
    if (this.watches.size > 0 && !this.timer) {
      this.last = performance.now();
      this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    } else if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.publish();
  }

  /** Browsers start an AudioContext suspended until a user gesture: call from one. */
  resume(): void {
    if (this.ctx && this.ctx.state === 'suspended') void this.ctx.resume().catch(() => {});
  }

  close(): void {
    this.sync(new Map());
    void this.ctx?.close().catch(() => {});
    this.ctx = null;
    this.sink = null;
  }

  private context(): AudioContext | null {
    if (this.ctx) return this.ctx;
    const Ctor = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
    if (!Ctor) return null;
    try {
      this.ctx = new Ctor();
      this.sink = this.ctx.createGain();
      this.sink.gain.value = 0;
      this.sink.connect(this.ctx.destination);
    } catch {
      this.ctx = null;
    }
    return this.ctx;
  }

  private watch(key: string, track: MediaStreamTrack): void {
    const ctx = this.context();
    if (!ctx || !this.sink) return;
    try {
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 512;
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
      analyser.connect(this.sink);
      this.watches.set(key, {
        track,
        source,
        analyser,
        buffer: new Uint8Array(new ArrayBuffer(analyser.fftSize)),
        state: SILENT,
      });
      this.resume();
    } catch {
      // A track Web Audio cannot read (ended already): no indicator for it.
    }
  }

  private unwatch(key: string): void {
    const w = this.watches.get(key);
    if (!w) return;
    this.watches.delete(key);
    try {
      w.source.disconnect();
      w.analyser.disconnect();
    } catch {
      // Already disconnected.
    }
  }

  private sample(): void {
    const now = performance.now();
    const dt = now - this.last;
    this.last = now;
    for (const w of this.watches.values()) {
      const live = w.track.readyState === 'live' && w.track.enabled;
      let level = 0;
      if (live) {
        w.analyser.getByteTimeDomainData(w.buffer);
        level = rmsLevel(w.buffer);
      }
      w.state = nextSpeaking(w.state, level, now, dt, DEFAULT_SPEAKING);
    }
    this.publish();
  }

  private publish(): void {
    const next = new Set<string>();
    for (const [key, w] of this.watches) if (w.state.speaking) next.add(key);
    if (next.size === this.speaking.size && [...next].every((k) => this.speaking.has(k))) return;
    this.speaking = next;
    this.onChange(next);
  }

  /** Current smoothed levels (tests, debugging). */
  levels(): Record<string, number> {
    return Object.fromEntries([...this.watches].map(([k, w]) => [k, Math.round(w.state.level * 1000) / 1000]));
  }
}
