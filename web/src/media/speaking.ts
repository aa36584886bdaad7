// Speaking detection from audio levels: the pure part (level of a sample block, smoothing,
// hysteresis) is here; audioLevels.ts feeds it from Web Audio AnalyserNodes.

/** RMS level (0…1) of an AnalyserNode's byte time-domain data (128 = silence). */
export function rmsLevel(samples: ArrayLike<number>): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = (samples[i] - 128) / 128;
    sum += v * v;
  }
  return Math.min(1, Math.sqrt(sum / samples.length));
}

export interface SpeakingOptions {
  /** Smoothed level above which a person starts "speaking". */
  onThreshold: number;
  /** Smoothed level below which they stop (lower than `onThreshold`: no flicker). */
  offThreshold: number;
  /** Smoothing time constants (ms): fast rise, slow fall. */
  attackMs: number;
  releaseMs: number;
  /** Stay "speaking" at least this long after the level fell (pauses between words). */
  holdMs: number;
}

export const DEFAULT_SPEAKING: SpeakingOptions = {
  onThreshold: 0.04,
  offThreshold: 0.025,
  attackMs: 60,
  releaseMs: 350,
  holdMs: 400,
};

export interface SpeakingState {
  level: number;
  speaking: boolean;
  /** Time (ms) the smoothed level last was above `offThreshold`. */
  lastLoud: number;
}

export const SILENT: SpeakingState = { level: 0, speaking: false, lastLoud: -Infinity };

/** Exponential smoothing with separate rise and fall time constants. */
export function smooth(previous: number, sample: number, dtMs: number, attackMs: number, releaseMs: number): number {
  const tau = sample > previous ? attackMs : releaseMs;
  const alpha = tau <= 0 ? 1 : 1 - Math.exp(-Math.max(0, dtMs) / tau);
  return previous + (sample - previous) * alpha;
}

/** One step: a new raw level at time `now` (ms), `dtMs` after the previous one. */
export function nextSpeaking(
  state: SpeakingState,
  sample: number,
  now: number,
  dtMs: number,
  options: SpeakingOptions = DEFAULT_SPEAKING,
): SpeakingState {
  const level = smooth(state.level, sample, dtMs, options.attackMs, options.releaseMs);
  const lastLoud = level >= options.offThreshold ? now : state.lastLoud;
  let speaking = state.speaking;
  if (!speaking && level >= options.onThreshold) speaking = true;
  else if (speaking && level < options.offThreshold && now - lastLoud >= options.holdMs) speaking = false;
  return { level, speaking, lastLoud };
}
