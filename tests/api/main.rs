#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The REST API, driven over HTTP against the real server, on SQLite and on PostgreSQL, and
//! the `talkconnect` binary as a self-hoster starts it (cli). Needs PostgreSQL on
//! 127.0.0.1:5432 (user postgres, trust; `scripts/services`), or the server that
//! TALKCONNECT_TEST_POSTGRES_URL names: without it the `postgres` tests fail, CI or not.

mod acme;
mod admin;
mod auth;
mod backup;
mod bad_input;
mod chat;
mod cli;
mod doctor;
mod drain;
mod error_codes;
mod events;
mod gateway_peer;
mod helpers;
mod lobby;
mod log_ids;
mod media_prefs;
mod media_probe;
mod media_resume;
mod metrics;
mod moderation_chat;
mod moderation_media;
mod moderation_rooms;
mod openapi;
mod openapi_rules;
mod platform;
mod retention;
mod rooms;
mod seats;
mod sio;
mod tls;
mod turn;
