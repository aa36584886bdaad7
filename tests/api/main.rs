#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The REST API, driven over HTTP against the real server, on SQLite, on PostgreSQL and (built
//! with `--features mysql`) on MySQL/MariaDB, and the `talkconnect` binary as a self-hoster
//! starts it (cli). Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and MariaDB on
//! 127.0.0.1:3306 (user talkconnect_test; `scripts/services` starts both and makes the
//! account), or the servers that TALKCONNECT_TEST_POSTGRES_URL and TALKCONNECT_TEST_MYSQL_URL
//! name: without them the `postgres` and `mysql` tests fail, CI or not.

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
mod lobby_memory;
mod log_ids;
mod media_prefs;
mod media_probe;
mod media_resume;
mod metrics;
mod moderation_chat;
mod moderation_media;
mod moderation_rooms;
#[cfg(feature = "mysql")]
mod mysql;
mod openapi;
mod openapi_rules;
mod platform;
mod retention;
mod rooms;
#[cfg(feature = "mysql")]
mod same_answers;
mod seats;
mod sio;
mod tls;
mod turn;
