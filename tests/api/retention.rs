//! Retention: ended rooms (with their seats and chat) and idle guests are purged after the
//! configured days; live rooms, their members and hosts stay.

use std::time::Duration;

use serde_json::json;
use talkconnect::config::RetentionSettings;
use talkconnect::retention::{Purged, purge};

use crate::helpers::{Backend, TestApp};
use crate::on_every_backend;

on_every_backend!(ended_rooms_and_idle_guests_are_purged_after_their_days);

async fn ended_rooms_and_idle_guests_are_purged_after_their_days(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let visitor = app.guest("Visitor").await;
    let live = app.room(&host, json!({"title": "Still on"})).await;
    let gone = app.room(&visitor, json!({"title": "Over"})).await;
    app.post(
        &format!("/api/rooms/{gone}/chat"),
        Some(&visitor.token),
        json!({"message": "bye"}),
    )
    .await;
    let (status, _) = app
        .post_empty(&format!("/api/rooms/{gone}/leave"), Some(&visitor.token))
        .await;
    assert!(status.is_success());
    let loner = app.guest("Loner").await;

    let settings = RetentionSettings {
        ended_room_days: 30,
        guest_days: 30,
    };
    let ttl = Duration::from_secs(7 * 86_400);
    let run = |days: i64| {
        let pool = app.state.pool.clone();
        let settings = settings.clone();
        async move {
            talkconnect::db::run(&pool, move |conn| {
                let now = talkconnect::db::now() + chrono::Duration::days(days);
                purge(conn, &settings, ttl, now)
            })
            .await
            .unwrap()
        }
    };
    // Too early: nothing goes.
    assert_eq!(run(10).await, Purged::default());
    // Later: the ended room (with its chat) and both guests it no longer names go; the live
    // room and its host stay.
    assert_eq!(
        run(31).await,
        Purged {
            rooms: 1,
            guests: 2
        }
    );
    let (status, _) = app.get(&format!("/api/rooms/{gone}"), None).await;
    assert_eq!(status, 404);
    let (status, body) = app.get(&format!("/api/rooms/{live}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/api/auth/me", Some(&host.token)).await;
    assert_eq!(status, 200);
    for purged in [&visitor, &loner] {
        let (status, _) = app.get("/api/auth/me", Some(&purged.token)).await;
        assert_eq!(status, 401);
    }
}
