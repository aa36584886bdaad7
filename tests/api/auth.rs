use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, code};
use crate::on_every_backend;

on_every_backend!(
    register_then_me_and_login_by_username_or_email,
    duplicate_accounts_are_refused_whatever_the_case,
    wrong_or_unknown_credentials_are_one_answer,
    guests_get_a_session,
    tokens_are_required_and_checked,
);

async fn register_then_me_and_login_by_username_or_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, session) = app
        .post(
            "/api/auth/register",
            None,
            json!({"username": "Minh_Anh", "email": "MinhAnh@Example.com", "password": "hunter2hunter2", "displayName": "Minh Anh"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["user"]["username"], "minh_anh");
    assert_eq!(session["user"]["email"], "minhanh@example.com");
    assert_eq!(session["user"]["displayName"], "Minh Anh");
    assert_eq!(session["user"]["isGuest"], false);

    let token = session["token"].as_str().unwrap();
    let (status, me) = app.get("/api/auth/me", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], session["user"]["id"]);

    for login in [
        "minh_anh",
        "MINH_ANH",
        "minhanh@example.com",
        " MinhAnh@Example.com ",
    ] {
        let (status, body) = app
            .post(
                "/api/auth/login",
                None,
                json!({"login": login, "password": "hunter2hunter2"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{login}: {body}");
        assert_eq!(body["user"]["id"], session["user"]["id"]);
        let (status, _) = app.get("/api/auth/me", body["token"].as_str()).await;
        assert_eq!(status, StatusCode::OK);
    }
}

async fn duplicate_accounts_are_refused_whatever_the_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = json!({"username": "lan", "email": "lan@example.com", "password": "password-1"});
    assert_eq!(
        app.post("/api/auth/register", None, first).await.0,
        StatusCode::CREATED
    );

    let (status, body) = app
        .post(
            "/api/auth/register",
            None,
            json!({"username": "LAN", "email": "other@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "USERNAME_TAKEN")
    );

    let (status, body) = app
        .post(
            "/api/auth/register",
            None,
            json!({"username": "lan2", "email": "LAN@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "EMAIL_TAKEN"));
}

async fn wrong_or_unknown_credentials_are_one_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.post(
        "/api/auth/register",
        None,
        json!({"username": "hoa", "email": "hoa@example.com", "password": "right-password"}),
    )
    .await;
    for (login, password) in [("hoa", "wrong-password"), ("nobody", "right-password")] {
        let (status, body) = app
            .post(
                "/api/auth/login",
                None,
                json!({"login": login, "password": password}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
        );
    }
    // A guest has no password: it cannot be logged into by its display name.
    app.guest("hoa2").await;
    let (status, _) = app
        .post(
            "/api/auth/login",
            None,
            json!({"login": "hoa2", "password": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn guests_get_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let guest = app.guest("  Khách Vui Vẻ  ").await;
    let (status, me) = app.get("/api/auth/me", Some(&guest.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["displayName"], "Khách Vui Vẻ");
    assert_eq!(me["isGuest"], true);
    assert_eq!(me["username"], serde_json::Value::Null);
    for bad in [
        json!({"displayName": "   "}),
        json!({"displayName": "x".repeat(33)}),
        json!({}),
    ] {
        let (status, body) = app.post("/api/auth/guest", None, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {body}");
    }
}

async fn tokens_are_required_and_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/api/auth/me", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );

    let (status, body) = app.get("/api/auth/me", Some("not.a.jwt")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );

    // Signed with another secret.
    let forged = talkconnect::auth::JwtKeys::new(b"someone-else", 3600)
        .issue(talkconnect::ids::UserId::random(), false)
        .unwrap();
    let (status, body) = app.get("/api/auth/me", Some(&forged)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );

    // Signed with the right secret, for an account that does not exist.
    let orphan = talkconnect::auth::JwtKeys::new(app.jwt_secret.as_bytes(), 3600)
        .issue(talkconnect::ids::UserId::random(), false)
        .unwrap();
    let (status, body) = app.get("/api/auth/me", Some(&orphan)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );

    // Expired.
    let user = app.guest("Tuan").await;
    let now = chrono::Utc::now().timestamp();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user.id, "iat": now - 7200, "exp": now - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(app.jwt_secret.as_bytes()),
    )
    .unwrap();
    let (status, body) = app.get("/api/auth/me", Some(&expired)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED")
    );

    // Protected room actions say the same.
    let (status, body) = app.post("/api/rooms", None, json!({"title": "x"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
}
