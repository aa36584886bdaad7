-- Moderation (docs/MODERATION.md): room settings a host changes live, co-hosts and hard mute on
-- seats, slow mode, blocks, reports, instance bans and the audit log.
-- A keyed hash of the network address an account was made from (guest bans).
ALTER TABLE users ADD COLUMN ip_hash VARCHAR(128) COLLATE utf8mb4_bin;
ALTER TABLE rooms ADD COLUMN second_language VARCHAR(16) COLLATE utf8mb4_bin;
ALTER TABLE rooms ADD COLUMN mic_required TINYINT(1) NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN no_mic TINYINT(1) NOT NULL DEFAULT 0;
-- NULL: the room is open. Otherwise it is locked and this key (in invite links) still lets in.
ALTER TABLE rooms ADD COLUMN lock_key VARCHAR(128) COLLATE utf8mb4_bin;
-- 0: off. Otherwise one chat message per this many seconds per person.
ALTER TABLE rooms ADD COLUMN slow_mode_secs INT NOT NULL DEFAULT 0;

-- Muted or camera stopped by a host: the person cannot undo it.
ALTER TABLE room_participants ADD COLUMN mic_locked TINYINT(1) NOT NULL DEFAULT 0;
ALTER TABLE room_participants ADD COLUMN camera_locked TINYINT(1) NOT NULL DEFAULT 0;
-- For slow mode.
ALTER TABLE room_participants ADD COLUMN last_chat_at DATETIME(6);

CREATE TABLE user_blocks (
    blocker_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    blocked_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT user_blocks_blocker FOREIGN KEY (blocker_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_blocks_blocked FOREIGN KEY (blocked_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id);

-- Ids below are not foreign keys: reports, bans and the audit log outlive purged rooms and guests.
CREATE TABLE reports (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    room_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reporter_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reported_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reason VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    message TEXT COLLATE utf8mb4_vietnamese_ci,
    -- JSON: the room's last chat lines when the report was filed.
    evidence MEDIUMTEXT COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(6) NOT NULL,
    resolved_at DATETIME(6),
    resolved_by CHAR(36) CHARACTER SET ascii COLLATE ascii_bin
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX reports_created ON reports (created_at DESC, id DESC);
CREATE INDEX reports_room ON reports (room_id);

CREATE TABLE bans (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    -- A keyed hash of the guest's network address (docs/MODERATION.md says where it stops).
    ip_hash VARCHAR(128) COLLATE utf8mb4_bin,
    reason TEXT COLLATE utf8mb4_vietnamese_ci,
    banned_by CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6),
    lifted_at DATETIME(6),
    lifted_by CHAR(36) CHARACTER SET ascii COLLATE ascii_bin
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX bans_user ON bans (user_id);
CREATE INDEX bans_ip_hash ON bans (ip_hash);

CREATE TABLE audit_log (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    -- NULL: the command line (`talkconnect admin`).
    actor_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    action VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    target_user_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    room_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    -- JSON object, what else the action needs to be read later.
    details MEDIUMTEXT COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX audit_log_created ON audit_log (created_at DESC, id DESC);
