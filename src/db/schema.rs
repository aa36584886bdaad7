//! The portable schema: one `table!` set for SQLite and PostgreSQL (UUIDs as Text).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Nullable<Text>,
        email -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        display_name -> Text,
        is_guest -> Bool,
        created_at -> Timestamp,
        ip_hash -> Nullable<Text>,
    }
}

diesel::table! {
    rooms (id) {
        id -> Text,
        title -> Text,
        topic -> Nullable<Text>,
        topic_key -> Nullable<Text>,
        search_text -> Text,
        language -> Text,
        level -> Text,
        max_participants -> Integer,
        participant_count -> Integer,
        status -> Text,
        host_id -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        second_language -> Nullable<Text>,
        mic_required -> Bool,
        no_mic -> Bool,
        lock_key -> Nullable<Text>,
        slow_mode_secs -> Integer,
    }
}

diesel::table! {
    room_participants (id) {
        id -> Text,
        room_id -> Text,
        user_id -> Text,
        role -> Text,
        is_muted -> Bool,
        is_video_off -> Bool,
        hand_raised -> Bool,
        is_kicked -> Bool,
        joined_at -> Timestamp,
        left_at -> Nullable<Timestamp>,
        mic_locked -> Bool,
        camera_locked -> Bool,
        last_chat_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    room_chat_messages (id) {
        id -> Text,
        room_id -> Text,
        user_id -> Text,
        message -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    user_blocks (blocker_id, blocked_id) {
        blocker_id -> Text,
        blocked_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reports (id) {
        id -> Text,
        room_id -> Text,
        reporter_id -> Text,
        reported_id -> Text,
        reason -> Text,
        message -> Nullable<Text>,
        evidence -> Text,
        created_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        resolved_by -> Nullable<Text>,
    }
}

diesel::table! {
    bans (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        ip_hash -> Nullable<Text>,
        reason -> Nullable<Text>,
        banned_by -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        lifted_at -> Nullable<Timestamp>,
        lifted_by -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        actor_id -> Nullable<Text>,
        action -> Text,
        target_user_id -> Nullable<Text>,
        room_id -> Nullable<Text>,
        details -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(rooms -> users (host_id));
diesel::joinable!(room_participants -> rooms (room_id));
diesel::joinable!(room_participants -> users (user_id));
diesel::joinable!(room_chat_messages -> rooms (room_id));
diesel::joinable!(room_chat_messages -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    rooms,
    room_participants,
    room_chat_messages,
    user_blocks,
    reports,
    bans,
    audit_log,
);
