//! Chat moderation, blocks and reports (docs/MODERATION.md "Chat", "Blocks", "Reports",
//! `BLOCKED` in "Joining"): every rule and every refusal over REST, the socket events
//! (`chat:delete`, `room:report`, the slow-mode ack) over a real Socket.IO connection, and the
//! report queries the admin pages use. Room settings and roles another part sets (slow mode,
//! co-hosts) are written straight into the database here.

use std::fmt::Display;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use talkconnect::db::schema::{audit_log, reports, room_participants, rooms, user_blocks, users};
use talkconnect::db::{self, DbConnection, DbError};
use talkconnect::ids::{RoomId, UserId};
use talkconnect::moderation::reports::{ReportFilter, list, resolve};

use crate::helpers::{Backend, TestApp, TestUser, check_openapi, code, retry_after};
use crate::on_every_backend;
use crate::sio::Sio;

on_every_backend!(
    authors_hosts_and_cohosts_delete_messages_and_nobody_else,
    slow_mode_paces_participants_but_not_hosts,
    blocks_are_listed_and_keep_people_apart,
    one_user_keeps_at_most_a_thousand_blocks,
    reports_keep_the_last_chat_lines_and_refuse_what_makes_no_sense,
    reports_have_their_own_budget,
    admins_page_through_reports_and_resolve_them,
    the_socket_deletes_reports_and_hears_slow_mode,
);

/// Runs `work` on a database connection of the app.
async fn with_db<T: Send + 'static>(
    app: &TestApp,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> T {
    db::run(&app.state.pool, move |conn| {
        work(conn).map_err(DbError::from)
    })
    .await
    .unwrap()
}

/// Sets the room's slow mode, as the host's settings would.
async fn set_slow_mode(app: &TestApp, room: RoomId, secs: i32) {
    with_db(app, move |conn| {
        diesel::update(rooms::table.find(room.to_string()))
            .set(rooms::slow_mode_secs.eq(secs))
            .execute(conn)
    })
    .await;
}

/// Makes `user` a co-host of `room`, as the host would.
async fn make_cohost(app: &TestApp, room: RoomId, user: UserId) {
    with_db(app, move |conn| {
        diesel::update(
            room_participants::table
                .filter(room_participants::room_id.eq(room.to_string()))
                .filter(room_participants::user_id.eq(user.to_string())),
        )
        .set(room_participants::role.eq("COHOST"))
        .execute(conn)
    })
    .await;
}

/// The audit lines of `action` in `room`, as `(actor, target, details)`.
async fn audit_lines(app: &TestApp, room: RoomId, action: &'static str) -> Vec<(String, Value)> {
    let rows: Vec<(Option<String>, String)> = with_db(app, move |conn| {
        audit_log::table
            .filter(audit_log::room_id.eq(room.to_string()))
            .filter(audit_log::action.eq(action))
            .select((audit_log::actor_id, audit_log::details))
            .load(conn)
    })
    .await;
    rows.into_iter()
        .map(|(actor, details)| {
            (
                actor.unwrap_or_default(),
                serde_json::from_str(&details).unwrap(),
            )
        })
        .collect()
}

async fn say(app: &TestApp, room: RoomId, who: &TestUser, text: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/rooms/{room}/chat"),
        Some(&who.token),
        json!({ "message": text }),
    )
    .await
}

fn block_path(blocked: impl Display) -> String {
    format!("/api/me/blocks/{blocked}")
}

/// `PUT /api/me/blocks/{blocked}` as `who`.
async fn block(app: &TestApp, who: &TestUser, blocked: impl Display) -> (StatusCode, Value) {
    let path = block_path(blocked);
    app.request(reqwest::Method::PUT, &path, Some(&who.token), None)
        .await
}

