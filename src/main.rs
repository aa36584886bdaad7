//! The `talkconnect` binary: parse the command line, load settings, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use talkconnect::app::Application;
use talkconnect::config::Settings;
use talkconnect::moderation::cli::AdminCommand;
use talkconnect::state::StartError;
use talkconnect::{db, telemetry};

/// `talkconnect --version`: the release and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TALKCONNECT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "talkconnect",
    version = VERSION,
    about = "Public voice/video rooms for strangers, self-hosted"
)]
struct Cli {
    /// A TOML file laid over the built-in defaults (config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the web app (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Check this machine's setup (ports, certificate, media) and print a fix for each
    /// problem; exit code 1 when something fails.
    Doctor,
    /// Copy the SQLite database to FILE, safely while the server runs (for PostgreSQL use
    /// pg_dump; docs/OPERATIONS.md).
    Backup {
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Instance moderation on the database (docs/MODERATION.md): rooms, bans, reports,
    /// the audit log.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("talkconnect: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Doctor) = cli.command {
        return doctor(&settings);
    }
    if let Some(Command::Admin { command }) = cli.command {
        return admin(&settings, command);
    }
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::Doctor | Command::Admin { .. } => Ok(()),
        Command::Backup { file, force } => backup(&settings, &file, force),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            tracing::error!("{message}");
            eprintln!("talkconnect: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why the process stops early: exit code 2 for a setting that is wrong (as when the
/// configuration does not load) or a database that `database.url` names and that cannot be
/// used (down, refused login, no privileges, too old), 1 for anything else.
struct Failure {
    code: u8,
    message: String,
}

impl From<StartError> for Failure {
    fn from(e: StartError) -> Self {
        let code = match e {
            StartError::Config(_)
            | StartError::Database(db::ConnectError::Open(_) | db::ConnectError::Unsupported(_)) => {
                2
            }
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

fn serve(settings: Settings) -> Result<(), Failure> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        Ok(app.run_until_stopped().await?)
    })
}

fn doctor(settings: &Settings) -> ExitCode {
    use std::io::Write;
    let (report, healthy) = talkconnect::doctor::report(settings);
    // The report is this command's output (stdout), not a log line.
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `talkconnect admin …`: its answer is this command's output (stdout); exit code 1 when it
/// fails.
fn admin(settings: &Settings, command: AdminCommand) -> ExitCode {
    use std::io::Write;
    match talkconnect::moderation::cli::run(settings, command) {
        Ok(out) => {
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("talkconnect admin: {message}");
            ExitCode::FAILURE
        }
    }
}

fn backup(settings: &Settings, file: &std::path::Path, force: bool) -> Result<(), Failure> {
    let url = settings.database_url().map_err(StartError::from)?;
    let size = db::backup::backup(&url, file, force).map_err(|e| Failure {
        code: e.exit_code(),
        message: e.to_string(),
    })?;
    tracing::info!(file = %file.display(), bytes = size, "backup written");
    Ok(())
}

fn migrate(settings: &Settings) -> Result<(), Failure> {
    let url = settings.database_url().map_err(StartError::from)?;
    db::connect(&url, &settings.database).map_err(StartError::from)?;
    tracing::info!("migrations are up to date");
    Ok(())
}
