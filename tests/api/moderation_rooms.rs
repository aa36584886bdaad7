//! Room moderation (docs/MODERATION.md): co-hosts, the host hand-over, hard mutes, mute-all,
//! the lock and its key, live settings and the lobby's new filters, over REST and Socket.IO,
//! on SQLite and PostgreSQL; every rule and every refusal, the audit lines, and a few
//! concurrent actions that must leave exactly one host.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use talkconnect::db::schema::audit_log;
use talkconnect::ids::RoomId;

use crate::helpers::{Backend, TestApp, TestUser, code};
use crate::on_every_backend;
use crate::sio::Sio;

on_every_backend!(
    cohosts_are_named_and_unnamed_by_the_host_only,
    cohosts_kick_participants_but_not_hosts,
    the_host_hands_the_room_over_and_stays_as_a_cohost,
    a_leaving_host_hands_over_to_a_cohost_first,
    hard_mutes_lock_and_lift,
    mute_all_mutes_everyone_else_without_locking,
    a_locked_room_takes_new_people_with_its_key_only,
    the_room_key_is_never_in_a_view_or_an_event,
    live_settings_change_the_room_and_the_lobby,
    the_lobby_filters_and_sorts,
    concurrent_moderation_leaves_exactly_one_host,
    socket_events_follow_the_same_rules,
    every_action_writes_an_audit_line,
);

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.request(Method::PATCH, path, Some(token), Some(body))
        .await
}

