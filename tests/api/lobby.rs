use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, code};
use crate::on_every_backend;

on_every_backend!(
    the_lobby_lists_live_rooms_newest_first_with_hosts_and_counts,
    the_lobby_filters_by_language_topic_level_text_and_free_seat,
    the_lobby_pages_with_a_cursor,
);

fn titles(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_string())
        .collect()
}

async fn the_lobby_lists_live_rooms_newest_first_with_hosts_and_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lan = app.guest("Lan").await;
    let minh = app.guest("Minh").await;
    let old = app.room(&lan, json!({"title": "Old"})).await;
    app.room(&minh, json!({"title": "Middle"})).await;
    let ended = app.room(&minh, json!({"title": "Gone"})).await;
    app.room(&lan, json!({"title": "New"})).await;
    app.delete(&format!("/api/rooms/{ended}"), Some(&minh.token))
        .await;
    app.join(old, &minh).await;

    let (status, page) = app.get("/api/rooms", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&page), vec!["New", "Middle", "Old"]);
    assert_eq!(page["nextCursor"], Value::Null);
    let old_room = &page["rooms"][2];
    assert_eq!(old_room["participantCount"], 2);
    assert_eq!(old_room["host"]["displayName"], "Lan");
    let members: Vec<&str> = old_room["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec!["Lan", "Minh"]);

    let (_, ended_page) = app.get("/api/rooms?status=ENDED", None).await;
    assert_eq!(titles(&ended_page), vec!["Gone"]);
    let (_, all) = app.get("/api/rooms?status=all", None).await;
    assert_eq!(all["rooms"].as_array().unwrap().len(), 4);
}

async fn the_lobby_filters_by_language_topic_level_text_and_free_seat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    app.room(&host, json!({"title": "Tiếng Anh giao tiếp", "topic": "Đời sống", "language": "vi", "level": "beginner"})).await;
    let small = app
        .room(&host, json!({"title": "Business English", "topic": "Work", "language": "en", "level": "advanced", "maxParticipants": 2}))
        .await;
    app.room(
        &host,
        json!({"title": "100% fun_talk", "topic": "work", "language": "en"}),
    )
    .await;
    app.room(
        &host,
        json!({"title": "日本語で話そう", "language": "ja", "level": "intermediate"}),
    )
    .await;
    let other = app.guest("Other").await;
    app.join(small, &other).await;

    let query = |q: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.get(&format!("/api/rooms?{q}"), None).await;
            assert_eq!(status, StatusCode::OK, "{q}: {page}");
            let mut t = titles(&page);
            t.sort();
            t
        }
    };
    assert_eq!(query("language=vi").await, vec!["Tiếng Anh giao tiếp"]);
    assert_eq!(
        query("language=EN").await,
        vec!["100% fun_talk", "Business English"]
    );
    assert_eq!(
        query("topic=WORK").await,
        vec!["100% fun_talk", "Business English"]
    );
    assert_eq!(query("topic=doi%20song").await, vec!["Tiếng Anh giao tiếp"]);
    assert_eq!(query("level=advanced").await, vec!["Business English"]);
    assert_eq!(query("q=tieng%20anh").await, vec!["Tiếng Anh giao tiếp"]);
    assert_eq!(query("q=ENGLISH").await, vec!["Business English"]);
    assert_eq!(query("q=%E8%A9%B1").await, vec!["日本語で話そう"]);
    // Wildcards are literal text.
    assert_eq!(query("q=100%25").await, vec!["100% fun_talk"]);
    assert_eq!(query("q=s_e").await, Vec::<String>::new());
    assert_eq!(query("q=b%25h").await, Vec::<String>::new());
    assert_eq!(
        query("hasSeat=true&language=en").await,
        vec!["100% fun_talk"]
    );
    assert_eq!(query("hasSeat=false&language=en").await.len(), 2);
    assert_eq!(
        query("language=en&level=any&q=fun").await,
        vec!["100% fun_talk"]
    );

    for (bad, expected) in [
        ("language=xx", "INVALID_QUERY"),
        ("level=expert", "INVALID_QUERY"),
        ("status=OPEN", "INVALID_QUERY"),
        ("hasSeat=maybe", "INVALID_QUERY"),
        ("limit=0", "INVALID_QUERY"),
        ("limit=101", "INVALID_QUERY"),
        ("limit=ten", "INVALID_QUERY"),
        ("cursor=not-a-cursor", "INVALID_CURSOR"),
    ] {
        let (status, body) = app.get(&format!("/api/rooms?{bad}"), None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, expected),
            "{bad}"
        );
    }
}

async fn the_lobby_pages_with_a_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    for i in 0..7 {
        app.room(&host, json!({"title": format!("Room {i}")})).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/rooms?limit=3&cursor={c}"),
            None => "/api/rooms?limit=3".to_string(),
        };
        let (status, page) = app.get(&path, None).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        seen.extend(titles(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).rev().map(|i| format!("Room {i}")).collect();
    assert_eq!(seen, expected);
}
