//! Instance admins and bans (docs/MODERATION.md "The instance: admins and bans"): every
//! `/api/admin/*` route and its refusals, a ban stopping REST and an open socket at once,
//! guests from a banned network, expiry, and `talkconnect admin` against the real binary.

use std::time::Duration;

use diesel::prelude::*;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use talkconnect::db::schema::reports;
use talkconnect::ids::{RoomId, UserId};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, TestUser, code, redis_reachable};
use crate::on_every_backend;

on_every_backend!(
    admin_routes_refuse_everyone_else,
    a_ban_stops_rest_and_the_socket_at_once_and_frees_the_seat,
    a_guest_from_a_banned_network_is_refused,
    bans_refuse_admins_oneself_and_bad_input,
    a_ban_for_a_while_ends_by_itself,
    admins_see_live_rooms_and_end_them,
    admins_list_and_resolve_reports,
    the_command_line_bans_and_the_running_server_learns_of_it,
);

/// Two replicas on one Redis: a ban taken by one stops the token and the socket on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_replica_stops_the_user_on_the_other() {
    if !redis_reachable() {
        return;
    }
    let prefix = format!("tc-test:{}:", uuid::Uuid::new_v4().simple());
    let cluster = |node: &'static str| {
        let mut settings = ADMINS.to_vec();
        settings.extend([
            ("TALKCONNECT__REDIS__URL", "redis://127.0.0.1:6379"),
            ("TALKCONNECT__REDIS__KEY_PREFIX", prefix.as_str()),
            ("TALKCONNECT__CLUSTER__NODE_ID", node),
        ]);
        settings
    };
    let one = TestApp::spawn_with(Backend::Postgres, &cluster("one")).await;
    let two = one.replica(&cluster("two")).await;
    let boss = boss(&one).await;
    let troll = two.guest("Troll").await;
    let room = two.room(&troll, json!({"title": "Over there"})).await;
    let mut ws = socket(&two, &troll.token).await.expect("connected");
    let (status, _) = two.get("/api/auth/me", Some(&troll.token)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = one
        .post(
            "/api/admin/bans",
            Some(&boss.token),
            json!({"userId": troll.id, "reason": "spam"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (notice, after) = wait_for_event(&mut ws, "session:banned").await;
    assert_eq!(notice, json!({"reason": "spam", "until": null}));
    assert_eq!(after.last().map(String::as_str), Some("41"), "disconnected");
    // The socket was closed after the replica took in the ban: its token is refused there.
    let (status, body) = two.get("/api/auth/me", Some(&troll.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "BANNED");
    assert_eq!(
        socket(&two, &troll.token).await.err().as_deref(),
        Some("BANNED")
    );
    // Their room (they were alone) ended when the seat was freed.
    let mut ended = false;
    for _ in 0..50 {
        let (_, detail) = one.get(&format!("/api/rooms/{room}"), None).await;
        if detail["status"] == "ENDED" {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended);
}

const ADMINS: &[(&str, &str)] = &[
    ("TALKCONNECT__MODERATION__ADMINS", "boss"),
    ("TALKCONNECT__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
];

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, ADMINS).await
}

/// Registers `boss`, the configured admin.
async fn boss(app: &TestApp) -> TestUser {
    let (status, body) = app
        .post(
            "/api/auth/register",
            None,
            json!({"username": "boss", "email": "boss@example.com", "password": "long enough pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    TestUser {
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        token: body["token"].as_str().unwrap().to_owned(),
        display_name: "boss".into(),
    }
}

/// A guest made from `ip` (the test server trusts 127.0.0.1 as a proxy).
async fn guest_from(app: &TestApp, name: &str, ip: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}/api/auth/guest", app.address))
        .header("X-Forwarded-For", ip)
        .json(&json!({ "displayName": name }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    crate::helpers::check_openapi(&reqwest::Method::POST, "/api/auth/guest", status, &body);
    (status, body)
}

fn user_of(body: &Value) -> TestUser {
    TestUser {
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        token: body["token"].as_str().unwrap().to_owned(),
        display_name: body["user"]["displayName"].as_str().unwrap().to_owned(),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Socket.IO connection with `token`: `Ok(ws)` once connected, `Err(message)` when refused.
async fn socket(app: &TestApp, token: &str) -> Result<Ws, String> {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        app.address.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = next_packet(&mut ws).await.expect("open packet");
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text(format!(r#"40{{"token":"{token}"}}"#)))
        .await
        .unwrap();
    let answer = next_packet(&mut ws).await.expect("connect answer");
    if answer.starts_with("40") {
        Ok(ws)
    } else {
        let error: Value = serde_json::from_str(answer.trim_start_matches("44")).unwrap();
        Err(error["message"].as_str().unwrap_or_default().to_owned())
    }
}

/// The next Socket.IO text packet (pings answered), or `None` when the socket closed.
async fn next_packet(ws: &mut Ws) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server answered in time");
        match frame {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Reads events until `name`; answers its payload and what came after it (until close).
async fn wait_for_event(ws: &mut Ws, name: &str) -> (Value, Vec<String>) {
    let prefix = format!(r#"42["{name}","#);
    loop {
        let packet = next_packet(ws)
            .await
            .expect("the event came before the socket closed");
        if let Some(rest) = packet.strip_prefix(&prefix) {
            let body: Value = serde_json::from_str(rest.trim_end_matches(']')).unwrap();
            let mut after = Vec::new();
            while let Some(p) = next_packet(ws).await {
                after.push(p);
                if after.last().is_some_and(|p| p == "41") {
                    break;
                }
            }
            return (body, after);
        }
    }
}

const ADMIN_GETS: &[&str] = &[
    "/api/admin/rooms",
    "/api/admin/reports",
    "/api/admin/bans",
    "/api/admin/audit",
];

async fn admin_routes_refuse_everyone_else(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let guest = app.guest("Someone").await;
    let some_id = uuid::Uuid::new_v4();
    for path in ADMIN_GETS {
        let (status, body) = app.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(code(&body), "UNAUTHENTICATED");
        let (status, body) = app.get(path, Some(&guest.token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(code(&body), "NOT_ADMIN");
        let (status, _) = app.get(path, Some(&boss.token)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let writes = [
        app.delete(&format!("/api/admin/rooms/{some_id}"), Some(&guest.token))
            .await,
        app.post_empty(
            &format!("/api/admin/reports/{some_id}/resolve"),
            Some(&guest.token),
        )
        .await,
        app.post(
            "/api/admin/bans",
            Some(&guest.token),
            json!({"userId": boss.id}),
        )
        .await,
        app.delete(&format!("/api/admin/bans/{}", boss.id), Some(&guest.token))
            .await,
    ];
    for (status, body) in writes {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "NOT_ADMIN");
    }
    let (_, me) = app.get("/api/auth/me", Some(&boss.token)).await;
    assert_eq!(me["isAdmin"], true);
    let (_, me) = app.get("/api/auth/me", Some(&guest.token)).await;
    assert_eq!(me["isAdmin"], false);
}

async fn a_ban_stops_rest_and_the_socket_at_once_and_frees_the_seat(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let host = app.guest("Host").await;
    let (_, body) = guest_from(&app, "Troll", "203.0.113.7").await;
    let troll = user_of(&body);
    let room = app.room(&host, json!({"title": "Chat"})).await;
    assert_eq!(app.join(room, &troll).await.0, StatusCode::OK);
    let mut ws = socket(&app, &troll.token).await.expect("connected");

    let (status, body) = app
        .post(
            "/api/admin/bans",
            Some(&boss.token),
            json!({"userId": troll.id, "reason": "spam", "durationSecs": 3600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ban"]["userId"], troll.id.to_string());
    assert_eq!(body["ban"]["ipBanned"], true);
    assert_eq!(body["ban"]["reason"], "spam");
    assert_eq!(body["ban"]["bannedBy"], boss.id.to_string());

    // REST at once: the answer has left, so the token is refused.
    let (status, body) = app.get("/api/auth/me", Some(&troll.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "BANNED");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("until"),
        "{body}"
    );
    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&troll.token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "BANNED");

    // The open socket hears why and is closed.
    let (notice, after) = wait_for_event(&mut ws, "session:banned").await;
    assert_eq!(notice["reason"], "spam");
    assert!(notice["until"].is_string(), "{notice}");
    assert!(
        after.iter().all(|p| !p.starts_with("42[\"session:banned")),
        "{after:?}"
    );
    assert_eq!(after.last().map(String::as_str), Some("41"), "disconnected");
    assert_eq!(
        socket(&app, &troll.token).await.err().as_deref(),
        Some("BANNED")
    );

    // The seat is freed.
    let mut freed = false;
    for _ in 0..50 {
        let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
        if detail["participantCount"] == 1 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the banned user's seat was freed");

    let (_, list) = app.get("/api/admin/bans", Some(&boss.token)).await;
    assert_eq!(list["bans"].as_array().unwrap().len(), 1);
    assert_eq!(list["bans"][0]["user"]["displayName"], "Troll");

    // Unbanning lets the token in again; a second unban finds nothing.
    let (status, _) = app
        .delete(&format!("/api/admin/bans/{}", troll.id), Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/auth/me", Some(&troll.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(socket(&app, &troll.token).await.is_ok());
    let (status, body) = app
        .delete(&format!("/api/admin/bans/{}", troll.id), Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");

    let (_, audit) = app.get("/api/admin/audit", Some(&boss.token)).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unban", "ban"]);
    assert_eq!(audit["entries"][1]["actorId"], boss.id.to_string());
    assert_eq!(audit["entries"][1]["targetUserId"], troll.id.to_string());
    let (_, page) = app.get("/api/admin/audit?limit=1", Some(&boss.token)).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, next) = app
        .get(
            &format!("/api/admin/audit?limit=1&cursor={cursor}"),
            Some(&boss.token),
        )
        .await;
    assert_eq!(next["entries"][0]["action"], "ban");
    assert_eq!(next["nextCursor"], Value::Null);
}

async fn a_guest_from_a_banned_network_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let (_, body) = guest_from(&app, "Troll", "2001:db8:7:7::1").await;
    let troll = user_of(&body);
    let (status, _) = app
        .post(
            "/api/admin/bans",
            Some(&boss.token),
            json!({"userId": troll.id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The same /64, another address in it: refused; another network: welcome.
    let (status, body) = guest_from(&app, "Again", "2001:db8:7:7::99").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "BANNED");
    let (status, _) = guest_from(&app, "Other", "2001:db8:7:8::1").await;
    assert_eq!(status, StatusCode::CREATED);
    // Registering from it is allowed (accounts are banned by id), and the hash is kept.
    let response = app
        .client
        .post(format!("{}/api/auth/register", app.address))
        .header("X-Forwarded-For", "2001:db8:7:7::5")
        .json(&json!({"username": "newcomer", "email": "n@example.com", "password": "long enough pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let hashes: Vec<Option<String>> = {
        use talkconnect::db::schema::users;
        let mut conn = app.state.pool.get().unwrap();
        users::table
            .filter(users::display_name.eq_any(["Troll", "newcomer"]))
            .select(users::ip_hash)
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(hashes.len(), 2);
    assert!(hashes[0].is_some() && hashes[0] == hashes[1], "{hashes:?}");
    // Lifting the ban opens the network again.
    app.delete(&format!("/api/admin/bans/{}", troll.id), Some(&boss.token))
        .await;
    let (status, _) = guest_from(&app, "Again", "2001:db8:7:7::99").await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn bans_refuse_admins_oneself_and_bad_input(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let guest = app.guest("Guest").await;
    let ban = |body: Value| app.post("/api/admin/bans", Some(&boss.token), body);
    let (status, body) = ban(json!({"userId": boss.id})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "INVALID_TARGET");
    assert_eq!(body["error"]["message"], "You cannot ban yourself");
    let (status, body) = ban(json!({"userId": uuid::Uuid::new_v4()})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");
    for bad in [
        json!({"userId": guest.id, "durationSecs": 0}),
        json!({"userId": guest.id, "durationSecs": 315_360_001_i64}),
        json!({"userId": guest.id, "reason": "x".repeat(501)}),
    ] {
        let (status, body) = ban(bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(code(&body), "VALIDATION_FAILED");
    }
    let (status, body) = ban(json!({"userId": "not-an-id"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "INVALID_BODY");
    // A duration with a fraction is refused; a whole one written as 3600.0 (an integer to
    // JSON Schema) is taken.
    let (status, body) = ban(json!({"userId": guest.id, "durationSecs": 1.5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "INVALID_BODY");
    let (status, _) = app
        .delete("/api/admin/bans/not-an-id", Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing was written.
    let (_, audit) = app.get("/api/admin/audit", Some(&boss.token)).await;
    assert_eq!(audit["entries"], json!([]));
    let (status, body) = ban(json!({"userId": guest.id, "durationSecs": 3600.0})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["ban"]["until"].is_string());
}

async fn a_ban_for_a_while_ends_by_itself(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let guest = app.guest("Guest").await;
    let (status, _) = app
        .post(
            "/api/admin/bans",
            Some(&boss.token),
            json!({"userId": guest.id, "durationSecs": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.get("/api/auth/me", Some(&guest.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, _) = app.get("/api/auth/me", Some(&guest.token)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/admin/bans", Some(&boss.token)).await;
    assert_eq!(list["bans"], json!([]));
}

async fn admins_see_live_rooms_and_end_them(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let [host, other] = app.guests(["Host", "Other"]).await;
    let room = app.seated_room(&host, "Live one", &[&other]).await;
    insert_report(&app, room, host.id, other.id);

    let (status, body) = app.get("/api/admin/rooms", Some(&boss.token)).await;
    assert_eq!(status, StatusCode::OK);
    let rooms = body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["room"]["id"], room.to_string());
    assert_eq!(rooms[0]["openReports"], 1);
    let roles: Vec<(&str, &str)> = rooms[0]["room"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["displayName"].as_str().unwrap(),
                p["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, [("Host", "HOST"), ("Other", "PARTICIPANT")]);

    let (status, body) = app
        .delete(&format!("/api/admin/rooms/{room}"), Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room"]["status"], "ENDED");
    let (status, body) = app
        .delete(&format!("/api/admin/rooms/{room}"), Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "ROOM_ENDED");
    let (status, body) = app
        .delete(
            &format!("/api/admin/rooms/{}", uuid::Uuid::new_v4()),
            Some(&boss.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "ROOM_NOT_FOUND");
    let (_, body) = app.get("/api/admin/rooms", Some(&boss.token)).await;
    assert_eq!(body["rooms"], json!([]));
    let (_, audit) = app.get("/api/admin/audit", Some(&boss.token)).await;
    assert_eq!(audit["entries"][0]["action"], "end_room");
    assert_eq!(audit["entries"][0]["roomId"], room.to_string());
}

/// A report as helper B's reporting writes it (the admin side reads the table only).
fn insert_report(app: &TestApp, room: RoomId, reporter: UserId, reported: UserId) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let mut conn = app.state.pool.get().unwrap();
    diesel::insert_into(reports::table)
        .values((
            reports::id.eq(&id),
            reports::room_id.eq(room.to_string()),
            reports::reporter_id.eq(reporter.to_string()),
            reports::reported_id.eq(reported.to_string()),
            reports::reason.eq("spam"),
            reports::message.eq(Some("buy my stuff")),
            reports::evidence.eq("[]"),
            reports::created_at.eq(talkconnect::db::now()),
        ))
        .execute(&mut conn)
        .unwrap();
    id
}

async fn admins_list_and_resolve_reports(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let [host, other] = app.guests(["Host", "Other"]).await;
    let room = app.room(&host, json!({"title": "Reports"})).await;
    let first = insert_report(&app, room, host.id, other.id);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = insert_report(&app, room, other.id, host.id);

    let (_, page) = app.get("/api/admin/reports", Some(&boss.token)).await;
    let ids: Vec<&str> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert_eq!(page["reports"][0]["message"], "buy my stuff");

    let (status, body) = app
        .post_empty(
            &format!("/api/admin/reports/{first}/resolve"),
            Some(&boss.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"]["resolvedBy"], boss.id.to_string());
    let at = body["report"]["resolvedAt"].clone();
    assert!(at.is_string());
    // Again: the first resolution stands, no second audit line.
    let (_, again) = app
        .post_empty(
            &format!("/api/admin/reports/{first}/resolve"),
            Some(&boss.token),
        )
        .await;
    assert_eq!(again["report"]["resolvedAt"], at);
    let (_, open) = app
        .get("/api/admin/reports?open=true&limit=1", Some(&boss.token))
        .await;
    assert_eq!(open["reports"][0]["id"], second);
    assert_eq!(open["nextCursor"], Value::Null);
    let (status, body) = app
        .post_empty(
            &format!("/api/admin/reports/{}/resolve", uuid::Uuid::new_v4()),
            Some(&boss.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");
    let (status, body) = app
        .get("/api/admin/reports?limit=0", Some(&boss.token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "INVALID_QUERY");
    let (_, audit) = app.get("/api/admin/audit", Some(&boss.token)).await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
    assert_eq!(audit["entries"][0]["action"], "resolve_report");
}

/// `talkconnect admin` on the server's database: what it writes, the running server
/// refuses within its ban view's re-read.
async fn the_command_line_bans_and_the_running_server_learns_of_it(backend: Backend) {
    let app = spawn(backend).await;
    let boss = boss(&app).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Shell"})).await;
    let url = app.state.settings.database.url.clone();
    let dir = crate::cli::workdir();
    let admin = |args: &[&str]| {
        let output = crate::cli::talkconnect(&dir)
            .env("TALKCONNECT__DATABASE__URL", &url)
            .env("TALKCONNECT__MODERATION__ADMINS", "boss")
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = admin(&["rooms"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&room.to_string()) && out.contains("Host"),
        "{out}"
    );

    let host_id = host.id.to_string();
    let (ok, out, err) = admin(&["ban", &host_id, "--for", "7d", "--reason", "abuse"]);
    assert!(ok, "{err}");
    assert!(out.contains("banned until"), "{out}");
    let (ok, _, err) = admin(&["ban", "boss"]);
    assert!(!ok);
    assert!(err.contains("admin"), "{err}");
    let (ok, _, err) = admin(&["ban", "nobody"]);
    assert!(!ok);
    assert!(err.contains("no user"), "{err}");

    let mut refused = false;
    for _ in 0..80 {
        let (status, _) = app.get("/api/auth/me", Some(&host.token)).await;
        if status == StatusCode::FORBIDDEN {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the server learned of the command line's ban");
    let (_, bans) = app.get("/api/admin/bans", Some(&boss.token)).await;
    assert_eq!(bans["bans"][0]["bannedBy"], Value::Null);
    assert_eq!(bans["bans"][0]["reason"], "abuse");

    let (ok, out, err) = admin(&["audit"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(r#""action":"ban""#) && out.contains(r#""actorId":null"#),
        "{out}"
    );
    let (ok, _, err) = admin(&["unban", &host_id]);
    assert!(ok, "{err}");
    let (ok, _, _) = admin(&["unban", &host_id]);
    assert!(!ok);
    let (ok, out, err) = admin(&["reports"]);
    assert!(ok && out.is_empty(), "{out}{err}");
    // The host's ban ended their room (they were alone): end another one.
    let other = app.guest("Other").await;
    let room = app.room(&other, json!({"title": "Shell 2"})).await;
    let (ok, out, err) = admin(&["end", &room.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("ended"), "{out}");
    let (ok, _, err) = admin(&["end", &room.to_string()]);
    assert!(!ok && err.contains("already ended"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
