//! Moderation on the instance (docs/MODERATION.md): the audit log every moderation action
//! writes, instance bans, and the admins' REST routes. What hosts and co-hosts do inside a room lives with the room rules (rooms/) and the
//! chat (chat/); blocks, reports, admins and bans live here.

pub mod admin;
pub mod audit;
pub mod bans;
pub mod cli;
