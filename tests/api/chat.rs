use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, code};
use crate::on_every_backend;

on_every_backend!(
    participants_post_and_read_history_newest_first_in_pages,
    only_seated_people_use_the_chat,
);

async fn participants_post_and_read_history_newest_first_in_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Chatty"})).await;
    let guest = app.guest("Guest").await;
    app.join(room, &guest).await;
    let path = format!("/api/rooms/{room}/chat");

    for i in 0..5 {
        let who = if i % 2 == 0 { &host } else { &guest };
        let (status, message) = app
            .post(
                &path,
                Some(&who.token),
                json!({"message": format!("  message {i}  ")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        assert_eq!(message["message"], format!("message {i}"));
        assert_eq!(message["sender"]["displayName"], who.display_name);
        assert_eq!(message["roomId"], room.to_string());
    }
    // Markup is stored as the text it is.
    let (_, markup) = app
        .post(
            &path,
            Some(&guest.token),
            json!({"message": "<b>hi</b> & <script>x</script>"}),
        )
        .await;
    assert_eq!(markup["message"], "<b>hi</b> & <script>x</script>");

    let (status, first) = app
        .get(&format!("{path}?limit=4"), Some(&guest.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let texts: Vec<&str> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![
            "<b>hi</b> & <script>x</script>",
            "message 4",
            "message 3",
            "message 2"
        ]
    );
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("{path}?limit=4&cursor={cursor}"),
            Some(&host.token),
        )
        .await;
    let texts: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["message 1", "message 0"]);
    assert!(second["nextCursor"].is_null());
}

async fn only_seated_people_use_the_chat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Private talk"})).await;
    let outsider = app.guest("Outsider").await;
    let path = format!("/api/rooms/{room}/chat");

    let (status, body) = app.get(&path, Some(&outsider.token)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "NOT_A_PARTICIPANT")
    );
    let (status, body) = app
        .post(&path, Some(&outsider.token), json!({"message": "hi"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "NOT_A_PARTICIPANT")
    );
    let (status, body) = app.get(&path, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let (status, body) = app
        .get(
            &format!("/api/rooms/{}/chat", uuid::Uuid::new_v4()),
            Some(&host.token),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ROOM_NOT_FOUND")
    );

    for bad in [
        json!({"message": ""}),
        json!({"message": "   "}),
        json!({"message": "x".repeat(1001)}),
        json!({"message": 5}),
        json!({}),
    ] {
        let (status, body) = app.post(&path, Some(&host.token), bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {body}");
    }
    let (_, history) = app.get(&path, Some(&host.token)).await;
    assert_eq!(
        history["messages"],
        json!([]),
        "nothing half-written was stored"
    );

    app.delete(&format!("/api/rooms/{room}"), Some(&host.token))
        .await;
    let (status, body) = app
        .post(&path, Some(&host.token), json!({"message": "anyone?"}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "ROOM_ENDED"));
}
