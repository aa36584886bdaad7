-- Moderation (docs/MODERATION.md): room settings a host changes live, co-hosts and hard mute on
-- seats, slow mode, blocks, reports, instance bans and the audit log.
-- A keyed hash of the network address an account was made from (guest bans).
ALTER TABLE users ADD COLUMN ip_hash TEXT;
ALTER TABLE rooms ADD COLUMN second_language TEXT;
ALTER TABLE rooms ADD COLUMN mic_required BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN no_mic BOOLEAN NOT NULL DEFAULT 0;
-- NULL: the room is open. Otherwise it is locked and this key (in invite links) still lets in.
ALTER TABLE rooms ADD COLUMN lock_key TEXT;
-- 0: off. Otherwise one chat message per this many seconds per person.
ALTER TABLE rooms ADD COLUMN slow_mode_secs INTEGER NOT NULL DEFAULT 0;

-- Muted or camera stopped by a host: the person cannot undo it.
ALTER TABLE room_participants ADD COLUMN mic_locked BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE room_participants ADD COLUMN camera_locked BOOLEAN NOT NULL DEFAULT 0;
-- For slow mode.
ALTER TABLE room_participants ADD COLUMN last_chat_at TIMESTAMP;

CREATE TABLE user_blocks (
    blocker_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id);

-- Ids below are not foreign keys: reports, bans and the audit log outlive purged rooms and guests.
CREATE TABLE reports (
    id TEXT PRIMARY KEY NOT NULL,
    room_id TEXT NOT NULL,
    reporter_id TEXT NOT NULL,
    reported_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT,
    -- JSON: the room's last chat lines when the report was filed.
    evidence TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    resolved_by TEXT
);
CREATE INDEX reports_created ON reports (created_at DESC, id DESC);
CREATE INDEX reports_room ON reports (room_id);

CREATE TABLE bans (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT,
    -- A keyed hash of the guest's network address (docs/MODERATION.md says where it stops).
    ip_hash TEXT,
    reason TEXT,
    banned_by TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    lifted_at TIMESTAMP,
    lifted_by TEXT
);
CREATE INDEX bans_user ON bans (user_id);
CREATE INDEX bans_ip_hash ON bans (ip_hash);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    -- NULL: the command line (`talkconnect admin`).
    actor_id TEXT,
    action TEXT NOT NULL,
    target_user_id TEXT,
    room_id TEXT,
    -- JSON object, what else the action needs to be read later.
    details TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at DESC, id DESC);
