//! TalkConnect: public voice/video rooms for strangers, in one binary.
//! The map of modules is docs/ARCHITECTURE.md.

pub mod acme;
pub mod app;
pub mod auth;
pub mod chat;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod db;
pub mod doctor;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod platform;
pub mod realtime;
pub mod retention;
pub mod rooms;
pub mod sfu;
pub mod shared_port;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod timestamp;
pub mod tls;
pub mod turn;
pub mod web_ui;
