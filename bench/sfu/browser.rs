//! Real-browser probe: headless Chromium pages (fake camera/microphone) join one room
//! through a tiny HTTP signaling bridge and follow docs/SFU.md's browser sequence; the
//! subscribers report when the first decoded video frame of each publisher appears.
//! The bridge is actix-web, so `SfuHandle` is driven from a foreign runtime here.
//!
//! cargo run --release --example sfu_browser -- --publishers 1 --subscribers 2
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use talkconnect::sfu::{
    ClientSignal, JoinOptions, Sfu, SfuConfig, SfuEvent, SfuEventKind, SfuHandle,
};
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// HTTP port of the signaling bridge.
    #[arg(long, default_value_t = 18089)]
    http_port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[arg(long, default_value = "chromium")]
    chromium: String,
    /// Run the SFU in single-port mode on this UDP port.
    #[arg(long)]
    single_port: Option<u16>,
}

type Inbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<SfuEvent>>>;

struct Bridge {
    sfu: SfuHandle,
    inboxes: Mutex<HashMap<String, Inbox>>,
    reports: mpsc::UnboundedSender<Value>,
}

/// The ack a browser would get from the gateway for this failure.
fn error_json(e: &talkconnect::sfu::SfuError) -> Value {
    let err = talkconnect::error::ApiError::from(e.clone());
    json!({"ok": false, "error": err.payload()})
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("page.html"))
}

async fn join(bridge: web::Data<Bridge>, body: web::Json<Value>) -> HttpResponse {
    let room = body["room"].as_str().unwrap_or_default().to_owned();
    let user = body["user"].as_str().unwrap_or_default().to_owned();
    let publish = body["publish"].as_bool().unwrap_or(false);
    let (tx, rx) = mpsc::unbounded_channel();
    bridge
        .inboxes
        .lock()
        .unwrap()
        .insert(user.clone(), Arc::new(tokio::sync::Mutex::new(rx)));
    match bridge
        .sfu
        .join(&room, &user, JoinOptions { publish }, tx)
        .await
    {
        Ok(()) => {
            HttpResponse::Ok().json(json!({"ok": true, "iceServers": bridge.sfu.ice_servers()}))
        }
        Err(e) => HttpResponse::Ok().json(error_json(&e)),
    }
}

async fn signal(bridge: web::Data<Bridge>, body: web::Json<Value>) -> HttpResponse {
    let room = body["room"].as_str().unwrap_or_default();
    let user = body["user"].as_str().unwrap_or_default();
    let event = body["event"].as_str().unwrap_or_default();
    let result = match ClientSignal::from_event(event, body["payload"].clone()) {
        Ok(signal) => bridge.sfu.signal(room, user, signal).await,
        Err(e) => Err(e),
    };
    HttpResponse::Ok().json(match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => error_json(&e),
    })
}

fn event_json(event: SfuEvent) -> Value {
    match event.kind {
        SfuEventKind::Signal(s) => json!({"event": s.event_name(), "payload": s.payload()}),
        SfuEventKind::Connected => json!({"event": "sfu:connected", "payload": null}),
        SfuEventKind::Closed(reason) => json!({"event": "sfu:closed", "payload": reason}),
    }
}

async fn events(
    bridge: web::Data<Bridge>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let user = query.get("user").cloned().unwrap_or_default();
    let inbox = bridge.inboxes.lock().unwrap().get(&user).cloned();
    let Some(inbox) = inbox else {
        return HttpResponse::NotFound().finish();
    };
    let mut rx = inbox.lock().await;
    let mut out = Vec::new();
    if let Ok(Some(first)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        out.push(event_json(first));
        while let Ok(next) = rx.try_recv() {
            out.push(event_json(next));
        }
    }
    HttpResponse::Ok().json(out)
}

async fn report(bridge: web::Data<Bridge>, body: web::Json<Value>) -> HttpResponse {
    let _ = bridge.reports.send(body.into_inner());
    HttpResponse::Ok().json(json!({"ok": true}))
}

fn out(line: &str) {
    std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes()).ok();
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc_dtls=error".into()),
        )
        .try_init();
    let args = Args::parse();
    let sfu = Sfu::start(SfuConfig {
        single_udp_port: args.single_port,
        ..SfuConfig::loopback(44000, 44099)
    })
    .expect("sfu");
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let bridge = web::Data::new(Bridge {
        sfu: sfu.handle(),
        inboxes: Mutex::new(HashMap::new()),
        reports: reports_tx,
    });
    let server = HttpServer::new({
        let bridge = bridge.clone();
        move || {
            App::new()
                .app_data(bridge.clone())
                .route("/", web::get().to(page))
                .route("/join", web::post().to(join))
                .route("/signal", web::post().to(signal))
                .route("/events", web::get().to(events))
                .route("/report", web::post().to(report))
        }
    })
    .workers(1)
    .bind(("127.0.0.1", args.http_port))?
    .run();
    let server_handle = server.handle();
    actix_web::rt::spawn(server);

    let mut browsers = Vec::new();
    let mut launch = |user: String, publish: bool| {
        let url = format!(
            "http://127.0.0.1:{}/?room=probe&user={user}&publish={}",
            args.http_port,
            u8::from(publish)
        );
        let profile = std::env::temp_dir().join(format!("sfu-probe-{user}-{}", std::process::id()));
        let child = std::process::Command::new(&args.chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
                &format!("--user-data-dir={}", profile.display()),
                &url,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromium starts");
        browsers.push((child, profile));
    };
    for i in 0..args.publishers {
        launch(format!("pub{i}"), true);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..args.subscribers {
        launch(format!("sub{i}"), false);
    }

    // Done when every receiver saw 90 frames from every other publisher.
    let wanted =
        args.publishers * args.subscribers + args.publishers * args.publishers.saturating_sub(1);
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while done < wanted {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(report)) => {
                out(&format!("report {report}"));
                if report["kind"] == "frames" {
                    done += 1;
                }
            }
            _ => break,
        }
    }
    let stats = sfu.handle().stats();
    out(&format!(
        "result: {done}/{wanted} receiver×publisher video streams reached 90 decoded frames; sfu stats {stats:?}"
    ));
    for (mut child, profile) in browsers {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(profile);
    }
    server_handle.stop(true).await;
    sfu.shutdown().await;
    if done < wanted {
        std::process::exit(1);
    }
    Ok(())
}
