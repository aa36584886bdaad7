//! The lobby served from memory (src/rooms/lobby.rs) answers byte for byte what the database
//! path answers: rooms are created, joined, left, kicked, locked, changed, handed over and
//! ended, several at once, and after each round every filter, order and page is read both
//! ways and compared. In a cluster, each replica's memory follows the other's events, and a
//! replica whose link to Redis is cut answers from the database until the link is back and
//! its memory reloaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use talkconnect::ids::RoomId;
use talkconnect::rooms::domain::{Level, RoomStatus};
use talkconnect::rooms::queries::{LobbyCursor, LobbySort, RoomFilter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::helpers::{Backend, TestApp, TestUser, redis_reachable};
use crate::on_every_backend;

on_every_backend!(memory_and_database_answer_alike_under_churn);

/// The filters the lobby page offers, alone and together (every one on LIVE rooms).
fn filters() -> Vec<RoomFilter> {
    let live = || RoomFilter {
        status: Some(RoomStatus::Live),
        ..Default::default()
    };
    let mut filters = vec![
        live(),
        RoomFilter {
            language: Some("vi".into()),
            ..live()
        },
        RoomFilter {
            language: Some("en".into()),
            has_seat: true,
            ..live()
        },
        RoomFilter {
            level: Some(Level::Beginner),
            ..live()
        },
        RoomFilter {
            text: Some("tieng".into()),
            ..live()
        },
        RoomFilter {
            topic_key: Some("doi song".into()),
            ..live()
        },
        RoomFilter {
            mic_required: Some(true),
            ..live()
        },
        RoomFilter {
            has_seat: true,
            mic_required: Some(false),
            language: Some("vi".into()),
            ..live()
        },
    ];
    let popular: Vec<RoomFilter> = filters
        .iter()
        .map(|f| RoomFilter {
            sort: LobbySort::Popular,
            ..f.clone()
        })
        .collect();
    filters.extend(popular);
    filters
}

/// Every page of `filter` (3 rooms each), from memory and from the database; `None` when
/// memory did not answer.
async fn both_ways(app: &TestApp, filter: &RoomFilter) -> Option<(Vec<String>, Vec<String>)> {
    let rooms = &app.state.rooms;
    let (mut memory, mut database) = (Vec::new(), Vec::new());
    let mut cursor: Option<LobbyCursor> = None;
    for _ in 0..20 {
        let from_memory = rooms.lobby().page(filter, 3, cursor.as_ref())?;
        let from_db = rooms
            .lobby_page_from_db(filter.clone(), 3, cursor.clone())
            .await
            .expect("the database answers");
        let next: Value = serde_json::from_slice(&from_db).unwrap();
        memory.push(String::from_utf8(from_memory).unwrap());
        database.push(String::from_utf8(from_db).unwrap());
        match next["nextCursor"].as_str() {
            Some(raw) => cursor = Some(LobbyCursor::decode(filter.sort, raw).unwrap()),
            None => break,
        }
    }
    Some((memory, database))
}

/// Memory answers every filter as the database does: at once when this process made every
/// change (its own events are applied before it answers), else once the other replicas'
/// events have arrived (`apps` > 1: waits up to 10 s, then fails with the first difference).
async fn assert_alike(app: &TestApp, round: &str, apps: usize) {
    let wait = if apps > 1 { 10 } else { 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let mut difference = None;
        for filter in filters() {
            match both_ways(app, &filter).await {
                None => difference = Some(format!("memory did not answer {filter:?}")),
                Some((memory, database)) if memory != database => {
                    difference = Some(format!(
                        "{filter:?}\nmemory:   {memory:#?}\ndatabase: {database:#?}"
                    ));
                }
                Some(_) => {}
            }
            if difference.is_some() {
                break;
            }
        }
        let Some(difference) = difference else {
            break;
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{round}: memory and database differ: {difference}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The HTTP answer is memory's, byte for byte.
    let live = filters().remove(0);
    let http = app
        .client
        .get(format!("{}/api/rooms?limit=3", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), StatusCode::OK);
    assert_eq!(
        http.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body = http.bytes().await.unwrap();
    let memory = app.state.rooms.lobby().page(&live, 3, None).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&memory)
    );
}

/// People and their rooms, as the churn goes.
struct Crowd {
    people: Vec<TestUser>,
    rooms: Mutex<Vec<RoomId>>,
    /// How many actions of each kind were accepted.
    done: std::sync::Mutex<HashMap<&'static str, usize>>,
}

impl Crowd {
    async fn new(app: &TestApp) -> Self {
        let mut people = Vec::new();
        for name in [
            "Lan", "Minh", "Ánh", "Bảo", "Chi", "Dũng", "Giang", "Hà", "Khoa", "Linh", "Nam",
            "Oanh",
        ] {
            people.push(app.guest(name).await);
        }
        Self {
            people,
            rooms: Mutex::default(),
            done: std::sync::Mutex::default(),
        }
    }

    fn token(&self, id: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|p| p.id.to_string() == id)
            .map(|p| p.token.as_str())
    }

    fn count(&self, kind: &'static str, status: StatusCode) {
        if status.is_success() {
            *self.done.lock().unwrap().entry(kind).or_default() += 1;
        }
    }

    /// One random thing people do in the lobby or a room; refusals (a full room, a locked
    /// one, a room that just ended) are part of the churn.
    async fn act(&self, app: &TestApp, rng_seed: u64) {
        let mut rng = StdRng::seed_from_u64(rng_seed);
        let someone = self.people.choose(&mut rng).unwrap();
        let rooms = self.rooms.lock().await.clone();
        let choice = if rooms.len() < 4 {
            0
        } else {
            rng.gen_range(0..10)
        };
        if choice == 0 {
            let titles = [
                "Tiếng Việt cho người mới",
                "TIẾNG ANH giao tiếp",
                "Café Đà Lạt",
                "Business English",
            ];
            let topics = ["Đời sống", "Công việc", "du lịch", ""];
            let language = ["vi", "en"].choose(&mut rng).unwrap();
            let level = ["any", "beginner", "advanced"].choose(&mut rng).unwrap();
            let body = json!({
                "title": titles.choose(&mut rng).unwrap(),
                "topic": topics.choose(&mut rng).unwrap(),
                "language": language,
                "level": level,
                "maxParticipants": rng.gen_range(2..=5),
                "micRequired": rng.gen_bool(0.5),
            });
            let (status, created) = app.post("/api/rooms", Some(&someone.token), body).await;
            self.count("create", status);
            if status == StatusCode::CREATED {
                let id = created["id"].as_str().unwrap().parse().unwrap();
                self.rooms.lock().await.push(id);
            }
            return;
        }
        let room = *rooms.choose(&mut rng).unwrap();
        let (status, detail) = app
            .get(&format!("/api/rooms/{room}"), Some(&someone.token))
            .await;
        if status != StatusCode::OK || detail["status"] != "LIVE" {
            self.rooms.lock().await.retain(|r| *r != room);
            return;
        }
        let host = detail["host"]["id"].as_str().unwrap().to_owned();
        let Some(host_token) = self.token(&host) else {
            return;
        };
        let seated: Vec<String> = detail["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["userId"].as_str().unwrap().to_owned())
            .collect();
        let other = seated.iter().find(|id| **id != host).cloned();
        let path = |tail: &str| format!("/api/rooms/{room}{tail}");
        match choice {
            1..=3 => {
                let (status, _) = app.post_empty(&path("/join"), Some(&someone.token)).await;
                self.count("join", status);
            }
            4 => {
                let leaving = seated.choose(&mut rng).unwrap();
                if let Some(token) = self.token(leaving) {
                    let (status, _) = app.post_empty(&path("/leave"), Some(token)).await;
                    self.count("leave", status);
                }
            }
            5 => {
                if let Some(other) = other {
                    let (status, _) = app
                        .post_empty(&path(&format!("/kick/{other}")), Some(host_token))
                        .await;
                    self.count("kick", status);
                }
            }
            6 => {
                let method = if rng.gen_bool(0.5) {
                    Method::POST
                } else {
                    Method::DELETE
                };
                let (status, _) = app
                    .request(method, &path("/lock"), Some(host_token), None)
                    .await;
                self.count("lock", status);
            }
            7 => {
                let change = match rng.gen_range(0..4) {
                    0 => json!({"title": "Tiếng Anh buổi tối", "topic": "Đời sống"}),
                    1 => json!({"level": "beginner", "secondLanguage": "en"}),
                    2 => json!({"micRequired": rng.gen_bool(0.5), "maxParticipants": 6}),
                    _ => json!({"language": "en", "topic": null}),
                };
                let (status, _) = app
                    .request(Method::PATCH, &path(""), Some(host_token), Some(change))
                    .await;
                self.count("change", status);
            }
            8 => {
                if let Some(other) = other {
                    let (status, _) = app
                        .post(&path("/host"), Some(host_token), json!({ "userId": other }))
                        .await;
                    self.count("host", status);
                }
            }
            _ => {
                if rng.gen_bool(0.5) {
                    let (status, _) = app.delete(&path(""), Some(host_token)).await;
                    self.count("end", status);
                } else {
                    let (status, _) = app.post_empty(&path("/join"), Some(&someone.token)).await;
                    self.count("join", status);
                }
            }
        }
    }
}

/// Rounds of `per_round` actions at once on `apps` (round-robin), each followed by `check`.
async fn churn(apps: &[&TestApp], crowd: &Crowd, seed: u64, rounds: u64, per_round: u64) {
    for round in 0..rounds {
        let actions = (0..per_round).map(|i| {
            let app = apps[(i as usize) % apps.len()];
            crowd.act(app, seed * 10_000 + round * 100 + i)
        });
        futures_util::future::join_all(actions).await;
        for app in apps {
            assert_alike(
                app,
                &format!("round {round} on {}", app.address),
                apps.len(),
            )
            .await;
        }
    }
}

async fn memory_answers(app: &TestApp) {
    let live = filters().remove(0);
    for _ in 0..1200 {
        if app.state.rooms.lobby().page(&live, 1, None).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the lobby was not loaded into memory");
}

async fn memory_and_database_answer_alike_under_churn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    memory_answers(&app).await;
    let crowd = Crowd::new(&app).await;
    churn(&[&app], &crowd, 1, 16, 8).await;
    let live_rooms = app.state.rooms.lobby().len();
    assert!(live_rooms >= 3, "the churn left {live_rooms} live rooms");
    // One more room ends by its host's hand, so the comparison surely follows one.
    let (_, page) = app.get("/api/rooms?limit=1", None).await;
    let last = &page["rooms"][0];
    let host = crowd.token(last["host"]["id"].as_str().unwrap()).unwrap();
    let (status, _) = app
        .delete(
            &format!("/api/rooms/{}", last["id"].as_str().unwrap()),
            Some(host),
        )
        .await;
    crowd.count("end", status);
    assert_alike(&app, "after the last end", 1).await;
    let done = crowd.done.lock().unwrap().clone();
    for kind in [
        "create", "join", "leave", "kick", "lock", "change", "host", "end",
    ] {
        assert!(
            done.get(kind).is_some_and(|n| *n > 0),
            "no {kind} in {done:?}"
        );
    }
    // A page of ended rooms is not memory's: it comes from the database.
    let ended = RoomFilter {
        status: Some(RoomStatus::Ended),
        ..Default::default()
    };
    assert!(app.state.rooms.lobby().page(&ended, 20, None).is_none());
}

/// A TCP relay to Redis that the test can cut: open connections are dropped and new ones
/// refused until it is restored.
struct CuttableRedis {
    address: String,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableRedis {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("redis://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (gate, held) = (Arc::clone(&open), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut redis) = TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
                held.lock().unwrap().push(relay);
            }
        });
        Self {
            address,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for relay in self.connections.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Two replicas on PostgreSQL and Redis: each one's memory follows the other's events; one
/// whose link is cut answers from the database meanwhile, and from a reloaded memory after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_remembers_the_other_s_rooms_and_reloads_after_an_outage() {
    if !redis_reachable() {
        return;
    }
    let prefix = format!("tc-test:{}:", uuid::Uuid::new_v4().simple());
    let relay = CuttableRedis::start().await;
    let settings = |node: &'static str, url: &str| -> Vec<(String, String)> {
        vec![
            ("TALKCONNECT__REDIS__URL".into(), url.into()),
            ("TALKCONNECT__REDIS__KEY_PREFIX".into(), prefix.clone()),
            ("TALKCONNECT__CLUSTER__NODE_ID".into(), node.into()),
        ]
    };
    let one_settings = settings("one", "redis://127.0.0.1:6379");
    let two_settings = settings("two", &relay.address);
    let one = TestApp::spawn_with(Backend::Postgres, &as_refs(&one_settings)).await;
    let two = one.replica(&as_refs(&two_settings)).await;
    memory_answers(&one).await;
    memory_answers(&two).await;
    let crowd = Crowd::new(&one).await;
    churn(&[&one, &two], &crowd, 2, 6, 8).await;

    // Two loses its link: what one does meanwhile never reaches it.
    relay.cut();
    let live = filters().remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while two.state.rooms.lobby().page(&live, 3, None).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "two still answers from memory with its link cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = two.state.rooms.lobby().len();
    let host = &crowd.people[0];
    let mut opened = HashMap::new();
    for title in ["Trong lúc mất kết nối", "Another one"] {
        let (status, body) = one
            .post("/api/rooms", Some(&host.token), json!({ "title": title }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        opened.insert(title, body["id"].as_str().unwrap().to_owned());
    }
    // Two's lobby, from the database, has them at once.
    let (status, page) = two.get("/api/rooms?limit=100", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in opened.values() {
        assert!(ids.contains(&id.as_str()), "{id} missing from {page}");
    }
    assert_eq!(
        two.state.rooms.lobby().len(),
        before,
        "two's memory heard of rooms while its link was cut"
    );

    // The link comes back: two reloads, and its memory answers like the database again.
    relay.restore();
    memory_answers(&two).await;
    assert_alike(&two, "after the outage", 2).await;
    churn(&[&one, &two], &crowd, 3, 3, 8).await;
}
