//! Moderation on the instance (docs/MODERATION.md): the audit log every moderation action
//! writes. What hosts and co-hosts do inside a room lives with the room rules (rooms/) and the
//! chat (chat/); blocks, reports, admins and bans live here.

pub mod audit;
pub mod blocks;
pub mod reports;

use actix_web::web;

/// The moderation endpoints under `/api`: blocks and reports.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(blocks::routes).configure(reports::routes);
}