async fn history(app: &TestApp, room: RoomId, who: &TestUser) -> Vec<String> {
    let (status, page) = app
        .get(&format!("/api/rooms/{room}/chat"), Some(&who.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

async fn authors_hosts_and_cohosts_delete_messages_and_nobody_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, alice, bob, outsider] = app.guests(["Host", "Alice", "Bob", "Outsider"]).await;
    let room = app.seated_room(&host, "Tidy", &[&alice, &bob]).await;
    let other_room = app.room(&outsider, json!({"title": "Elsewhere"})).await;
    let (_, elsewhere) = say(&app, other_room, &outsider, "not here").await;

    let (_, a1) = say(&app, room, &alice, "alice one").await;
    let (_, a2) = say(&app, room, &alice, "alice two").await;
    let (_, b1) = say(&app, room, &bob, "bob one").await;
    say(&app, room, &bob, "bob two").await;
    let delete = |by: &TestUser, id: &Value| {
        let path = format!("/api/rooms/{room}/chat/{}", id.as_str().unwrap());
        let token = by.token.clone();
        let app = &app;
        async move { app.delete(&path, Some(&token)).await }
    };

    // A participant may not delete someone else's line.
    let (status, body) = delete(&bob, &a1["id"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "NOT_COHOST");
    // Someone outside the room may not either.
    let (status, body) = delete(&outsider, &a1["id"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "NOT_A_PARTICIPANT");
    // An unknown id, and a message of another room, are not found here.
    let (status, body) = delete(&host, &json!(uuid::Uuid::new_v4().to_string())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "MESSAGE_NOT_FOUND");
    let (status, body) = delete(&host, &elsewhere["id"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "MESSAGE_NOT_FOUND");
    // A bad id in the path.
    let (status, body) = app
        .delete(&format!("/api/rooms/{room}/chat/nope"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "INVALID_ID");

    // The author deletes their own; the host deletes anyone's; so does a co-host.
    let (status, body) = delete(&alice, &a1["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    let (status, _) = delete(&host, &b1["id"]).await;
    assert_eq!(status, StatusCode::OK);
    make_cohost(&app, room, bob.id).await;
    let (status, _) = delete(&bob, &a2["id"]).await;
    assert_eq!(status, StatusCode::OK);
    // Gone: a second delete finds nothing; the history no longer shows them.
    let (status, body) = delete(&host, &a1["id"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "MESSAGE_NOT_FOUND");
    assert_eq!(history(&app, room, &alice).await, vec!["bob two"]);
    assert_eq!(history(&app, other_room, &outsider).await, vec!["not here"]);

    // Each deletion is audited with its text.
    let lines = audit_lines(&app, room, "delete_message").await;
    assert_eq!(lines.len(), 3);
    let texts: Vec<&str> = lines
        .iter()
        .map(|(_, d)| d["message"].as_str().unwrap())
        .collect();
    for text in ["alice one", "bob one", "alice two"] {
        assert!(texts.contains(&text), "{texts:?}");
    }
    let by_host = lines
        .iter()
        .find(|(_, d)| d["message"] == "bob one")
        .unwrap();
    assert_eq!(by_host.0, host.id.to_string());
}

async fn slow_mode_paces_participants_but_not_hosts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, guest, cohost] = app.guests(["Host", "Guest", "Cohost"]).await;
    let room = app.seated_room(&host, "Slow", &[&guest, &cohost]).await;
    make_cohost(&app, room, cohost.id).await;

    // Off: as fast as the rate limits allow.
    for i in 0..3 {
        let (status, _) = say(&app, room, &guest, &format!("fast {i}")).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    set_slow_mode(&app, room, 30).await;
    // The last message counts: the guest wrote a moment ago.
    let response = app
        .client
        .post(format!("{}/api/rooms/{room}/chat", app.address))
        .bearer_auth(&guest.token)
        .json(&json!({ "message": "too soon" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = retry_after(&response);
    assert!((1..=30).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    check_openapi(
        &reqwest::Method::POST,
        &format!("/api/rooms/{room}/chat"),
        StatusCode::TOO_MANY_REQUESTS,
        &body,
    );
    assert_eq!(code(&body), "SLOW_MODE");
    assert_eq!(body["error"]["details"]["retryAfterSecs"], json!(retry));

    // Hosts and co-hosts are exempt.
    for who in [&host, &host, &cohost, &cohost] {
        let (status, body) = say(&app, room, who, "moderator").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Once the interval has passed (the last message moved 31 s back), one more goes, then
    // the next waits again.
    let guest_id = guest.id;
    with_db(&app, move |conn| {
        diesel::update(
            room_participants::table
                .filter(room_participants::room_id.eq(room.to_string()))
                .filter(room_participants::user_id.eq(guest_id.to_string())),
        )
        .set(room_participants::last_chat_at.eq(db::now() - chrono::Duration::seconds(31)))
        .execute(conn)
    })
    .await;
    let (status, _) = say(&app, room, &guest, "patient").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = say(&app, room, &guest, "again").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "SLOW_MODE");
    // Refused lines are not stored.
    let lines = history(&app, room, &host).await;
    assert!(!lines.iter().any(|l| l == "too soon" || l == "again"));
    // Off again: no wait.
    set_slow_mode(&app, room, 0).await;
    let (status, _) = say(&app, room, &guest, "free").await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn blocks_are_listed_and_keep_people_apart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, pest, friend] = app.guests(["Host", "Pest", "Friend"]).await;
    let room = app.room(&host, json!({"title": "Quiet"})).await;

    // Nobody blocked yet.
    let (status, body) = app.get("/api/me/blocks", Some(&host.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "blocks": [] }));
    // Not yourself, not someone who does not exist, not without signing in.
    let (status, body) = block(&app, &host, host.id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "INVALID_TARGET");
    let (status, body) = block(&app, &host, UserId::random()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "NOT_FOUND");
    let (status, body) = block(&app, &host, "not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "INVALID_ID");
    let (status, body) = app
        .request(reqwest::Method::PUT, &block_path(pest.id), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The host blocks the pest (twice: the same), then the friend.
    for _ in 0..2 {
        let (status, body) = block(&app, &host, pest.id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({}));
    }
    block(&app, &host, friend.id).await;
    let (_, body) = app.get("/api/me/blocks", Some(&host.token)).await;
    let names: Vec<&str> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"Pest") && names.contains(&"Friend"),
        "{names:?}"
    );
    // Only one's own list.
    let (_, theirs) = app.get("/api/me/blocks", Some(&pest.token)).await;
    assert_eq!(theirs, json!({ "blocks": [] }));

    // The blocked cannot join a room where the blocker sits, with a neutral message.
    let (status, body) = app.join(room, &pest).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "BLOCKED");
    assert_eq!(
        body["error"]["message"],
        "You can't join this room right now."
    );
    // Nor the blocker a room where the blocked sits.
    let pest_room = app.room(&pest, json!({"title": "Pest's"})).await;
    let (status, body) = app.join(pest_room, &host).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "BLOCKED");
    // Others are not affected.
    let stranger = app.guest("Stranger").await;
    assert_eq!(app.join(room, &stranger).await.0, StatusCode::OK);
    assert_eq!(app.join(pest_room, &stranger).await.0, StatusCode::OK);
    // Once the blocker has left, the room is open to the blocked.
    let (status, _) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.join(room, &pest).await.0, StatusCode::OK);

    // Unblocked (twice: the same): the host may join the pest's room.
    for _ in 0..2 {
        let (status, body) = app.delete(&block_path(pest.id), Some(&host.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, body) = app.get("/api/me/blocks", Some(&host.token)).await;
    assert_eq!(body["blocks"].as_array().unwrap().len(), 1);
    assert_eq!(app.join(pest_room, &host).await.0, StatusCode::OK);
}

async fn one_user_keeps_at_most_a_thousand_blocks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [blocker, last] = app.guests(["Blocker", "Last"]).await;
    let blocker_id = blocker.id.to_string();
    with_db(&app, move |conn| {
        conn.transaction(|conn| {
            let now = db::now();
            for _ in 0..talkconnect::moderation::blocks::MAX_BLOCKS {
                let id = UserId::random().to_string();
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(&id),
                        users::display_name.eq("Filler"),
                        users::is_guest.eq(true),
                        users::created_at.eq(now),
                    ))
                    .execute(conn)?;
                diesel::insert_into(user_blocks::table)
                    .values((
                        user_blocks::blocker_id.eq(&blocker_id),
                        user_blocks::blocked_id.eq(&id),
                        user_blocks::created_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
    })
    .await;
    let (status, body) = block(&app, &blocker, last.id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "TOO_MANY_BLOCKS");
    // Unblocking one makes room.
    let (_, body) = app.get("/api/me/blocks", Some(&blocker.token)).await;
    let some = body["blocks"][0]["user"]["id"].as_str().unwrap().to_owned();
    app.delete(&block_path(some), Some(&blocker.token)).await;
    let (status, _) = block(&app, &blocker, last.id).await;
    assert_eq!(status, StatusCode::OK);
}

async fn report(app: &TestApp, room: RoomId, by: &TestUser, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/rooms/{room}/reports"), Some(&by.token), body)
        .await
}

async fn reports_keep_the_last_chat_lines_and_refuse_what_makes_no_sense(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, troll, gone, outsider] = app.guests(["Host", "Troll", "Gone", "Outsider"]).await;
    let room = app.seated_room(&host, "Reported", &[&troll, &gone]).await;
    for i in 0..25 {
        let who = if i % 2 == 0 { &troll } else { &host };
        say(&app, room, who, &format!("line {i}")).await;
    }
    // Someone who has left can still be reported.
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&gone.token))
        .await;

    let (status, body) = report(
        &app,
        room,
        &host,
        json!({"userId": troll.id, "reason": "harassment", "message": "  Rude all along.  "}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let filed = &body["report"];
    assert_eq!(filed["reason"], "harassment");
    assert_eq!(filed["message"], "Rude all along.");
    assert_eq!(filed["roomId"], room.to_string());
    assert_eq!(filed["roomTitle"], "Reported");
    assert_eq!(filed["reporter"]["displayName"], "Host");
    assert_eq!(filed["reported"]["displayName"], "Troll");
    assert!(filed["resolvedAt"].is_null());
    let evidence = filed["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 20);
    assert_eq!(evidence[0]["message"], "line 5");
    assert_eq!(evidence[19]["message"], "line 24");
    assert_eq!(evidence[19]["displayName"], "Troll");
    assert_eq!(evidence[19]["userId"], troll.id.to_string());
    let lines = audit_lines(&app, room, "report").await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].0, host.id.to_string());
    assert_eq!(lines[0].1["reportId"], filed["id"]);

    let (status, body) = report(
        &app,
        room,
        &troll,
        json!({"userId": gone.id, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["report"]["message"].is_null());

    // Refusals.
    let cases = [
        (
            &host,
            json!({"userId": host.id, "reason": "spam"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_TARGET",
        ),
        (
            &host,
            json!({"userId": outsider.id, "reason": "spam"}),
            StatusCode::NOT_FOUND,
            "PARTICIPANT_NOT_FOUND",
        ),
        (
            &host,
            json!({"userId": UserId::random(), "reason": "spam"}),
            StatusCode::NOT_FOUND,
            "PARTICIPANT_NOT_FOUND",
        ),
        (
            &outsider,
            json!({"userId": troll.id, "reason": "spam"}),
            StatusCode::FORBIDDEN,
            "NOT_A_PARTICIPANT",
        ),
        (
            &gone,
            json!({"userId": troll.id, "reason": "spam"}),
            StatusCode::FORBIDDEN,
            "NOT_A_PARTICIPANT",
        ),
        (
            &host,
            json!({"userId": troll.id, "reason": "rude"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            &host,
            json!({"userId": troll.id, "reason": "spam", "message": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            &host,
            json!({"reason": "spam"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_BODY",
        ),
    ];
    for (who, body, status, expected) in cases {
        let (got, answer) = report(&app, room, who, body.clone()).await;
        assert_eq!((got, code(&answer)), (status, expected), "{body}: {answer}");
    }
    let (status, body) = report(
        &app,
        RoomId::random(),
        &host,
        json!({"userId": troll.id, "reason": "spam"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ROOM_NOT_FOUND")
    );
    // 500 characters are fine.
    let (status, _) = report(
        &app,
        room,
        &host,
        json!({"userId": troll.id, "reason": "other", "message": "á".repeat(500)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(audit_lines(&app, room, "report").await.len(), 3);
}

async fn reports_have_their_own_budget(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TALKCONNECT__RATE_LIMIT__ENABLED", "true"),
            ("TALKCONNECT__RATE_LIMIT__REPORT_PER_USER__COUNT", "2"),
        ],
    )
    .await;
    let [host, troll] = app.guests(["Host", "Troll"]).await;
    let room = app.seated_room(&host, "Budget", &[&troll]).await;
    let body = json!({"userId": troll.id, "reason": "spam"});
    for _ in 0..2 {
        let (status, answer) = report(&app, room, &host, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (status, answer) = report(&app, room, &host, body.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&answer), "RATE_LIMITED");
    // Someone else's budget is their own.
    let (status, _) = report(
        &app,
        room,
        &troll,
        json!({"userId": host.id, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn admins_page_through_reports_and_resolve_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, troll] = app.guests(["Host", "Troll"]).await;
    let room = app.seated_room(&host, "Admin view", &[&troll]).await;
    let mut ids = Vec::new();
    for reason in ["spam", "hate", "other"] {
        let (_, body) = report(
            &app,
            room,
            &host,
            json!({"userId": troll.id, "reason": reason}),
        )
        .await;
        ids.push(body["report"]["id"].as_str().unwrap().to_owned());
    }
    // Newest first, in pages.
    let (first, next) = with_db(&app, |conn| list(conn, ReportFilter::Open, 2, None)).await;
    let reasons: Vec<&str> = first.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, vec!["other", "hate"]);
    assert_eq!(first[0].room_title.as_deref(), Some("Admin view"));
    assert_eq!(first[0].reported.as_ref().unwrap().display_name, "Troll");
    let (second, end) = with_db(&app, move |conn| list(conn, ReportFilter::Open, 2, next)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].reason.as_str(), "spam");
    assert!(end.is_none());

    // Resolved by an admin: out of the open list, still in the whole one; audited once.
    let admin = host.id;
    let target: uuid::Uuid = ids[1].parse().unwrap();
    let resolved = with_db(&app, move |conn| {
        resolve(conn, target, Some(admin)).map_err(|e| match e {
            talkconnect::moderation::reports::ReportError::Db(DbError::Query(q)) => q,
            other => panic!("{other}"),
        })
    })
    .await;
    assert!(resolved.resolved_at.is_some());
    assert_eq!(resolved.resolved_by, Some(admin));
    let again = with_db(&app, move |conn| {
        Ok(resolve(conn, target, None).map(|r| r.resolved_by).ok())
    })
    .await;
    assert_eq!(again, Some(Some(admin)), "a second resolve changes nothing");
    assert_eq!(audit_lines(&app, room, "resolve_report").await.len(), 1);
    let (open, _) = with_db(&app, |conn| list(conn, ReportFilter::Open, 10, None)).await;
    assert_eq!(open.len(), 2);
    let (all, _) = with_db(&app, |conn| list(conn, ReportFilter::All, 10, None)).await;
    assert_eq!(all.len(), 3);
    let counts = with_db(&app, move |conn| {
        talkconnect::moderation::reports::open_counts(conn, &[room, RoomId::random()])
    })
    .await;
    assert_eq!(counts.get(&room), Some(&2));
    assert_eq!(counts.len(), 1);
    // An unknown report.
    let missing = with_db(&app, |conn| {
        Ok(resolve(conn, uuid::Uuid::new_v4(), None).is_err())
    })
    .await;
    assert!(missing);
    // Rows are what the document says.
    let stored: i64 = with_db(&app, |conn| reports::table.count().get_result(conn)).await;
    assert_eq!(stored, 3);
}

async fn the_socket_deletes_reports_and_hears_slow_mode(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [host, guest] = app.guests(["Host", "Guest"]).await;
    let room = app.room(&host, json!({"title": "Live moderation"})).await;
    let mut host_socket = Sio::connect(&app.address, &host.token).await;
    let mut guest_socket = Sio::connect(&app.address, &guest.token).await;
    for socket in [&mut host_socket, &mut guest_socket] {
        let ack = socket.call("room:join", json!({ "roomId": room })).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    // chat:delete: refused to a participant for someone else's line, then done by the host;
    // both sockets hear chat:deleted.
    let sent = guest_socket
        .call("chat:message", json!({ "roomId": room, "message": "oops" }))
        .await;
    let message_id = sent["message"]["id"].clone();
    let mine = host_socket
        .call(
            "chat:message",
            json!({ "roomId": room, "message": "host line" }),
        )
        .await;
    let refused = guest_socket
        .call(
            "chat:delete",
            json!({ "roomId": room, "messageId": mine["message"]["id"] }),
        )
        .await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "NOT_COHOST");
    let missing = host_socket
        .call(
            "chat:delete",
            json!({ "roomId": room, "messageId": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_eq!(missing["error"]["code"], "MESSAGE_NOT_FOUND");
    let ack = host_socket
        .call(
            "chat:delete",
            json!({ "roomId": room, "messageId": message_id }),
        )
        .await;
    assert_eq!(ack, json!({ "ok": true }));
    let expected = json!({ "roomId": room, "messageId": message_id });
    assert_eq!(guest_socket.event("chat:deleted").await, expected);
    assert_eq!(host_socket.event("chat:deleted").await, expected);
    assert_eq!(history(&app, room, &guest).await, vec!["host line"]);

    // room:report.
    let ack = guest_socket
        .call(
            "room:report",
            json!({ "roomId": room, "userId": host.id, "reason": "spam", "message": "ads" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["report"]["reason"], "spam");
    assert_eq!(ack["report"]["reportedId"], host.id.to_string());
    assert_eq!(ack["report"]["evidence"][0]["message"], "host line");
    let refused = guest_socket
        .call(
            "room:report",
            json!({ "roomId": room, "userId": guest.id, "reason": "spam" }),
        )
        .await;
    assert_eq!(refused["error"]["code"], "INVALID_TARGET");

    // Slow mode: the ack says how long to wait.
    set_slow_mode(&app, room, 60).await;
    let refused = guest_socket
        .call(
            "chat:message",
            json!({ "roomId": room, "message": "again" }),
        )
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "SLOW_MODE");
    let wait = refused["error"]["details"]["retryAfterSecs"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let ack = host_socket
        .call(
            "chat:message",
            json!({ "roomId": room, "message": "exempt" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // room:join is refused across a block too, with the same neutral words.
    let pest = app.guest("Pest").await;
    let (status, _) = block(&app, &guest, pest.id).await;
    assert_eq!(status, StatusCode::OK);
    let mut pest_socket = Sio::connect(&app.address, &pest.token).await;
    let refused = pest_socket
        .call("room:join", json!({ "roomId": room }))
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "BLOCKED");
    assert_eq!(
        refused["error"]["message"],
        "You can't join this room right now."
    );
}
