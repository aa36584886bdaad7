use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, code};
use crate::on_every_backend;

on_every_backend!(
    a_new_room_is_live_with_its_creator_as_host,
    joining_checks_seats_and_rejoining_is_not_an_error,
    the_host_leaving_hands_over_to_the_longest_present,
    the_last_one_out_ends_the_room,
    kicked_users_can_never_rejoin,
    only_the_host_ends_the_room_and_everyone_leaves,
    fifty_simultaneous_joins_fill_exactly_the_free_seats,
);

fn participants(detail: &Value) -> Vec<(String, String)> {
    detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["displayName"].as_str().unwrap().to_string(),
                p["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn a_new_room_is_live_with_its_creator_as_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Lan").await;
    let (status, room) = app
        .post(
            "/api/rooms",
            Some(&host.token),
            json!({"title": "  English for beginners  "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["title"], "English for beginners");
    assert_eq!(room["status"], "LIVE");
    assert_eq!(room["language"], "en");
    assert_eq!(room["level"], "any");
    assert_eq!(room["maxParticipants"], 6);
    assert_eq!(room["participantCount"], 1);
    assert_eq!(room["topic"], Value::Null);
    assert_eq!(room["host"]["id"], host.id.to_string());
    assert_eq!(room["host"]["displayName"], "Lan");
    assert_eq!(
        participants(&room),
        vec![("Lan".to_string(), "HOST".to_string())]
    );

    let (status, shown) = app
        .get(
            &format!("/api/rooms/{}", room["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], room["id"]);
    let seat = &shown["participants"][0];
    assert_eq!(seat["userId"], host.id.to_string());
    assert_eq!(seat["isMuted"], false);
    assert_eq!(seat["isVideoOff"], false);
    assert!(seat["joinedAt"].as_str().unwrap().ends_with('Z'));

    let (status, full) = app
        .post(
            "/api/rooms",
            Some(&host.token),
            json!({"title": "Nói chuyện", "topic": "Du lịch", "language": "VI", "level": "upper intermediate", "maxParticipants": 12}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{full}");
    assert_eq!(full["language"], "vi");
    assert_eq!(full["level"], "upper_intermediate");
    assert_eq!(full["maxParticipants"], 12);
    assert_eq!(full["topic"], "Du lịch");
}

async fn joining_checks_seats_and_rejoining_is_not_an_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app
        .room(&host, json!({"title": "Two seats", "maxParticipants": 2}))
        .await;
    let guest = app.guest("Guest").await;

    let (status, joined) = app.join(room, &guest).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["participant"]["role"], "PARTICIPANT");
    assert_eq!(joined["room"]["participantCount"], 2);

    // The same person again: same seat, no change.
    let (status, again) = app.join(room, &guest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["room"]["participantCount"], 2);
    assert_eq!(
        again["participant"]["joinedAt"],
        joined["participant"]["joinedAt"]
    );
    // The host is seated already, too.
    assert_eq!(app.join(room, &host).await.0, StatusCode::OK);

    let third = app.guest("Third").await;
    let (status, body) = app.join(room, &third).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "ROOM_FULL"));

    let (status, body) = app.join(talkconnect::ids::RoomId::random(), &third).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ROOM_NOT_FOUND")
    );

    // A freed seat can be taken, and a person who left may come back.
    let (status, left) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&guest.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(left["roomEnded"], false);
    assert_eq!(app.join(room, &third).await.0, StatusCode::OK);
    assert_eq!(app.join(room, &guest).await.1["error"]["code"], "ROOM_FULL");
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&third.token))
        .await;
    let (status, back) = app.join(room, &guest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(back["participant"]["role"], "PARTICIPANT");

    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&third.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "NOT_IN_ROOM"));
}

async fn the_host_leaving_hands_over_to_the_longest_present(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Hand-over"})).await;
    let first = app.guest("First").await;
    let second = app.guest("Second").await;
    app.join(room, &first).await;
    app.join(room, &second).await;

    let (status, left) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(left["newHostId"], first.id.to_string());

    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["host"]["id"], first.id.to_string());
    assert_eq!(
        participants(&detail),
        vec![
            ("First".to_string(), "HOST".to_string()),
            ("Second".to_string(), "PARTICIPANT".to_string())
        ]
    );
    // The new host has the host's powers; the old one, back as a guest, has not.
    app.join(room, &host).await;
    let (status, body) = app
        .post_empty(
            &format!("/api/rooms/{room}/kick/{}", second.id),
            Some(&host.token),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (status, _) = app
        .post_empty(
            &format!("/api/rooms/{room}/kick/{}", second.id),
            Some(&first.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn the_last_one_out_ends_the_room(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Short-lived"})).await;
    let guest = app.guest("Guest").await;
    app.join(room, &guest).await;
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&host.token))
        .await;
    let (status, left) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&guest.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(left["roomEnded"], true);

    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["status"], "ENDED");
    assert_eq!(detail["participantCount"], 0);
    assert!(detail["endedAt"].is_string());
    assert_eq!(detail["participants"], json!([]));

    let (status, body) = app.join(room, &guest).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "ROOM_ENDED"));
    let (_, lobby) = app.get("/api/rooms", None).await;
    assert!(lobby["rooms"].as_array().unwrap().is_empty(), "{lobby}");
}

