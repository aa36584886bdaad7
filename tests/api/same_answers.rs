//! The same requests get the same answers on SQLite, PostgreSQL and MySQL: one scripted visit
//! (Vietnamese titles and names, accent- and case-folded search, filters, the lobby and a chat
//! history in pages with cursors, timestamps on rooms, seats and messages) runs on each
//! backend, and the JSON bodies must be identical once what differs by nature between runs
//! (random ids, the clock, cursors that encode both) is named by its order of first
//! appearance. A collation that sorted or compared differently, a timestamp that lost its
//! microseconds or a cursor that did not round-trip would show as a difference.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

/// Names each distinct id, time and cursor by its order of first appearance (`id#0`, …).
#[derive(Default)]
struct Names {
    seen: HashMap<String, String>,
    counts: HashMap<&'static str, usize>,
}

impl Names {
    fn name(&mut self, kind: &'static str, value: &str) -> Value {
        if let Some(name) = self.seen.get(value) {
            return Value::String(name.clone());
        }
        let n = self.counts.entry(kind).or_default();
        let name = format!("{kind}#{n}");
        *n += 1;
        self.seen.insert(value.to_owned(), name.clone());
        Value::String(name)
    }

    fn normalize(&mut self, value: &Value, key: &str) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.normalize(v, k)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.normalize(v, key)).collect())
            }
            Value::String(s) if key.ends_with("Cursor") || key == "cursor" => {
                self.name("cursor", s)
            }
            Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => self.name("id", s),
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                // The precision must survive the database: microseconds, as written.
                let digits = s
                    .split_once('.')
                    .map(|(_, f)| f.trim_end_matches('Z').len());
                let kind = if digits == Some(6) {
                    "time"
                } else {
                    "time-not-µs"
                };
                self.name(kind, s)
            }
            other => other.clone(),
        }
    }
}

/// The visit, on one backend: every answer's status and body.
async fn visit(backend: Backend) -> Vec<Value> {
    let app = TestApp::spawn(backend).await;
    let [lan, minh, anh] = app.guests(["Lan Nguyễn", "Minh", "Ánh"]).await;
    let mut answers = Vec::new();
    let rooms = [
        json!({"title": "Tiếng Việt cho người mới", "topic": "Đời sống", "language": "vi", "level": "beginner"}),
        json!({"title": "TIẾNG ANH giao tiếp", "topic": "Công việc", "language": "en", "level": "intermediate"}),
        json!({"title": "Café Đà Lạt", "topic": "du lịch", "language": "vi", "maxParticipants": 3}),
        json!({"title": "Business English", "topic": "Work", "language": "en", "level": "advanced"}),
        json!({"title": "tieng viet khong dau", "language": "vi"}),
    ];
    let mut ids = Vec::new();
    for (i, body) in rooms.into_iter().enumerate() {
        let host = [&lan, &minh, &anh][i % 3];
        ids.push(app.room(host, body).await);
    }
    for (room, who) in [(ids[0], &minh), (ids[2], &lan), (ids[2], &minh)] {
        let (status, body) = app.join(room, who).await;
        answers.push(json!([status.as_u16(), body]));
    }
    for n in 0..5 {
        let (status, body) = app
            .post(
                &format!("/api/rooms/{}/chat", ids[2]),
                Some(&lan.token),
                json!({ "message": format!("Xin chào lần {n} — ĐÀ LẠT") }),
            )
            .await;
        answers.push(json!([status.as_u16(), body]));
    }
    let mut paths: Vec<String> = [
        "/api/rooms",
        "/api/rooms?q=tieng%20viet",
        "/api/rooms?q=TI%E1%BA%BENG",
        "/api/rooms?q=da%20lat",
        "/api/rooms?language=vi",
        "/api/rooms?topic=cong%20viec",
        "/api/rooms?level=advanced",
        "/api/rooms?hasSeat=true",
        "/api/rooms?sort=popular",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.push(format!("/api/rooms/{}", ids[2]));
    for path in &paths {
        let (status, body) = app.get(path, None).await;
        answers.push(json!([status.as_u16(), body]));
    }
    // Pages with cursors, through the lobby and a chat history.
    for first in [
        "/api/rooms?limit=2".to_owned(),
        format!("/api/rooms/{}/chat?limit=2", ids[2]),
    ] {
        let mut path = first.clone();
        for _ in 0..4 {
            let (status, body) = app.get(&path, Some(&minh.token)).await;
            let next = body["nextCursor"].as_str().map(str::to_owned);
            answers.push(json!([status.as_u16(), body]));
            match next {
                Some(cursor) => path = format!("{first}&cursor={cursor}"),
                None => break,
            }
        }
    }
    answers
}

fn normalized(answers: &[Value]) -> Vec<Value> {
    let mut names = Names::default();
    answers.iter().map(|a| names.normalize(a, "")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_postgres_and_mysql_answer_the_same_visit_alike() {
    let sqlite = normalized(&visit(Backend::Sqlite).await);
    let postgres = normalized(&visit(Backend::Postgres).await);
    let mysql = normalized(&visit(Backend::Mysql).await);
    let text = |v: &Vec<Value>| serde_json::to_string_pretty(v).unwrap();
    assert!(
        !text(&sqlite).contains("time-not-µs"),
        "timestamps keep microseconds: {}",
        text(&sqlite)
    );
    // Search, filters and pages found something: the comparison is not of empty lists.
    let found = |v: &Vec<Value>, i: usize| v[i][1]["rooms"].as_array().map_or(0, Vec::len);
    assert!(found(&sqlite, 9) >= 2, "{}", text(&sqlite));
    for (name, other) in [("PostgreSQL", &postgres), ("MySQL", &mysql)] {
        assert_eq!(
            text(&sqlite),
            text(other),
            "SQLite and {name} answered differently"
        );
    }
}
