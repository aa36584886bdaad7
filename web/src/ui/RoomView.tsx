import { useEffect, useState } from 'preact/hooks';

import type { ComponentChildren } from 'preact';

import type { Participant, RoomDetail } from '../api/types';
import { errorKey, errorMessage } from '../errors';
import { languageName, t } from '../i18n';
import { navigate, roomLink } from '../router';
import { connection } from '../realtime/socket';
import {
  audioOnly,
  localAccess,
  localStream,
  remoteMedia,
  setAudioOnly,
  speaking,
  toggleCamera,
  toggleMic,
  videoPaused,
} from '../media/mediaStore';
import { gridColumns, tileView } from '../media/tracks';
import { blockedIds } from '../state/blocks';
import { isModerator, orderedParticipants } from '../state/room';
import { currentRoom, enterRoom, leaveRoom, roomFailure, roomPhase, setHandRaised } from '../state/roomStore';
import { session } from '../state/session';
import { Avatar } from './Avatar';
import { Icon } from './Icon';
import { ChatPanel } from './Chat';
import { MediaStatus, QualityIndicator, RemoteAudios, VideoView } from './Media';
import { levelLabel } from './labels';
import { HostBar, PersonMenu, ReportDialog } from './Moderation';
import { copyText, useCopiedFlag } from './RoomFields';

export function RoomView({ roomId }: { roomId: string }) {
  useEffect(() => {
    void enterRoom(roomId);
  }, [roomId]);

  const room = currentRoom.value;
  if (roomPhase.value === 'failed') return <RoomUnavailable code={roomFailure.value ?? 'UNKNOWN'} />;
  if (!room || roomPhase.value !== 'in') {
    return (
      <section class="panel centered" aria-busy="true">
        <p>
          <span class="spinner" aria-hidden="true" /> {t('room.joining')}
        </p>
      </section>
    );
  }
  return <InRoom room={room} />;
}

/** Full, ended, kicked, not found: said plainly, with the way back. */
function RoomUnavailable({ code }: { code: string }) {
  return (
    <section class="panel centered" data-testid="room-unavailable" data-code={code}>
      <h1>{t('room.unavailable')}</h1>
      <p role="alert">{t(errorKey(code))}</p>
      <button type="button" class="button primary" onClick={() => navigate('/')}>
        {t('nav.backToLobby')}
      </button>
    </section>
  );
}