async fn kicked_users_can_never_rejoin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Moderated"})).await;
    let troll = app.guest("Troll").await;
    let other = app.guest("Other").await;
    app.join(room, &troll).await;
    app.join(room, &other).await;

    let kick = |by: &str, target: talkconnect::ids::UserId| {
        let path = format!("/api/rooms/{room}/kick/{target}");
        let token = by.to_string();
        let app = &app;
        async move { app.post_empty(&path, Some(&token)).await }
    };
    let (status, body) = kick(&other.token, troll.id).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_COHOST"));
    let (status, body) = kick(&host.token, host.id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "CANNOT_KICK_SELF")
    );
    let (status, body) = kick(&host.token, talkconnect::ids::UserId::random()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    );

    let (status, body) = kick(&host.token, troll.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kickedUserId"], troll.id.to_string());
    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["participantCount"], 2);
    assert!(
        !participants(&detail)
            .iter()
            .any(|(name, _)| name == "Troll")
    );

    let (status, body) = app.join(room, &troll).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "KICKED"));
    // Kicking again changes nothing; a participant who had left can be banned too.
    assert_eq!(kick(&host.token, troll.id).await.0, StatusCode::OK);
    app.post_empty(&format!("/api/rooms/{room}/leave"), Some(&other.token))
        .await;
    assert_eq!(kick(&host.token, other.id).await.0, StatusCode::OK);
    assert_eq!(app.join(room, &other).await.1["error"]["code"], "KICKED");
    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["participantCount"], 1);
}

async fn only_the_host_ends_the_room_and_everyone_leaves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "To be closed"})).await;
    let guest = app.guest("Guest").await;
    app.join(room, &guest).await;

    let (status, body) = app
        .delete(&format!("/api/rooms/{room}"), Some(&guest.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "NOT_HOST"));
    let (status, body) = app.delete(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );

    let (status, ended) = app
        .delete(&format!("/api/rooms/{room}"), Some(&host.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "ENDED");
    assert_eq!(ended["participantCount"], 0);
    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["participants"], json!([]));

    let (status, body) = app
        .delete(&format!("/api/rooms/{room}"), Some(&host.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "ROOM_ENDED"));
    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&guest.token))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "NOT_IN_ROOM"));
    let (status, body) = app
        .delete(
            &format!("/api/rooms/{}", uuid::Uuid::new_v4()),
            Some(&host.token),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ROOM_NOT_FOUND")
    );
}

async fn fifty_simultaneous_joins_fill_exactly_the_free_seats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app
        .room(&host, json!({"title": "Popular", "maxParticipants": 6}))
        .await;
    let mut crowd = Vec::new();
    for i in 0..50 {
        crowd.push(app.guest(&format!("Guest {i}")).await);
    }
    let answers = join_all(crowd.iter().map(|user| app.join(room, user))).await;
    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let full = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && code(b) == "ROOM_FULL")
        .count();
    assert_eq!(
        admitted,
        5,
        "answers: {:?}",
        answers.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
    assert_eq!(full, 45);

    let (_, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(detail["participantCount"], 6);
    assert_eq!(detail["participants"].as_array().unwrap().len(), 6);
}

on_every_backend!(one_person_holds_at_most_the_configured_seats);

/// A guest cannot sit in (and keep alive) a whole lobby of rooms: `rooms.max_seats_per_user`
/// counts the rooms they host too, and a seat freed is a seat back.
async fn one_person_holds_at_most_the_configured_seats(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("TALKCONNECT__ROOMS__MAX_SEATS_PER_USER", "2")]).await;
    let host = app.guest("Host").await;
    let hoarder = app.guest("Hoarder").await;
    let first = app.room(&host, json!({"title": "One"})).await;
    let second = app.room(&host, json!({"title": "Two"})).await;
    let third = app.room(&hoarder, json!({"title": "Mine"})).await;
    assert_eq!(app.join(first, &hoarder).await.0, StatusCode::OK);
    let (status, body) = app.join(second, &hoarder).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "TOO_MANY_SEATS");
    let (status, body) = app
        .post(
            "/api/rooms",
            Some(&hoarder.token),
            json!({"title": "Another"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "TOO_MANY_SEATS")
    );
    // Joining a room you are in is not a new seat.
    assert_eq!(app.join(first, &hoarder).await.0, StatusCode::OK);
    let (status, _) = app
        .post_empty(&format!("/api/rooms/{third}/leave"), Some(&hoarder.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.join(second, &hoarder).await.0, StatusCode::OK);
}
