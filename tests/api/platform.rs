use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, code, retry_after};
use crate::on_every_backend;

on_every_backend!(health_readiness_and_meta);

async fn health_readiness_and_meta(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let (status, meta) = app.get("/api/meta", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(meta["languages"].as_array().unwrap().contains(&json!("vi")));
    assert_eq!(meta["defaultMaxParticipants"], 6);
    assert_eq!(meta["levels"][0], "any");
    assert_eq!(
        meta["mediaMode"], "sfu",
        "the SFU is the default: no IP leaks between strangers"
    );
    let (status, ice) = app.get("/api/ice-servers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ice, json!({"iceServers": [], "uplinkKbps": 1500}));
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_can_be_switched_off() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__RATE_LIMIT__ENABLED", "true"),
            ("TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__COUNT", "3"),
            ("TALKCONNECT__RATE_LIMIT__CREATE_ROOM_PER_USER__COUNT", "2"),
            ("TALKCONNECT__RATE_LIMIT__JOIN_PER_USER__COUNT", "2"),
        ],
    )
    .await;
    let host = app.guest("One").await;
    let guest = app.guest("Two").await;
    app.guest("Three").await;
    let response = app
        .client
        .post(format!("{}/api/auth/guest", app.address))
        .json(&json!({"displayName": "Four"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = retry_after(&response);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    // Login attempts count against the same per-IP budget.
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"login": "x", "password": "y"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let room = app.room(&host, json!({"title": "a"})).await;
    app.room(&host, json!({"title": "b"})).await;
    let (status, body) = app
        .post("/api/rooms", Some(&host.token), json!({"title": "c"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );

    assert_eq!(app.join(room, &guest).await.0, StatusCode::OK);
    assert_eq!(app.join(room, &guest).await.0, StatusCode::OK);
    assert_eq!(
        app.join(room, &guest).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Switched off, the same budget never runs out.
    let free = TestApp::spawn_with(
        Backend::Sqlite,
        &[("TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__COUNT", "1")],
    )
    .await;
    for i in 0..5 {
        free.guest(&format!("Guest {i}")).await;
    }
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[(
            "TALKCONNECT__SERVER__CORS_ORIGINS",
            "https://talk.example.org",
        )],
    )
    .await;
    let preflight = |origin: &'static str| {
        let client = app.client.clone();
        let url = format!("{}/api/rooms", app.address);
        async move {
            client
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://talk.example.org").await;
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://talk.example.org"
    );
    let refused = preflight("https://evil.example.com").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