function InRoom({ room }: { room: RoomDetail }) {
  const me = session.value?.user.id;
  const mine = room.participants.find((p) => p.userId === me);
  const amModerator = isModerator(room, me);
  const live = connection.value === 'connected';
  const [actionError, setActionError] = useState<string | null>(null);
  const [copied, flashCopied] = useCopiedFlag();
  const [reporting, setReporting] = useState<Participant | null>(null);
  const participants = orderedParticipants(room);
  const blocked = blockedIds.value;
  const access = localAccess.value;
  const noMic = !!access && access.audio !== 'ok';
  const noCamera = !!access && access.video !== 'ok';
  // Locked by a host, or a room without microphones: the person cannot turn it on.
  const micLocked = !!mine?.micLocked || !!room.noMic;
  const cameraLocked = !!mine?.cameraLocked;
  const micLockText = room.noMic ? t('room.noMicRoom') : t('room.mutedByHost');

  const act = (action: () => Promise<void>) => {
    setActionError(null);
    action().catch((err) => setActionError(errorMessage(err)));
  };

  async function copyLink() {
    await copyText(roomLink(room.id));
    flashCopied();
  }

  return (
    <div class="room" data-room-id={room.id}>
      <header class="room-head">
        <div>
          <h1 class="room-name">{room.title}</h1>
          <p class="muted">
            {room.isLocked && (
              <span class="chip" data-testid="room-locked-badge">
                <Icon name="lock" /> {t('room.locked')}
              </span>
            )}{' '}
            {[
              room.topic,
              languageName(room.language),
              room.secondLanguage ? languageName(room.secondLanguage) : null,
              levelLabel(room.level),
              room.micRequired ? t('room.micRequired') : null,
            ]
              .filter(Boolean)
              .join(' · ')}
            {' · '}
            <span aria-label={t('room.seatsLabel', { taken: room.participantCount, limit: room.maxParticipants })}>
              {t('room.seats', { taken: room.participantCount, limit: room.maxParticipants })}
            </span>
          </p>
        </div>
        <button type="button" class="button" onClick={() => void copyLink()}>
          <Icon name="link" /> {copied ? t('room.linkCopied') : t('room.copyLink')}
        </button>
      </header>
      {amModerator && <HostBar room={room} act={act} />}
      {(room.slowModeSecs ?? 0) > 0 && (
        <p class="muted" data-testid="slow-mode-line">
          {t('room.slowMode', { secs: room.slowModeSecs ?? 0 })}
        </p>
      )}
      {micLocked && (
        <p class="muted" role="status" data-testid="mic-locked-line">
          {micLockText}
        </p>
      )}
      {cameraLocked && (
        <p class="muted" role="status" data-testid="camera-locked-line">
          {t('room.cameraByHost')}
        </p>
      )}

      <div class="room-body">
        <section class="stage" aria-label={t('room.stage')}>
          <MediaStatus />
          <ul
            class="tiles"
            data-count={participants.length}
            style={{
              '--cols-narrow': String(gridColumns(participants.length, true)),
              '--cols-wide': String(gridColumns(participants.length, false)),
            }}
          >
            {participants.map((p) => (
              <Tile key={p.userId} p={p} isMe={p.userId === me} blocked={blocked.has(p.userId)} />
            ))}
          </ul>
          <RemoteAudios />
        </section>

        <aside class="side">
          <section class="people" aria-labelledby="people-title">
            <h2 id="people-title">
              {t('room.participants')} <span class="count">{participants.length}</span>
            </h2>
            <ul class="people-list">
              {participants.map((p) => (
                <PersonRow
                  key={p.userId}
                  p={p}
                  isMe={p.userId === me}
                  blocked={blocked.has(p.userId)}
                  lowerHand={
                    p.handRaised && p.userId !== me && amModerator
                      ? () => act(() => setHandRaised(false, p.userId))
                      : undefined
                  }
                  live={live}
                  menu={
                    <PersonMenu
                      p={p}
                      myRole={mine?.role}
                      isMe={p.userId === me}
                      live={live}
                      act={act}
                      onReport={() => setReporting(p)}
                    />
                  }
                />
              ))}
            </ul>
          </section>
          <ChatPanel />
        </aside>
      </div>

      {actionError && (
        <p class="form-error" role="alert" data-testid="room-action-error">
          {actionError}
        </p>
      )}
      {reporting && <ReportDialog p={reporting} onClose={() => setReporting(null)} />}

      <nav class="controls" aria-label={t('room.controls')}>
        <button
          type="button"
          class={`control ${mine?.isMuted || noMic || micLocked ? 'off' : ''}`}
          aria-pressed={!!mine?.isMuted}
          // Locked and already muted: nothing to do. Locked but still on: muting is allowed.
          disabled={!live || noMic || (micLocked && !!mine?.isMuted)}
          title={noMic ? t('room.noMic') : micLocked ? micLockText : live ? undefined : t('room.needsLive')}
          data-testid="toggle-mic"
          data-locked={micLocked ? 'true' : 'false'}
          onClick={() => act(toggleMic)}
        >
          <Icon name={mine?.isMuted || noMic || micLocked ? 'micOff' : 'mic'} />
          <span>
            {noMic
              ? t('room.noMic')
              : micLocked && mine?.isMuted
                ? t('room.mutedByHost')
                : mine?.isMuted
                  ? t('room.unmute')
                  : t('room.mute')}
          </span>
        </button>
        <button
          type="button"
          class={`control ${mine?.isVideoOff || noCamera || cameraLocked ? 'off' : ''}`}
          aria-pressed={!!mine?.isVideoOff}
          disabled={!live || noCamera || (cameraLocked && !!mine?.isVideoOff)}
          title={
            noCamera ? t('room.noCamera') : cameraLocked ? t('room.cameraByHost') : live ? undefined : t('room.needsLive')
          }
          data-testid="toggle-camera"
          data-locked={cameraLocked ? 'true' : 'false'}
          onClick={() => act(toggleCamera)}
        >
          <Icon name={mine?.isVideoOff || noCamera || cameraLocked ? 'videoOff' : 'video'} />
          <span>
            {noCamera
              ? t('room.noCamera')
              : cameraLocked && mine?.isVideoOff
                ? t('room.cameraByHost')
                : mine?.isVideoOff
                  ? t('room.cameraOn')
                  : t('room.cameraOff')}
          </span>
        </button>
        <button
          type="button"
          class={`control ${audioOnly.value ? 'on' : ''}`}
          aria-pressed={audioOnly.value}
          title={t('media.audioOnlyHint')}
          data-testid="toggle-audio-only"
          onClick={() => act(() => setAudioOnly(!audioOnly.value))}
        >
          <Icon name={audioOnly.value ? 'video' : 'videoOff'} />
          <span>{audioOnly.value ? t('media.audioOnlyOff') : t('media.audioOnly')}</span>
        </button>
        <button
          type="button"
          class={`control ${mine?.handRaised ? 'on' : ''}`}
          aria-pressed={!!mine?.handRaised}
          disabled={!live}
          title={live ? undefined : t('room.needsLive')}
          onClick={() => act(() => setHandRaised(!mine?.handRaised))}
        >
          <Icon name="hand" />
          <span>{mine?.handRaised ? t('room.lowerHand') : t('room.raiseHand')}</span>
        </button>
        <button type="button" class="control leave" onClick={() => void leaveRoom()}>
          <Icon name="leave" />
          <span>{t('room.leave')}</span>
        </button>
      </nav>
    </div>
  );
}

/** A participant's tile: their video (ours mirrored and muted), else their initials; badges
 * for host, muted mic, camera off and raised hand; a ring while they speak. */
