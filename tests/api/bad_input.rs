use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, check_openapi, code};
use crate::on_every_backend;

on_every_backend!(
    bad_room_bodies_answer_422_and_store_nothing,
    malformed_bodies_answer_clear_errors,
    bad_ids_and_unknown_routes,
);

async fn room_count(app: &TestApp) -> usize {
    app.get("/api/rooms?status=ALL&limit=100", None).await.1["rooms"]
        .as_array()
        .unwrap()
        .len()
}

async fn bad_room_bodies_answer_422_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(101)}), "title"),
        (json!({"title": "ok", "topic": "t".repeat(101)}), "topic"),
        (json!({"title": "ok", "language": "xx"}), "language"),
        (json!({"title": "ok", "level": "expert"}), "level"),
        (
            json!({"title": "ok", "maxParticipants": 1}),
            "maxParticipants",
        ),
        (
            json!({"title": "ok", "maxParticipants": 13}),
            "maxParticipants",
        ),
        (json!({"title": "ok\u{0000}"}), "title"),
    ];
    for (body, field) in cases {
        let (status, answer) = app
            .post("/api/rooms", Some(&host.token), body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(code(&answer), "VALIDATION_FAILED");
        assert!(
            answer["error"]["details"][field].is_array(),
            "{body} → {answer}"
        );
    }
    for body in [
        json!({"title": 5}),
        json!({"title": "ok", "maxParticipants": "six"}),
        json!({}),
        json!([1, 2]),
    ] {
        let (status, answer) = app
            .post("/api/rooms", Some(&host.token), body.clone())
            .await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY"),
            "{body}"
        );
    }
    assert_eq!(room_count(&app).await, 0, "no half-written room");

    let cases = [
        json!({"username": "ab", "email": "a@example.com", "password": "long-enough"}),
        json!({"username": "good_name", "email": "not-an-email", "password": "long-enough"}),
        json!({"username": "good_name", "email": "a@example.com", "password": "short"}),
        json!({"username": "bad name", "email": "a@example.com", "password": "long-enough"}),
    ];
    for body in cases {
        let (status, answer) = app.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            "{body}"
        );
    }
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"login": "good_name", "password": "long-enough"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no half-registered account"
    );
}

async fn malformed_bodies_answer_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let url = format!("{}/api/rooms", app.address);
    let send = |body: Vec<u8>, content_type: &'static str| {
        // A fresh connection each time: the server closes a connection whose body it did not
        // read, and a pooled one could be picked up just as it closes.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = url.clone();
        let token = host.token.clone();
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let value: Value = response.json().await.unwrap();
            check_openapi(&reqwest::Method::POST, "/api/rooms", status, &value);
            (status, value)
        }
    };
    let (status, body) = send(b"{\"title\": ".to_vec(), "application/json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "MALFORMED_JSON")
    );
    let (status, body) = send(b"title=x".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
    );
    let huge = format!("{{\"title\":\"{}\"}}", "x".repeat(80_000)).into_bytes();
    let (status, body) = send(huge, "application/json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
    let (status, body) = send(vec![0xff, 0xfe, 0x00], "application/json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "MALFORMED_JSON")
    );
    assert_eq!(room_count(&app).await, 0);
}

async fn bad_ids_and_unknown_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({"title": "Real"})).await;

    let (status, body) = app.get("/api/rooms/not-a-uuid", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_ID")
    );
    let (status, body) = app
        .post_empty("/api/rooms/123/join", Some(&host.token))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_ID")
    );
    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/kick/nobody"), Some(&host.token))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_ID")
    );
    let (status, body) = app
        .get(&format!("/api/rooms/{}", uuid::Uuid::new_v4()), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ROOM_NOT_FOUND")
    );
    let (status, body) = app.get("/api/nothing/here", None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let (status, body) = app
        .request(reqwest::Method::PUT, "/api/rooms", Some(&host.token), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    let (status, body) = app
        .get(&format!("/api/rooms/{room}/join"), Some(&host.token))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
}
