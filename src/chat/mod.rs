//! Room chat: validate and store a message then publish it; read the history page by page.
//! Only people seated in a live room may write or read.

mod handlers;
mod service;

pub use handlers::routes;
pub use service::{Chat, ChatError, ChatMessageView, ChatText};
