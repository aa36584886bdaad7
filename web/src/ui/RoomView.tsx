import { useEffect, useState } from 'preact/hooks';

import type { Participant, RoomDetail } from '../api/types';
import { errorKey, errorMessage } from '../errors';
import { languageName, t } from '../i18n';
import { navigate, roomLink } from '../router';
import { connection } from '../realtime/socket';
import { localAccess, localStream, remoteMedia, speaking, toggleCamera, toggleMic } from '../media/mediaStore';
import { gridColumns, tileView } from '../media/tracks';
import { isHost, orderedParticipants } from '../state/room';
import {
  currentRoom,
  enterRoom,
  kick,
  leaveRoom,
  roomFailure,
  roomPhase,
  setHandRaised,
} from '../state/roomStore';
import { session } from '../state/session';
import { Avatar } from './Avatar';
import { Icon } from './Icon';
import { ChatPanel } from './Chat';
import { MediaStatus, RemoteAudios, VideoView } from './Media';
import { levelLabel } from './labels';

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
  const amHost = isHost(room, me);
  const live = connection.value === 'connected';
  const [actionError, setActionError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const participants = orderedParticipants(room);
  const access = localAccess.value;
  const noMic = !!access && access.audio !== 'ok';
  const noCamera = !!access && access.video !== 'ok';

  const act = (action: () => Promise<void>) => {
    setActionError(null);
    action().catch((err) => setActionError(errorMessage(err)));
  };

  async function copyLink() {
    const link = roomLink(room.id);
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      // No clipboard permission (http, old browser): select the text for a manual copy.
      window.prompt(t('room.copyPrompt'), link);
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  }

  return (
    <div class="room" data-room-id={room.id}>
      <header class="room-head">
        <div>
          <h1 class="room-name">{room.title}</h1>
          <p class="muted">
            {[room.topic, languageName(room.language), levelLabel(room.level)].filter(Boolean).join(' · ')}
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
              <Tile key={p.userId} p={p} isMe={p.userId === me} />
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
                  canModerate={amHost && p.userId !== me}
                  live={live}
                  onKick={() => act(() => kick(p.userId))}
                  onLowerHand={() => act(() => setHandRaised(false, p.userId))}
                />
              ))}
            </ul>
          </section>
          <ChatPanel />
        </aside>
      </div>

      {actionError && (
        <p class="form-error" role="alert">
          {actionError}
        </p>
      )}

      <nav class="controls" aria-label={t('room.controls')}>
        <button
          type="button"
          class={`control ${mine?.isMuted || noMic ? 'off' : ''}`}
          aria-pressed={!!mine?.isMuted}
          disabled={!live || noMic}
          title={noMic ? t('room.noMic') : live ? undefined : t('room.needsLive')}
          data-testid="toggle-mic"
          onClick={() => act(toggleMic)}
        >
          <Icon name={mine?.isMuted || noMic ? 'micOff' : 'mic'} />
          <span>{noMic ? t('room.noMic') : mine?.isMuted ? t('room.unmute') : t('room.mute')}</span>
        </button>
        <button
          type="button"
          class={`control ${mine?.isVideoOff || noCamera ? 'off' : ''}`}
          aria-pressed={!!mine?.isVideoOff}
          disabled={!live || noCamera}
          title={noCamera ? t('room.noCamera') : live ? undefined : t('room.needsLive')}
          data-testid="toggle-camera"
          onClick={() => act(toggleCamera)}
        >
          <Icon name={mine?.isVideoOff || noCamera ? 'videoOff' : 'video'} />
          <span>{noCamera ? t('room.noCamera') : mine?.isVideoOff ? t('room.cameraOn') : t('room.cameraOff')}</span>
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
function Tile({ p, isMe }: { p: Participant; isMe: boolean }) {
  const videoTrack = isMe ? localStream.value?.getVideoTracks()[0] : remoteMedia.value[p.userId]?.video;
  const view = tileView({
    isMe,
    isVideoOff: p.isVideoOff,
    isMuted: p.isMuted,
    hasVideo: !!videoTrack,
    speaking: speaking.value.has(p.userId),
  });
  const classes = ['tile', p.handRaised && 'hand', view.speaking && 'speaking', view.showVideo && 'with-video'];
  return (
    <li
      class={classes.filter(Boolean).join(' ')}
      data-user-id={p.userId}
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
      <span class="tile-state">
        {p.role === 'HOST' && <span class="badge">{t('room.host')}</span>}
        {view.mutedBadge && (
          <span class="tile-badge" title={t('room.micOff')} role="img" aria-label={t('room.micOff')} data-testid="muted-badge">
            <Icon name="micOff" />
          </span>
        )}
        {view.cameraOffBadge && (
          <span class="tile-badge" title={t('room.cameraIsOff')} role="img" aria-label={t('room.cameraIsOff')}>
            <Icon name="videoOff" />
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

function PersonRow(props: {
  p: Participant;
  isMe: boolean;
  canModerate: boolean;
  live: boolean;
  onKick: () => void;
  onLowerHand: () => void;
}) {
  const { p, isMe, canModerate } = props;
  const [confirming, setConfirming] = useState(false);
  const states = [
    p.isMuted ? t('room.micOff') : t('room.micOn'),
    p.isVideoOff ? t('room.cameraIsOff') : t('room.cameraIsOn'),
    ...(p.handRaised ? [t('room.handRaised')] : []),
  ];
  return (
    <li class="person" data-user-id={p.userId}>
      <Avatar name={p.displayName} small />
      <span class="person-name">
        {p.displayName}
        {isMe && ` (${t('room.you')})`}
        {p.role === 'HOST' && <span class="badge">{t('room.host')}</span>}
      </span>
      <span class="person-state" role="img" aria-label={states.join(', ')} title={states.join(', ')}>
        <Icon name={p.isMuted ? 'micOff' : 'mic'} />
        <Icon name={p.isVideoOff ? 'videoOff' : 'video'} />
        {p.handRaised && <Icon name="hand" />}
      </span>
      {canModerate && p.handRaised && (
        <button
          type="button"
          class="button small"
          disabled={!props.live}
          aria-label={t('room.lowerHandOf', { name: p.displayName })}
          onClick={props.onLowerHand}
        >
          {t('room.lowerHand')}
        </button>
      )}
      {canModerate &&
        (confirming ? (
          <span class="confirm" role="group" aria-label={t('room.kickConfirm', { name: p.displayName })}>
            <span class="muted">{t('room.kickConfirm', { name: p.displayName })}</span>
            <button
              type="button"
              class="button small danger"
              onClick={() => {
                setConfirming(false);
                props.onKick();
              }}
            >
              {t('room.kickYes')}
            </button>
            <button type="button" class="button small ghost" onClick={() => setConfirming(false)}>
              {t('action.cancel')}
            </button>
          </span>
        ) : (
          <button
            type="button"
            class="button small danger"
            aria-label={t('room.kickLabel', { name: p.displayName })}
            onClick={() => setConfirming(true)}
          >
            {t('room.kick')}
          </button>
        ))}
    </li>
  );
}
