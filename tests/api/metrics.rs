//! `/metrics`: a scripted session (two users, a room, Socket.IO sockets on both transports,
//! chat, media through the SFU with real webrtc-rs peers) moves the counters and gauges it
//! should; the exposition parses (prometheus-parse here, and `promtool check metrics` when
//! installed: scripts/test installs it, CI requires it); the token is required on the main
//! port; the admin address needs none; the Grafana dashboard names only metrics that exist.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use talkconnect_testkit::sfu_client::{Client, wait_for};

use crate::helpers::{Backend, TestApp, redis_reachable};
use crate::sio::Sio;

const TOKEN: &str = "metrics-token-for-tests-0123";

/// One scrape, parsed: `name{labels}` → value, and the set of names.
struct Scrape {
    text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
        assert!(!parsed.samples.is_empty());
        Scrape {
            samples: parsed.samples,
            text,
        }
    }

    /// The value of `name` with every label in `labels` (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Every sample name as written (histograms' `_bucket`, `_sum`, `_count` included).
    fn names(&self) -> HashSet<String> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect()
    }
}

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}/metrics", app.address));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn scraped(app: &TestApp) -> Scrape {
    let response = scrape(app, Some(TOKEN)).await;
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Scrape::parse(response.text().await.unwrap())
}