function Tile({ p, isMe, blocked }: { p: Participant; isMe: boolean; blocked: boolean }) {
  // Someone we blocked: no video (their audio is not played either, see RemoteAudios).
  const videoTrack = blocked
    ? undefined
    : isMe
      ? localStream.value?.getVideoTracks()[0]
      : remoteMedia.value[p.userId]?.video;
  const view = tileView({
    isMe,
    isVideoOff: p.isVideoOff,
    isMuted: p.isMuted,
    hasVideo: !!videoTrack,
    speaking: speaking.value.has(p.userId),
    audioOnly: audioOnly.value,
  });
  const classes = ['tile', p.handRaised && 'hand', view.speaking && 'speaking', view.showVideo && 'with-video'];
  return (
    <li
      class={classes.filter(Boolean).join(' ')}
      data-user-id={p.userId}
      data-blocked={blocked ? 'true' : undefined}
      title={blocked ? t('room.blockedTile') : undefined}
      data-video={view.showVideo ? 'on' : 'off'}
      data-speaking={view.speaking ? 'true' : 'false'}
    >
      {view.showVideo && videoTrack ? (
        <VideoView
          track={videoTrack}
          mirrored={view.mirrored}
          label={t('room.videoOf', { name: p.displayName })}
          publisher={isMe ? undefined : p.userId}
        />
      ) : (
        <Avatar name={p.displayName} />
      )}
      <span class="tile-name">
        {p.displayName}
        {isMe && ` (${t('room.you')})`}
        {view.speaking && <span class="visually-hidden">, {t('room.speaking')}</span>}
      </span>
      <QualityIndicator userId={p.userId} />
      <span class="tile-state">
        <RoleBadge p={p} />
        {blocked && <span class="badge">{t('room.blockedBadge')}</span>}
        {view.mutedBadge && (
          <span class="tile-badge" title={t('room.micOff')} role="img" aria-label={t('room.micOff')} data-testid="muted-badge">
            <Icon name="micOff" />
          </span>
        )}
        {!isMe && view.showVideo && videoPaused.value && (
          <span class="tile-badge" title={t('room.videoPausedBadge')} role="img" aria-label={t('room.videoPausedBadge')} data-testid="video-paused-badge">
            <Icon name="videoOff" />
          </span>
        )}
        {view.cameraOffBadge && (
          <span class="tile-badge" title={t('room.cameraIsOff')} role="img" aria-label={t('room.cameraIsOff')}>
            <Icon name="videoOff" />
          </span>
        )}
        {view.audioOnlyBadge && (
          <span class="badge" title={t('media.audioOnlyBadge')} data-testid="audio-only-badge">
            {t('media.audioOnly')}
          </span>
        )}
        {p.handRaised && (
          <span class="tile-badge" title={t('room.handRaised')} role="img" aria-label={t('room.handRaised')}>
            <Icon name="hand" />
          </span>
        )}
      </span>
    </li>
  );
}

/** HOST / COHOST badge (data-role for tests). */
function RoleBadge({ p }: { p: Participant }) {
  if (p.role === 'HOST') return <span class="badge" data-role="HOST">{t('room.host')}</span>;
  if (p.role === 'COHOST') return <span class="badge" data-role="COHOST">{t('room.cohost')}</span>;
  return null;
}

function PersonRow(props: {
  p: Participant;
  isMe: boolean;
  blocked: boolean;
  live: boolean;
  /** Hosts and co-hosts lower a raised hand in one click. */
  lowerHand?: () => void;
  menu: ComponentChildren;
}) {
  const { p, isMe } = props;
  const states = [
    p.isMuted ? t('room.micOff') : t('room.micOn'),
    ...(p.micLocked ? [t('room.mutedByHost')] : []),
    p.isVideoOff ? t('room.cameraIsOff') : t('room.cameraIsOn'),
    ...(p.cameraLocked ? [t('room.cameraByHost')] : []),
    ...(p.handRaised ? [t('room.handRaised')] : []),
  ];
  return (
    <li
      class="person"
      data-user-id={p.userId}
      data-role={p.role}
      data-mic-locked={p.micLocked ? 'true' : 'false'}
      data-camera-locked={p.cameraLocked ? 'true' : 'false'}
      data-blocked={props.blocked ? 'true' : 'false'}
    >
      <Avatar name={p.displayName} small />
      <span class="person-name">
        {p.displayName}
        {isMe && ` (${t('room.you')})`}
        <RoleBadge p={p} />
        {props.blocked && <span class="badge">{t('room.blockedBadge')}</span>}
      </span>
      <span class="person-state" role="img" aria-label={states.join(', ')} title={states.join(', ')}>
        <Icon name={p.isMuted ? 'micOff' : 'mic'} />
        {p.micLocked && <Icon name="lock" />}
        <Icon name={p.isVideoOff ? 'videoOff' : 'video'} />
        {p.cameraLocked && <Icon name="lock" />}
        {p.handRaised && <Icon name="hand" />}
      </span>
      {props.lowerHand && (
        <button
          type="button"
          class="button small"
          disabled={!props.live}
          aria-label={t('room.lowerHandOf', { name: p.displayName })}
          onClick={props.lowerHand}
        >
          {t('room.lowerHand')}
        </button>
      )}
      {props.menu}
    </li>
  );
}
