#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The REST API, driven over HTTP against the real server, on SQLite and on PostgreSQL.

mod auth;
mod bad_input;
mod chat;
mod error_codes;
mod events;
mod helpers;
mod lobby;
mod openapi;
mod openapi_rules;
mod platform;
mod retention;
mod rooms;
mod seats;