/// Scrapes until `done` holds (events reach the counters after the request that caused
/// them; database counts are reused for a few seconds), at most 30 s.
async fn scrape_until(app: &TestApp, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..300 {
        let scrape = scraped(app).await;
        if done(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scraped(app).await
}

/// `promtool check metrics` on the exposition, when promtool is installed (always in CI).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("promtool not installed: the exposition is checked by prometheus-parse only");
            return;
        }
        Err(e) => panic!("promtool is required in CI (scripts/test installs it): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // Exit 1 with lint remarks only (naming advice) would still be a parsed exposition;
    // a parse error is reported as "error while linting".
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics: {said}");
}

#[actix_web::test]
async fn a_scripted_session_moves_the_counters_and_gauges() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__METRICS__TOKEN", TOKEN),
            ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
            ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
            ("TALKCONNECT__SFU__UDP_PORT_MIN", "46900"),
            ("TALKCONNECT__SFU__UDP_PORT_MAX", "46919"),
        ],
    )
    .await;
    let before = scraped(&app).await;

    let host = app.guest("Host").await;
    let guest = app.guest("Guest").await;
    let room = app.room(&host, json!({"title": "Measured"})).await;
    let (status, _) = app.join(room, &guest).await;
    assert_eq!(status, 200);

    let mut host_socket = Sio::connect(&app.address, &host.token).await;
    let mut guest_socket = Sio::connect(&app.address, &guest.token).await;
    for socket in [&mut host_socket, &mut guest_socket] {
        let ack = socket.call("room:join", json!({ "roomId": room })).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    for line in ["hello", "how are you"] {
        let ack = host_socket
            .call("chat:message", json!({ "message": line }))
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let refused = guest_socket
        .call("room:join", json!({ "roomId": "not-a-uuid" }))
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    let refused_code = refused["error"]["code"].as_str().unwrap().to_owned();
    // A name no handler knows: counted, but never under its own name.
    guest_socket.send(r#"42["invented:by-a-client",{}]"#).await;
    // A long-polling session that stays open.
    let (status, _) = app
        .client
        .get(format!(
            "{}/socket.io/?EIO=4&transport=polling",
            app.address
        ))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, 200);

    // Media: both publish through this application's SFU and receive each other.
    let sfu = app.state.media.sfu_handle().expect("SFU mode");
    let room_key = room.to_string();
    let mut a = Client::join(&sfu, &room_key, &host.id.to_string(), true).await;
    let mut b = Client::join(&sfu, &room_key, &guest.id.to_string(), true).await;
    a.start_media(30, 400);
    b.start_media(30, 400);
    let (a_state, b_state) = (a.state.clone(), b.state.clone());
    let (host_id, guest_id) = (host.id.to_string(), guest.id.to_string());
    wait_for("media both ways", Duration::from_secs(20), || {
        a_state.received_from(&guest_id).video > 20 && b_state.received_from(&host_id).video > 20
    })
    .await;

    let after = scraped(&app).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    // HTTP: counted under the route's pattern, never the path.
    assert!(
        delta(
            "talkconnect_http_requests_total",
            &[
                ("route", "/api/rooms/:room_id/join"),
                ("method", "POST"),
                ("status", "200")
            ]
        ) >= 1.0,
        "{}",
        after.text
    );
    assert!(
        delta(
            "talkconnect_http_request_duration_seconds_count",
            &[("route", "/api/rooms")]
        ) >= 1.0
    );
    assert!(
        !after.text.contains(&room.to_string()),
        "a room id became a label"
    );
    // Socket.IO.
    assert!(
        after.value(
            "talkconnect_socketio_connections",
            &[("transport", "websocket")]
        ) >= 2.0
    );
    assert!(
        after.value(
            "talkconnect_socketio_connections",
            &[("transport", "polling")]
        ) >= 1.0
    );
    assert!(after.value("talkconnect_socketio_sockets", &[]) >= 2.0);
    let received = |event| {
        delta(
            "talkconnect_socketio_events_received_total",
            &[("event", event)],
        )
    };
    assert_eq!(received("room:join"), 3.0);
    assert_eq!(received("chat:message"), 2.0);
    assert_eq!(received("unknown"), 1.0);
    assert!(!after.text.contains("invented:by-a-client"));
    assert!(
        delta(
            "talkconnect_socketio_events_sent_total",
            &[("event", "chat:message")]
        ) >= 2.0
    );
    assert_eq!(
        delta(
            "talkconnect_socketio_acks_refused_total",
            &[("code", &refused_code)]
        ),
        1.0
    );
    // Rooms, from the bus and the database.
    assert_eq!(delta("talkconnect_rooms_created_total", &[]), 1.0);
    assert_eq!(delta("talkconnect_room_joins_total", &[]), 1.0);
    assert_eq!(delta("talkconnect_chat_messages_total", &[]), 2.0);
    // Counted in the database, reused for a few seconds: the first scrape saw none.
    let counted = scrape_until(&app, |s| s.value("talkconnect_rooms_live", &[]) >= 1.0).await;
    assert_eq!(counted.value("talkconnect_rooms_live", &[]), 1.0);
    assert_eq!(counted.value("talkconnect_seats_taken", &[]), 2.0);
    // SFU.
    assert_eq!(after.value("talkconnect_sfu_peers", &[]), 2.0);
    assert!(after.value("talkconnect_sfu_ports_leased", &[]) >= 2.0);
    for moved in [
        "talkconnect_sfu_packets_received_total",
        "talkconnect_sfu_received_bytes_total",
        "talkconnect_sfu_packets_forwarded_total",
        "talkconnect_sfu_forwarded_bytes_total",
    ] {
        assert!(delta(moved, &[]) > 40.0, "{moved}: {}", after.text);
    }
    // Retransmission counters are exported, one series per outcome (loopback loses nothing).
    let names = after.names();
    for listed in [
        "talkconnect_sfu_nack_packets_requested_total",
        "talkconnect_sfu_nack_packets_total",
    ] {
        assert!(names.contains(listed), "{listed}: {}", after.text);
    }
    for outcome in ["answered", "relayed", "limited"] {
        assert!(
            after.text.contains(&format!(
                "talkconnect_sfu_nack_packets_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {}",
            after.text
        );
    }
    // At least an RTP header per packet.
    assert!(
        after.value("talkconnect_sfu_forwarded_bytes_total", &[])
            > after.value("talkconnect_sfu_packets_forwarded_total", &[]) * 12.0
    );
    // Database pool and process.
    assert!(delta("talkconnect_db_pool_checkouts_total", &[]) >= 5.0);
    assert!(after.value("talkconnect_db_pool_max_connections", &[]) >= 1.0);
    assert!(after.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(after.value("process_open_fds", &[]) > 3.0);

    // The room ends: by its host.
    a.close().await;
    b.close().await;
    let (status, _) = app
        .delete(&format!("/api/rooms/{room}"), Some(&host.token))
        .await;
    assert!(status.is_success(), "{status}");
    let ended = |s: &Scrape| s.value("talkconnect_rooms_ended_total", &[("cause", "host_ended")]);
    let last = scrape_until(&app, |s| {
        ended(s) >= 1.0 && s.value("talkconnect_rooms_live", &[]) == 0.0
    })
    .await;
    assert_eq!(ended(&last) - ended(&before), 1.0);
    assert_eq!(last.value("talkconnect_seats_taken", &[]), 0.0);

    promtool_accepts(&last.text);
    dashboard_names_only_scraped_metrics(&last, |name| !name.starts_with("talkconnect_redis_"));
}

/// Every metric an expression of deploy/grafana-dashboard.json names (those `which` picks)
/// exists in a real scrape.
fn dashboard_names_only_scraped_metrics(scrape: &Scrape, which: impl Fn(&str) -> bool) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    collect_expressions(&dashboard, &mut expressions);
    assert!(expressions.len() >= 10, "{expressions:?}");
    let scraped = scrape.names();
    let mut missing = Vec::new();
    for expr in &expressions {
        for name in metric_names(expr) {
            if which(&name) && !scraped.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard names metrics no scrape has: {missing:?}"
    );
}

fn collect_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::String(expr)) = fields.get("expr") {
                out.push(expr.clone());
            }
            fields.values().for_each(|v| collect_expressions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers of ours (`talkconnect_…`, `process_…`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
            continue;
        }
        if current.starts_with("talkconnect_") || current.starts_with("process_") {
            names.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    names
}

#[actix_web::test]
async fn the_main_port_needs_the_token() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("TALKCONNECT__METRICS__TOKEN", TOKEN)]).await;
    for token in [None, Some("wrong-token-wrong-token-wrong")] {
        let response = scrape(&app, token).await;
        assert_eq!(response.status(), 401, "{token:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{body}");
    }
    // The right token, in a header that is not Bearer, is refused too.
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(scrape(&app, Some(TOKEN)).await.status(), 200);
}

#[actix_web::test]
async fn the_admin_address_serves_metrics_and_the_main_port_does_not() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("TALKCONNECT__METRICS__LISTEN", "127.0.0.1:0")],
    )
    .await;
    let admin = app.metrics_address.expect("an admin address");
    let response = app
        .client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let parsed = Scrape::parse(text);
    assert!(parsed.names().contains("talkconnect_socketio_connections"));
    let other = app
        .client
        .get(format!("http://{admin}/api/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    // On the main port, without a token configured: as if it did not exist.
    for token in [None, Some(TOKEN)] {
        let response = scrape(&app, token).await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{body}");
    }
    // Both off: no admin server either.
    let off = TestApp::spawn(Backend::Sqlite).await;
    assert!(off.metrics_address.is_none());
    assert_eq!(scrape(&off, None).await.status(), 404);
}

#[actix_web::test]
async fn rate_limit_refusals_are_counted_by_budget() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__METRICS__TOKEN", TOKEN),
            ("TALKCONNECT__RATE_LIMIT__ENABLED", "true"),
            ("TALKCONNECT__RATE_LIMIT__CHAT_PER_USER__COUNT", "1"),
            ("TALKCONNECT__RATE_LIMIT__CHAT_PER_USER__PER_SECS", "3600"),
        ],
    )
    .await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Limited"})).await;
    let mut socket = Sio::connect(&app.address, &host.token).await;
    let ack = socket.call("room:join", json!({ "roomId": room })).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let first = socket.call("chat:message", json!({"message": "one"})).await;
    assert_eq!(first["ok"], true, "{first}");
    let second = socket.call("chat:message", json!({"message": "two"})).await;
    assert_eq!(second["error"]["code"], "RATE_LIMITED", "{second}");

    let scrape = scraped(&app).await;
    assert_eq!(
        scrape.value("talkconnect_rate_limited_total", &[("budget", "chat")]),
        1.0
    );
    assert_eq!(
        scrape.value("talkconnect_rate_limited_total", &[("budget", "room:join")]),
        0.0
    );
    assert_eq!(
        scrape.value(
            "talkconnect_socketio_acks_refused_total",
            &[("code", "RATE_LIMITED")]
        ),
        1.0
    );
}

