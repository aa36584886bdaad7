-- Accounts (registered and guests), rooms, seats and chat, in MySQL 8 / MariaDB 10.11+ (InnoDB).
-- As in the original design: CHAR(36) UUIDs, ENUM('LIVE','ENDED'), TINYINT(1) flags, utf8mb4.
-- Text people write (names, titles, chat) sorts and compares by utf8mb4_vietnamese_ci; what
-- the server compares exactly (ids, usernames, e-mail addresses, keys, the folded search text)
-- is utf8mb4_bin, so every rule answers as it does on SQLite and PostgreSQL. DATETIME(6): UTC
-- with microseconds, like the other two.
CREATE TABLE users (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    username VARCHAR(255) COLLATE utf8mb4_bin UNIQUE,
    email VARCHAR(320) COLLATE utf8mb4_bin UNIQUE,
    password_hash VARCHAR(255) COLLATE utf8mb4_bin,
    display_name VARCHAR(255) COLLATE utf8mb4_vietnamese_ci NOT NULL,
    is_guest TINYINT(1) NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE rooms (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    title VARCHAR(255) COLLATE utf8mb4_vietnamese_ci NOT NULL,
    topic VARCHAR(255) COLLATE utf8mb4_vietnamese_ci,
    topic_key VARCHAR(255) COLLATE utf8mb4_bin,
    search_text TEXT COLLATE utf8mb4_bin NOT NULL,
    language VARCHAR(16) COLLATE utf8mb4_bin NOT NULL,
    level VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    max_participants INT NOT NULL,
    participant_count INT NOT NULL DEFAULT 0,
    status ENUM('LIVE', 'ENDED') COLLATE utf8mb4_bin NOT NULL,
    host_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_by CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    ended_at DATETIME(6),
    CONSTRAINT rooms_host FOREIGN KEY (host_id) REFERENCES users (id),
    CONSTRAINT rooms_creator FOREIGN KEY (created_by) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX rooms_status_created ON rooms (status, created_at DESC, id DESC);

CREATE TABLE room_participants (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    room_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    role VARCHAR(16) COLLATE utf8mb4_bin NOT NULL,
    is_muted TINYINT(1) NOT NULL DEFAULT 0,
    is_video_off TINYINT(1) NOT NULL DEFAULT 0,
    hand_raised TINYINT(1) NOT NULL DEFAULT 0,
    is_kicked TINYINT(1) NOT NULL DEFAULT 0,
    joined_at DATETIME(6) NOT NULL,
    left_at DATETIME(6),
    UNIQUE (room_id, user_id),
    CONSTRAINT room_participants_room FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE,
    CONSTRAINT room_participants_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX room_participants_user ON room_participants (user_id);

CREATE TABLE room_chat_messages (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    room_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    message TEXT COLLATE utf8mb4_vietnamese_ci NOT NULL,
    created_at DATETIME(6) NOT NULL,
    CONSTRAINT room_chat_messages_room FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE,
    CONSTRAINT room_chat_messages_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX room_chat_messages_room_created ON room_chat_messages (room_id, created_at DESC, id DESC);
