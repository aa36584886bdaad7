//! Moderation on the instance (docs/MODERATION.md): the audit log every moderation action
//! writes, blocks, reports, instance bans, the admins' REST routes and `talkconnect admin`.
//! What hosts and co-hosts do inside a room lives with the room rules (rooms/) and the chat
//! (chat/).

pub mod admin;
pub mod audit;
pub mod bans;
pub mod blocks;
pub mod cli;
pub mod reports;

use actix_web::web;

/// The moderation endpoints under `/api`: blocks, reports and the admins' routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(blocks::routes)
        .configure(reports::routes)
        .configure(admin::routes);
}