/// In cluster mode the Redis link shows: up, and no reconnection yet.
#[actix_web::test]
async fn a_cluster_replica_reports_its_redis_link() {
    if !redis_reachable() {
        return;
    }
    let prefix = format!("tc-test:{}:", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(
        Backend::Postgres,
        &[
            ("TALKCONNECT__METRICS__TOKEN", TOKEN),
            ("TALKCONNECT__REDIS__URL", "redis://127.0.0.1:6379"),
            ("TALKCONNECT__REDIS__KEY_PREFIX", prefix.as_str()),
        ],
    )
    .await;
    let scrape = scraped(&app).await;
    assert_eq!(
        scrape.value("talkconnect_redis_up", &[]),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(scrape.value("talkconnect_redis_reconnects_total", &[]), 0.0);
    // An event goes through pub/sub (a replica hears its own too) and is timed.
    let host = app.guest("Host").await;
    app.room(&host, serde_json::json!({ "title": "Over Redis" }))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let scrape = loop {
        let scrape = scraped(&app).await;
        if scrape.value("talkconnect_redis_pubsub_messages_total", &[]) > 0.0
            || std::time::Instant::now() > deadline
        {
            break scrape;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        scrape.value("talkconnect_redis_pubsub_messages_total", &[]) >= 1.0,
        "{}",
        scrape.text
    );
    assert!(scrape.value("talkconnect_redis_pubsub_lag_milliseconds_total", &[]) >= 0.0);
    dashboard_names_only_scraped_metrics(&scrape, |name| name.starts_with("talkconnect_redis_"));
    // Embedded mode has no such family.
    let embedded =
        TestApp::spawn_with(Backend::Sqlite, &[("TALKCONNECT__METRICS__TOKEN", TOKEN)]).await;
    assert!(
        !scraped(&embedded)
            .await
            .names()
            .contains("talkconnect_redis_up")
    );
}
