// The media parts of the room page: a video element for a track, the hidden audio players of
// remote participants (with the "enable sound" button when the browser blocks autoplay),
// and the line above the tiles that says what is going on with our camera and microphone.
import { useEffect, useRef } from 'preact/hooks';

import { t } from '../i18n';
import {
  audioBlocked,
  mediaModeNotice,
  mediaNotice,
  mediaPhase,
  registerAudio,
  remoteMedia,
  reportTileHeight,
  videoPaused,
  takeMediaBack,
  unlockAudio,
} from '../media/mediaStore';
import { qualityLevels } from '../media/qualityMonitor';
import { markFirstFrame } from '../media/timeline';
import { DOCTOR_PATH } from '../router';
import { blockedIds } from '../state/blocks';
import { Icon } from './Icon';

type FrameCallbackVideo = HTMLVideoElement & {
  requestVideoFrameCallback?: (cb: () => void) => number;
  cancelVideoFrameCallback?: (handle: number) => void;
};

/** A muted, inline-playing video of one track. `publisher` (remote only) records the time
 * of its first shown frame (timeline.ts). */
export function VideoView(props: { track: MediaStreamTrack; mirrored: boolean; label: string; publisher?: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  const { track, publisher } = props;
  useEffect(() => {
    const el = ref.current as FrameCallbackVideo | null;
    if (!el) return undefined;
    el.srcObject = new MediaStream([track]);
    // Muted inline video may always autoplay; play() covers browsers that wait for it.
    el.play().catch(() => {});
    let handle: number | undefined;
    const firstFrame = () => publisher && markFirstFrame(publisher);
    if (publisher) {
      if (el.requestVideoFrameCallback) handle = el.requestVideoFrameCallback(firstFrame);
      else el.addEventListener('loadeddata', firstFrame, { once: true });
    }
    // How big the picture is shown decides which simulcast layer the SFU sends.
    const sizes =
      publisher && typeof ResizeObserver !== 'undefined'
        ? new ResizeObserver(() => reportTileHeight(publisher, el.clientHeight * (globalThis.devicePixelRatio || 1)))
        : undefined;
    sizes?.observe(el);
    return () => {
      sizes?.disconnect();
      if (publisher) reportTileHeight(publisher, null);
      if (handle !== undefined) el.cancelVideoFrameCallback?.(handle);
      el.removeEventListener('loadeddata', firstFrame);
      el.srcObject = null;
    };
  }, [track, publisher]);
  return (
    <video
      ref={ref}
      class={`tile-video ${props.mirrored ? 'mirrored' : ''}`}
      autoplay
      playsInline
      muted
      aria-label={props.label}
    />
  );
}

/** A tile's connection quality: four bars, coloured by level, named for screen readers and
 * explained in the tooltip ("measuring" until two samples exist). */
export function QualityIndicator({ userId }: { userId: string }) {
  const level = qualityLevels.value[userId] ?? 'unknown';
  const label = t(`quality.${level}`);
  const bars = { good: 4, fair: 3, poor: 2, lost: 0, unknown: 0 }[level];
  return (
    <span
      class={`quality quality-${level}`}
      role="img"
      aria-label={label}
      title={`${label}. ${t(`quality.${level}Hint`)}`}
      data-testid="quality"
      data-level={level}
    >
      {[1, 2, 3, 4].map((n) => (
        <span key={n} class={`quality-bar ${n <= bars ? 'lit' : ''}`} aria-hidden="true" />
      ))}
    </span>
  );
}

/** One <audio> per remote participant with a microphone track; none for people we blocked. */
export function RemoteAudios() {
  const blocked = blockedIds.value;
  const entries = Object.entries(remoteMedia.value).filter(([userId, tracks]) => tracks.audio && !blocked.has(userId));
  return (
    <div class="remote-audio" aria-hidden="true">
      {entries.map(([userId, tracks]) => (
        <RemoteAudio key={userId} userId={userId} track={tracks.audio!} />
      ))}
    </div>
  );
}

function RemoteAudio({ userId, track }: { userId: string; track: MediaStreamTrack }) {
  const ref = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    el.srcObject = new MediaStream([track]);
    const unregister = registerAudio(el);
    return () => {
      unregister();
      el.pause();
      el.srcObject = null;
    };
  }, [track]);
  // No `autoplay`: registerAudio() calls play() itself, to learn when the browser refuses.
  return <audio ref={ref} data-user-id={userId} />;
}

/** What is happening with our media, and what to do about it. */
export function MediaStatus() {
  const phase = mediaPhase.value;
  const notice = mediaNotice.value;
  const modeNotice = mediaModeNotice.value;
  const blocked = audioBlocked.value;
  const progress =
    phase === 'starting' || phase === 'connecting'
      ? t('media.connecting')
      : phase === 'reconnecting'
        ? t('media.reconnecting')
        : null;
  return (
    <div class="media-status" role="status" aria-live="polite">
      {blocked && (
        <p class="media-line warn" data-testid="sound-blocked">
          <span>{t('media.soundBlocked')}</span>
          <button type="button" class="button primary small" onClick={unlockAudio}>
            <Icon name="sound" /> {t('media.enableSound')}
          </button>
        </p>
      )}
      {videoPaused.value && (
        <p class="media-line warn" data-testid="video-paused">
          {t('media.videoPaused')}
        </p>
      )}
      {phase === 'replaced' && (
        <p class="media-line warn" data-testid="media-replaced">
          <span>{t('media.replaced')}</span>
          <button type="button" class="button small" onClick={takeMediaBack}>
            {t('media.useHere')}
          </button>
        </p>
      )}
      {modeNotice && (
        <p class="media-line warn" data-testid="media-mode-notice" data-notice={modeNotice}>
          {t(modeNotice)}
        </p>
      )}
      {notice && (
        <p class="media-line info" data-testid="media-notice" data-notice={notice}>
          {t(notice)}
        </p>
      )}
      {(notice || phase === 'reconnecting') && (
        <p class="media-line info">
          <a href={DOCTOR_PATH} target="_blank" rel="noopener" data-testid="doctor-link">
            {t('doctor.link')}
          </a>
        </p>
      )}
      {progress && (
        <p class="media-line progress">
          <span class="spinner" aria-hidden="true" />
          {progress}
        </p>
      )}
    </div>
  );
}
