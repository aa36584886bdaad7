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

diesel::joinable!(rooms -> users (host_id));
diesel::joinable!(room_participants -> rooms (room_id));
diesel::joinable!(room_participants -> users (user_id));
diesel::joinable!(room_chat_messages -> rooms (room_id));
diesel::joinable!(room_chat_messages -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(users, rooms, room_participants, room_chat_messages);
