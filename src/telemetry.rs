//! Logging with `tracing`: the filter from RUST_LOG or `log.level`, JSON lines if asked, and
//! colours only on a terminal (a journal, a file or a pipe gets plain text; NO_COLOR too).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber once; later calls (tests) keep the first one.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let colours = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colours);
    let _ = if settings.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
