-- Accounts (registered and guests), rooms, seats and chat. UUIDs and timestamps as portable types.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT UNIQUE,
    email TEXT UNIQUE,
    password_hash TEXT,
    display_name TEXT NOT NULL,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE rooms (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    topic TEXT,
    topic_key TEXT,
    search_text TEXT NOT NULL,
    language TEXT NOT NULL,
    level TEXT NOT NULL,
    max_participants INTEGER NOT NULL,
    participant_count INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    host_id TEXT NOT NULL REFERENCES users (id),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
CREATE INDEX rooms_status_created ON rooms (status, created_at DESC, id DESC);

CREATE TABLE room_participants (
    id TEXT PRIMARY KEY NOT NULL,
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    is_muted BOOLEAN NOT NULL DEFAULT FALSE,
    is_video_off BOOLEAN NOT NULL DEFAULT FALSE,
    hand_raised BOOLEAN NOT NULL DEFAULT FALSE,
    is_kicked BOOLEAN NOT NULL DEFAULT FALSE,
    joined_at TIMESTAMP NOT NULL,
    left_at TIMESTAMP,
    UNIQUE (room_id, user_id)
);
CREATE INDEX room_participants_user ON room_participants (user_id);

CREATE TABLE room_chat_messages (
    id TEXT PRIMARY KEY NOT NULL,
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX room_chat_messages_room_created ON room_chat_messages (room_id, created_at DESC, id DESC);