/// A room hosted by `Host` with `names` seated after, in that order.
async fn seated_room(app: &TestApp, names: &[&str]) -> (RoomId, TestUser, Vec<TestUser>) {
    let host = app.guest("Host").await;
    let room = app
        .room(&host, json!({"title": "Moderated", "maxParticipants": 8}))
        .await;
    let mut others = Vec::new();
    for name in names {
        let user = app.guest(name).await;
        let (status, body) = app.join(room, &user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        others.push(user);
    }
    (room, host, others)
}

async fn make_cohost(app: &TestApp, room: RoomId, host: &TestUser, target: &TestUser) -> Value {
    let (status, body) = app
        .post(
            &format!("/api/rooms/{room}/cohosts"),
            Some(&host.token),
            json!({ "userId": target.id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The role of each seat, by user id.
async fn roles(app: &TestApp, room: RoomId) -> Vec<(String, String)> {
    let (status, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(status, StatusCode::OK);
    detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["userId"].as_str().unwrap().to_owned(),
                p["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn role_of(app: &TestApp, room: RoomId, user: &TestUser) -> String {
    roles(app, room)
        .await
        .into_iter()
        .find(|(id, _)| *id == user.id.to_string())
        .map(|(_, role)| role)
        .unwrap_or_else(|| "<not seated>".into())
}

async fn cohosts_are_named_and_unnamed_by_the_host_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let cohosts = format!("/api/rooms/{room}/cohosts");

    let body = make_cohost(&app, room, &host, ann).await;
    assert_eq!(body["participant"]["role"], "COHOST");
    assert_eq!(body["participant"]["userId"], ann.id.to_string());
    // Again: nothing changes, no error.
    make_cohost(&app, room, &host, ann).await;

    // A co-host names nobody; a participant neither.
    let (status, body) = app
        .post(&cohosts, Some(&ann.token), json!({ "userId": bob.id }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app
        .post(&cohosts, Some(&bob.token), json!({ "userId": bob.id }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    // The host is the host already.
    let (status, body) = app
        .post(&cohosts, Some(&host.token), json!({ "userId": host.id }))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_TARGET")
    );
    // Someone with no seat here.
    let stranger = app.guest("Stranger").await;
    let (status, body) = app
        .post(
            &cohosts,
            Some(&host.token),
            json!({ "userId": stranger.id }),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    );

    let (status, body) = app
        .delete(&format!("{cohosts}/{}", ann.id), Some(&ann.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app
        .delete(&format!("{cohosts}/{}", ann.id), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["participant"]["role"], "PARTICIPANT");
    assert_eq!(role_of(&app, room, ann).await, "PARTICIPANT");

    // A co-host who leaves and comes back is a participant.
    make_cohost(&app, room, &host, bob).await;
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&bob.token))
        .await;
    app.join(room, bob).await;
    assert_eq!(role_of(&app, room, bob).await, "PARTICIPANT");
}

async fn cohosts_kick_participants_but_not_hosts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob", "Cat", "Dan"]).await;
    let (ann, bob, cat, dan) = (&others[0], &others[1], &others[2], &others[3]);
    make_cohost(&app, room, &host, ann).await;
    make_cohost(&app, room, &host, bob).await;
    let kick = |target: &TestUser| format!("/api/rooms/{room}/kick/{}", target.id);

    let (status, body) = app.post_empty(&kick(&host), Some(&ann.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app.post_empty(&kick(bob), Some(&ann.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app.post_empty(&kick(cat), Some(&dan.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (status, body) = app.post_empty(&kick(ann), Some(&ann.token)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "CANNOT_KICK_SELF")
    );

    let (status, body) = app.post_empty(&kick(cat), Some(&ann.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.join(room, cat).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "KICKED"));
    // The host kicks a co-host.
    let (status, body) = app.post_empty(&kick(bob), Some(&host.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(role_of(&app, room, bob).await, "<not seated>");

    // Co-hosts lower others' hands; participants do not.
    let mut dan_socket = Sio::connect(&app.address, &dan.token).await;
    let mut ann_socket = Sio::connect(&app.address, &ann.token).await;
    for socket in [&mut dan_socket, &mut ann_socket] {
        let ack = socket.call("room:join", json!({ "roomId": room })).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let ack = dan_socket.call("hand:raise", json!({})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = dan_socket
        .call("hand:lower", json!({ "userId": ann.id }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_COHOST", "{ack}");
    let ack = ann_socket
        .call("hand:lower", json!({ "userId": dan.id }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

async fn the_host_hands_the_room_over_and_stays_as_a_cohost(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let path = format!("/api/rooms/{room}/host");
    make_cohost(&app, room, &host, ann).await;

    let (status, body) = app
        .post(&path, Some(&ann.token), json!({ "userId": bob.id }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app
        .post(&path, Some(&host.token), json!({ "userId": host.id }))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_TARGET")
    );

    let (status, body) = app
        .post(&path, Some(&host.token), json!({ "userId": bob.id }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room"]["host"]["id"], bob.id.to_string());
    assert_eq!(role_of(&app, room, &bob.clone_user()).await, "HOST");
    assert_eq!(role_of(&app, room, &host).await, "COHOST");
    assert_eq!(role_of(&app, room, ann).await, "COHOST");

    // The old host is a co-host now: no more host-only actions, the moderation ones stay.
    let (status, body) = app
        .post(&path, Some(&host.token), json!({ "userId": ann.id }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app
        .delete(&format!("/api/rooms/{room}"), Some(&host.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, _) = app
        .post_empty(&format!("/api/rooms/{room}/lock"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The new host ends it.
    let (status, body) = app
        .delete(&format!("/api/rooms/{room}"), Some(&bob.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(&path, Some(&bob.token), json!({ "userId": ann.id }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "ROOM_ENDED"));
}

async fn a_leaving_host_hands_over_to_a_cohost_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    make_cohost(&app, room, &host, bob).await;
    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["newHostId"], bob.id.to_string());
    assert_eq!(role_of(&app, room, bob).await, "HOST");
    assert_eq!(role_of(&app, room, ann).await, "PARTICIPANT");
}

async fn hard_mutes_lock_and_lift(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob", "Cat"]).await;
    let (ann, bob, cat) = (&others[0], &others[1], &others[2]);
    make_cohost(&app, room, &host, ann).await;
    let mute = |target: &TestUser| format!("/api/rooms/{room}/participants/{}/mute", target.id);

    let mut bob_socket = Sio::connect(&app.address, &bob.token).await;
    let ack = bob_socket
        .call("room:join", json!({ "roomId": room }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // Refusals.
    let (status, body) = app
        .post(&mute(bob), Some(&cat.token), json!({ "mic": true }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (status, body) = app
        .post(&mute(&host), Some(&ann.token), json!({ "mic": true }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app
        .post(&mute(ann), Some(&ann.token), json!({ "mic": true }))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_TARGET")
    );
    let (status, body) = app.post(&mute(bob), Some(&ann.token), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
    );
    let stranger = app.guest("Stranger").await;
    let (status, body) = app
        .post(&mute(&stranger), Some(&ann.token), json!({ "mic": true }))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    );

    // The co-host locks Bob's microphone and camera.
    let (status, body) = app
        .post(
            &mute(bob),
            Some(&ann.token),
            json!({ "mic": true, "camera": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seat = &body["participant"];
    assert_eq!(
        (
            &seat["micLocked"],
            &seat["isMuted"],
            &seat["cameraLocked"],
            &seat["isVideoOff"]
        ),
        (&json!(true), &json!(true), &json!(true), &json!(true))
    );
    let heard = bob_socket.event("room:participant-updated").await;
    assert_eq!(heard["participant"]["micLocked"], true);
    assert_eq!(heard["roomId"], room.to_string());

    // Bob cannot undo it; muting himself further is fine.
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": false }))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED_BY_HOST", "{ack}");
    let ack = bob_socket
        .call("media:toggle-video", json!({ "isVideoOff": false }))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED_BY_HOST", "{ack}");
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": true }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // Lifting the microphone's lock: still muted, but Bob may unmute now.
    let (status, body) = app
        .post(&mute(bob), Some(&host.token), json!({ "mic": false }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["participant"]["micLocked"], false);
    assert_eq!(body["participant"]["isMuted"], true);
    assert_eq!(body["participant"]["cameraLocked"], true);
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": false }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = bob_socket
        .call("media:toggle-video", json!({ "isVideoOff": false }))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED_BY_HOST", "{ack}");

    // A co-host does not hard-mute another co-host; the host does.
    make_cohost(&app, room, &host, cat).await;
    let (status, body) = app
        .post(&mute(cat), Some(&ann.token), json!({ "mic": true }))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    // The host may hard-mute a co-host.
    let (status, body) = app
        .post(&mute(ann), Some(&host.token), json!({ "mic": true }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A lock does not outlive the seat.
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&bob.token))
        .await;
    let (_, body) = app.join(room, bob).await;
    assert_eq!(body["participant"]["cameraLocked"], false, "{body}");
}

async fn mute_all_mutes_everyone_else_without_locking(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let path = format!("/api/rooms/{room}/mute-all");
    let (status, body) = app.post_empty(&path, Some(&bob.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    make_cohost(&app, room, &host, ann).await;

    let (status, body) = app.post_empty(&path, Some(&ann.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["muted"], 2);
    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    for p in detail["participants"].as_array().unwrap() {
        let is_ann = p["userId"] == ann.id.to_string();
        assert_eq!(p["isMuted"], !is_ann, "{p}");
        assert_eq!(p["micLocked"], false, "{p}");
    }
    // Already muted: nobody more.
    let (_, body) = app.post_empty(&path, Some(&ann.token)).await;
    assert_eq!(body["muted"], 0);
    // Each may unmute.
    let mut bob_socket = Sio::connect(&app.address, &bob.token).await;
    bob_socket
        .call("room:join", json!({ "roomId": room }))
        .await;
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": false }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

async fn a_locked_room_takes_new_people_with_its_key_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let lock = format!("/api/rooms/{room}/lock");
    let key_path = format!("/api/rooms/{room}/key");
    let join = format!("/api/rooms/{room}/join");

    let (status, body) = app.post_empty(&lock, Some(&bob.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (_, body) = app.get(&key_path, Some(&host.token)).await;
    assert_eq!(body["roomKey"], Value::Null);

    let (status, body) = app.post_empty(&lock, Some(&host.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["roomKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 16);
    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["isLocked"], true);

    make_cohost(&app, room, &host, ann).await;
    let (status, body) = app.get(&key_path, Some(&ann.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["roomKey"], key.as_str());
    let (status, body) = app.get(&key_path, Some(&bob.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));

    let newcomer = app.guest("Newcomer").await;
    let (status, body) = app.join(room, &newcomer).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ROOM_LOCKED")
    );
    let (status, body) = app
        .post(
            &join,
            Some(&newcomer.token),
            json!({ "roomKey": "wrongwrongwrong1" }),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "BAD_ROOM_KEY")
    );
    // Someone seated is never asked.
    let (status, body) = app.join(room, bob).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(&join, Some(&newcomer.token), json!({ "roomKey": key }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Over the socket too.
    let late = app.guest("Late").await;
    let mut socket = Sio::connect(&app.address, &late.token).await;
    let ack = socket.call("room:join", json!({ "roomId": room })).await;
    assert_eq!(ack["error"]["code"], "ROOM_LOCKED", "{ack}");
    let ack = socket
        .call("room:join", json!({ "roomId": room, "roomKey": "nope" }))
        .await;
    assert_eq!(ack["error"]["code"], "BAD_ROOM_KEY", "{ack}");
    let ack = socket
        .call("room:join", json!({ "roomId": room, "roomKey": key }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // A fresh lock makes a fresh key; the old one stops working.
    let (_, body) = app.post_empty(&lock, Some(&ann.token)).await;
    let fresh = body["roomKey"].as_str().unwrap().to_owned();
    assert_ne!(fresh, key);
    let other = app.guest("Other").await;
    let (status, body) = app
        .post(&join, Some(&other.token), json!({ "roomKey": key }))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "BAD_ROOM_KEY")
    );

    let (status, body) = app.delete(&lock, Some(&bob.token)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (status, _) = app.delete(&lock, Some(&ann.token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.join(room, &other).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room"]["isLocked"], false);
}

async fn the_room_key_is_never_in_a_view_or_an_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bus = app.state.bus.subscribe();
    let [host, watcher] = app.guests(["Host", "Watcher"]).await;
    let mut lobby = Sio::connect(&app.address, &watcher.token).await;
    let room = app.room(&host, json!({"title": "Secret"})).await;
    let (_, body) = app
        .post_empty(&format!("/api/rooms/{room}/lock"), Some(&host.token))
        .await;
    let key = body["roomKey"].as_str().unwrap().to_owned();
    let guest = app.guest("Guest").await;
    let (_, joined) = app
        .post(
            &format!("/api/rooms/{room}/join"),
            Some(&guest.token),
            json!({ "roomKey": key }),
        )
        .await;
    let mut socket = Sio::connect(&app.address, &guest.token).await;
    let ack = socket.call("room:join", json!({ "roomId": room })).await;
    patch(
        &app,
        &format!("/api/rooms/{room}"),
        &host.token,
        json!({ "title": "Still secret" }),
    )
    .await;
    let (_, listed) = app.get("/api/rooms", None).await;
    let (_, shown) = app.get(&format!("/api/rooms/{room}"), None).await;
    let mut texts = vec![
        joined.to_string(),
        ack.to_string(),
        listed.to_string(),
        shown.to_string(),
    ];
    assert!(listed.to_string().contains(&room.to_string()));
    // What the lobby heard: created, locked, joined, changed.
    for _ in 0..4 {
        let update = lobby.event("room:list-update").await;
        assert_eq!(update["room"]["id"], room.to_string());
        texts.push(update.to_string());
    }
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), bus.recv()).await {
        texts.push(serde_json::to_string(event.as_ref()).unwrap());
    }
    assert!(texts.len() > 8);
    for text in texts {
        assert!(!text.contains(&key), "the key leaked: {text}");
    }
}

async fn live_settings_change_the_room_and_the_lobby(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob", "Cat"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let path = format!("/api/rooms/{room}");
    let mut bus = app.state.bus.subscribe();

    let (status, body) = patch(&app, &path, &bob.token, json!({ "title": "Mine" })).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    make_cohost(&app, room, &host, ann).await;

    let (status, body) = patch(
        &app,
        &path,
        &ann.token,
        json!({
            "title": "Tiếng Anh buổi tối",
            "topic": "Du lịch",
            "language": "vi",
            "secondLanguage": "en",
            "level": "advanced",
            "maxParticipants": 5,
            "micRequired": true,
            "slowModeSecs": 30,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let room_view = &body["room"];
    assert_eq!(room_view["title"], "Tiếng Anh buổi tối");
    assert_eq!(room_view["topic"], "Du lịch");
    assert_eq!(room_view["language"], "vi");
    assert_eq!(room_view["secondLanguage"], "en");
    assert_eq!(room_view["level"], "advanced");
    assert_eq!(room_view["maxParticipants"], 5);
    assert_eq!(room_view["micRequired"], true);
    assert_eq!(room_view["slowModeSecs"], 30);
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), bus.recv())
            .await
            .unwrap()
            .unwrap();
        if let talkconnect::events::DomainEvent::RoomUpdated { room: view } = event.as_ref() {
            assert_eq!(view.title, "Tiếng Anh buổi tối");
            break;
        }
    }
    // Search and topic follow the new words, accents folded.
    let (_, found) = app.get("/api/rooms?q=buoi%20toi", None).await;
    assert_eq!(found["rooms"][0]["id"], room.to_string());
    let (_, found) = app.get("/api/rooms?topic=du%20lich", None).await;
    assert_eq!(found["rooms"][0]["id"], room.to_string());
    // Only what is named changes; null clears the topic and the second language.
    let (_, body) = patch(
        &app,
        &path,
        &host.token,
        json!({ "topic": null, "secondLanguage": null }),
    )
    .await;
    assert_eq!(body["room"]["topic"], Value::Null);
    assert_eq!(body["room"]["secondLanguage"], Value::Null);
    assert_eq!(body["room"]["title"], "Tiếng Anh buổi tối");
    let (_, found) = app.get("/api/rooms?topic=du%20lich", None).await;
    assert_eq!(found["rooms"], json!([]));

    // Refusals.
    for (field, value) in [
        ("maxParticipants", json!(3)),
        ("maxParticipants", json!(13)),
        ("slowModeSecs", json!(301)),
        ("slowModeSecs", json!(-1)),
        ("title", json!("  ")),
        ("language", json!("xx")),
        ("secondLanguage", json!("xx")),
        ("level", json!("expert")),
    ] {
        let (status, body) = patch(&app, &path, &ann.token, json!({ field: value })).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            "{field} = {value}: {body}"
        );
        assert!(body["error"]["details"][field].is_array(), "{body}");
    }
    // Four seated: four seats is the least.
    let (status, body) = patch(&app, &path, &ann.token, json!({ "maxParticipants": 4 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // noMic: every microphone is muted, and nobody unmutes.
    let mut bob_socket = Sio::connect(&app.address, &bob.token).await;
    bob_socket
        .call("room:join", json!({ "roomId": room }))
        .await;
    let (status, body) = patch(&app, &path, &ann.token, json!({ "noMic": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room"]["noMic"], true);
    assert!(
        body["room"]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["isMuted"] == true),
        "{body}"
    );
    let heard = bob_socket.event("media:user-muted").await;
    assert_eq!(heard["isMuted"], true);
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": false }))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED_BY_HOST", "{ack}");
    patch(&app, &path, &ann.token, json!({ "noMic": false })).await;
    let ack = bob_socket
        .call("media:toggle-mic", json!({ "isMuted": false }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // Create takes the new settings too; in a noMic room everyone is seated muted.
    let (status, body) = app
        .post(
            "/api/rooms",
            Some(&app.guest("Other").await.token),
            json!({ "title": "Listen", "secondLanguage": "ja", "micRequired": true, "noMic": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["participants"][0]["isMuted"], true, "{body}");
    let listen: RoomId = body["id"].as_str().unwrap().parse().unwrap();
    let (_, joined) = app.join(listen, &app.guest("Listener").await).await;
    assert_eq!(joined["participant"]["isMuted"], true, "{joined}");
    assert_eq!(
        (
            &body["secondLanguage"],
            &body["micRequired"],
            &body["noMic"],
            &body["isLocked"],
            &body["slowModeSecs"]
        ),
        (
            &json!("ja"),
            &json!(true),
            &json!(true),
            &json!(false),
            &json!(0)
        )
    );
}

async fn the_lobby_filters_and_sorts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    // Rooms with 1, 3, 2 and 3 people, oldest first.
    for (i, seated) in [1, 3, 2, 3].into_iter().enumerate() {
        let host = app.guest(&format!("Host {i}")).await;
        let body = match i {
            0 => {
                json!({ "title": "A", "language": "en", "level": "beginner", "micRequired": true })
            }
            1 => json!({ "title": "B", "language": "ja", "secondLanguage": "en" }),
            _ => json!({ "title": "C", "language": "vi", "level": "beginner" }),
        };
        let room = app.room(&host, body).await;
        for j in 1..seated {
            app.join(room, &app.guest(&format!("G{i}{j}")).await).await;
        }
        ids.push(room.to_string());
    }
    let listed = |body: &Value| -> Vec<String> {
        body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = app.get("/api/rooms?language=en", None).await;
    assert_eq!(listed(&body), vec![ids[1].clone(), ids[0].clone()]);
    let (_, body) = app.get("/api/rooms?level=beginner", None).await;
    assert_eq!(
        listed(&body),
        vec![ids[3].clone(), ids[2].clone(), ids[0].clone()]
    );
    let (_, body) = app.get("/api/rooms?micRequired=true", None).await;
    assert_eq!(listed(&body), vec![ids[0].clone()]);
    let (_, body) = app.get("/api/rooms?micRequired=false", None).await;
    assert_eq!(listed(&body).len(), 3);
    let (_, body) = app.get("/api/rooms?sort=newest", None).await;
    assert_eq!(
        listed(&body),
        vec![
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );

    // Popular, one per page: most people first, then newest, across cursors.
    let expected = vec![
        ids[3].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[0].clone(),
    ];
    let (_, body) = app.get("/api/rooms?sort=popular", None).await;
    assert_eq!(listed(&body), expected);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/rooms?sort=popular&limit=1&cursor={c}"),
            None => "/api/rooms?sort=popular&limit=1".to_owned(),
        };
        let (status, body) = app.get(&path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        paged.extend(listed(&body));
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, expected);

    // A cursor of one order is not one of the other.
    let (_, first) = app.get("/api/rooms?sort=popular&limit=1", None).await;
    let popular_cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let (status, body) = app
        .get(&format!("/api/rooms?limit=1&cursor={popular_cursor}"), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_CURSOR")
    );
    let (_, first) = app.get("/api/rooms?limit=1", None).await;
    let newest_cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let (status, body) = app
        .get(
            &format!("/api/rooms?sort=popular&limit=1&cursor={newest_cursor}"),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_CURSOR")
    );
    let (status, body) = app.get("/api/rooms?sort=oldest", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY")
    );
}

async fn concurrent_moderation_leaves_exactly_one_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for round in 0..4 {
        let (room, host, others) = seated_room(&app, &["Ann", "Bob", "Cat"]).await;
        let (ann, bob, cat) = (&others[0], &others[1], &others[2]);
        make_cohost(&app, room, &host, ann).await;
        make_cohost(&app, room, &host, bob).await;
        let host_path = format!("/api/rooms/{room}/host");
        let cohosts = format!("/api/rooms/{room}/cohosts");
        // The host hands over to two people at once while the co-hosts kick each other and
        // the participant, and the host unmakes one of them.
        let kick = |actor: &TestUser, target: &TestUser| {
            (
                format!("/api/rooms/{room}/kick/{}", target.id),
                actor.token.clone(),
            )
        };
        let kicks = [kick(ann, bob), kick(bob, ann), kick(bob, cat)];
        let unmake = format!("{cohosts}/{}", bob.id);
        let leave = format!("/api/rooms/{room}/leave");
        let _ = tokio::join!(
            app.post(&host_path, Some(&host.token), json!({ "userId": ann.id })),
            app.post(&host_path, Some(&host.token), json!({ "userId": bob.id })),
            app.post_empty(&kicks[0].0, Some(&kicks[0].1)),
            app.post_empty(&kicks[1].0, Some(&kicks[1].1)),
            app.post_empty(&kicks[2].0, Some(&kicks[2].1)),
            app.delete(&unmake, Some(&host.token)),
            app.post_empty(&leave, Some(&host.token)),
        );
        let seats = roles(&app, room).await;
        let hosts: Vec<_> = seats.iter().filter(|(_, role)| role == "HOST").collect();
        assert_eq!(hosts.len(), 1, "round {round}: {seats:?}");
        let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
        assert_eq!(detail["host"]["id"], hosts[0].0.as_str(), "round {round}");
        assert_eq!(
            detail["participantCount"],
            seats.len(),
            "round {round}: {detail}"
        );
    }
}

async fn socket_events_follow_the_same_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob"]).await;
    let (ann, bob) = (&others[0], &others[1]);
    let mut host_socket = Sio::connect(&app.address, &host.token).await;
    let mut ann_socket = Sio::connect(&app.address, &ann.token).await;
    let mut bob_socket = Sio::connect(&app.address, &bob.token).await;
    for socket in [&mut host_socket, &mut ann_socket, &mut bob_socket] {
        let ack = socket.call("room:join", json!({ "roomId": room })).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    let ack = bob_socket
        .call("room:cohost", json!({ "userId": bob.id, "cohost": true }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_HOST", "{ack}");
    let ack = host_socket
        .call("room:cohost", json!({ "userId": ann.id, "cohost": true }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["participant"]["role"], "COHOST", "{ack}");
    let heard = bob_socket.event("room:participant-updated").await;
    assert_eq!(heard["participant"]["userId"], ann.id.to_string());
    assert_eq!(heard["participant"]["role"], "COHOST");

    let ack = bob_socket
        .call("room:hard-mute", json!({ "userId": ann.id, "mic": true }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_COHOST", "{ack}");
    let ack = ann_socket
        .call("room:hard-mute", json!({ "userId": bob.id, "mic": true }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["participant"]["micLocked"], true, "{ack}");
    let heard = host_socket.event("media:user-muted").await;
    assert_eq!(heard["userId"], bob.id.to_string());
    assert_eq!(heard["isMuted"], true);

    let ack = bob_socket.call("room:mute-all", json!({})).await;
    assert_eq!(ack["error"]["code"], "NOT_COHOST", "{ack}");
    let ack = ann_socket.call("room:mute-all", json!({})).await;
    assert_eq!(ack["muted"], 1, "{ack}");

    let ack = bob_socket
        .call("room:lock", json!({ "locked": true }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_COHOST", "{ack}");
    let ack = ann_socket
        .call("room:lock", json!({ "locked": true }))
        .await;
    assert_eq!(ack["roomKey"].as_str().map(str::len), Some(16), "{ack}");
    let ack = ann_socket
        .call("room:lock", json!({ "locked": false }))
        .await;
    assert_eq!(ack, json!({ "ok": true }), "{ack}");

    let ack = bob_socket
        .call("room:update", json!({ "title": "Bob's" }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_COHOST", "{ack}");
    let ack = ann_socket
        .call("room:update", json!({ "slowModeSecs": 999 }))
        .await;
    assert_eq!(ack["error"]["code"], "VALIDATION_FAILED", "{ack}");
    let ack = ann_socket
        .call(
            "room:update",
            json!({ "roomId": room, "title": "Ann's", "slowModeSecs": 5 }),
        )
        .await;
    assert_eq!(ack["room"]["title"], "Ann's", "{ack}");
    assert_eq!(ack["room"]["slowModeSecs"], 5, "{ack}");

    let ack = ann_socket
        .call("room:transfer-host", json!({ "userId": bob.id }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_HOST", "{ack}");
    let ack = host_socket
        .call("room:transfer-host", json!({ "userId": bob.id }))
        .await;
    assert_eq!(ack["room"]["host"]["id"], bob.id.to_string(), "{ack}");
    let heard = ann_socket.event("room:list-update").await;
    assert_eq!(heard["action"], "updated");
    let ack = host_socket
        .call("room:kick", json!({ "userId": ann.id }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_HOST", "{ack}");
    let ack = host_socket
        .call("room:cohost", json!({ "userId": ann.id, "cohost": false }))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_HOST", "{ack}");
}

async fn every_action_writes_an_audit_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (room, host, others) = seated_room(&app, &["Ann", "Bob", "Cat"]).await;
    let (ann, bob, cat) = (&others[0], &others[1], &others[2]);
    make_cohost(&app, room, &host, ann).await;
    app.delete(
        &format!("/api/rooms/{room}/cohosts/{}", ann.id),
        Some(&host.token),
    )
    .await;
    make_cohost(&app, room, &host, ann).await;
    let mute = format!("/api/rooms/{room}/participants/{}/mute", bob.id);
    app.post(&mute, Some(&ann.token), json!({ "mic": true }))
        .await;
    app.post(&mute, Some(&ann.token), json!({ "mic": false }))
        .await;
    app.post_empty(&format!("/api/rooms/{room}/mute-all"), Some(&ann.token))
        .await;
    app.post_empty(&format!("/api/rooms/{room}/lock"), Some(&ann.token))
        .await;
    app.delete(&format!("/api/rooms/{room}/lock"), Some(&ann.token))
        .await;
    patch(
        &app,
        &format!("/api/rooms/{room}"),
        &ann.token,
        json!({ "slowModeSecs": 10 }),
    )
    .await;
    app.post_empty(
        &format!("/api/rooms/{room}/kick/{}", cat.id),
        Some(&ann.token),
    )
    .await;
    app.post(
        &format!("/api/rooms/{room}/host"),
        Some(&host.token),
        json!({ "userId": ann.id }),
    )
    .await;
    app.delete(&format!("/api/rooms/{room}"), Some(&ann.token))
        .await;
    // A refused action writes nothing.
    app.post_empty(&format!("/api/rooms/{room}/lock"), Some(&bob.token))
        .await;

    let room_key = room.to_string();
    let lines: Vec<(String, Option<String>, Option<String>)> =
        talkconnect::db::run(&app.state.pool, move |conn| {
            audit_log::table
                .filter(audit_log::room_id.eq(room_key))
                .order((audit_log::created_at.asc(), audit_log::id.asc()))
                .select((
                    audit_log::action,
                    audit_log::actor_id,
                    audit_log::target_user_id,
                ))
                .load(conn)
                .map_err(talkconnect::db::DbError::from)
        })
        .await
        .unwrap();
    let mut actions: Vec<&str> = lines.iter().map(|(a, _, _)| a.as_str()).collect();
    actions.sort_unstable();
    let mut expected = vec![
        "make_cohost",
        "remove_cohost",
        "make_cohost",
        "hard_mute",
        "lift_mute",
        "mute_all",
        "lock_room",
        "unlock_room",
        "update_room",
        "slow_mode",
        "kick",
        "transfer_host",
        "end_room",
    ];
    expected.sort_unstable();
    assert_eq!(actions, expected);
    let kick = lines.iter().find(|(a, _, _)| a == "kick").unwrap();
    assert_eq!(kick.1.as_deref(), Some(ann.id.to_string().as_str()));
    assert_eq!(kick.2.as_deref(), Some(cat.id.to_string().as_str()));
}

trait CloneUser {
    fn clone_user(&self) -> TestUser;
}

impl CloneUser for TestUser {
    fn clone_user(&self) -> TestUser {
        TestUser {
            id: self.id,
            token: self.token.clone(),
            display_name: self.display_name.clone(),
        }
    }
}
