//! A real server on a random port with a fresh database (SQLite file or PostgreSQL database),
//! a client that speaks to it, and a check of every JSON answer against docs/openapi.json.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use talkconnect::app::Application;
use talkconnect::config::Settings;
use talkconnect::ids::{RoomId, UserId};
use talkconnect::state::AppState;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL / MariaDB (a build with the `mysql` feature).
    #[cfg(feature = "mysql")]
    Mysql,
}

/// Generates `mod $name { sqlite, postgres, mysql }` test functions around an async fn taking
/// a Backend (`mysql` in a build with the `mysql` feature).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                super::$name($crate::helpers::Backend::Mysql).await
            }
        }
    )+};
}

/// A MySQL/MariaDB account that may create and drop databases (scripts/services makes it).
#[cfg(feature = "mysql")]
pub fn mysql_admin_url() -> String {
    std::env::var("TALKCONNECT_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://talkconnect_test:talkconnect_test@127.0.0.1:3306".to_string())
}

fn postgres_admin_url() -> String {
    std::env::var("TALKCONNECT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// The server's data folder for one test (`tc-test-*` in the temp dir; the SQLite database
/// lives in it too), removed when the test app is dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Self {
        let dir = std::env::temp_dir().join(format!("tc-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database that exists for one test and is dropped after it.
pub enum TestDb {
    /// A file in the test's data folder, which goes with it.
    Sqlite,
    Postgres {
        name: String,
    },
    #[cfg(feature = "mysql")]
    Mysql {
        name: String,
    },
}

impl TestDb {
    fn create(backend: Backend, dir: &Path) -> (Self, String) {
        match backend {
            Backend::Sqlite => (
                TestDb::Sqlite,
                format!("sqlite://{}", dir.join("test.db").display()),
            ),
            Backend::Postgres => {
                use diesel::Connection;
                use diesel::connection::SimpleConnection;
                let admin = format!("{}/postgres", postgres_admin_url());
                let mut conn = diesel::PgConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is needed for this test and is not reachable at {admin}: {e}. \
                         Start it (scripts/services) or set TALKCONNECT_TEST_POSTGRES_URL."
                    )
                });
                let name = format!("tc_test_{}", Uuid::new_v4().simple());
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let url = format!("{}/{name}", postgres_admin_url());
                (TestDb::Postgres { name }, url)
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                use diesel::Connection;
                use diesel::connection::SimpleConnection;
                let admin = mysql_admin_url();
                let mut conn = diesel::MysqlConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!(
                        "MySQL/MariaDB is needed for this test and is not reachable at {admin}: \
                         {e}. Start it (scripts/services) or set TALKCONNECT_TEST_MYSQL_URL."
                    )
                });
                let name = format!("tc_test_{}", Uuid::new_v4().simple());
                conn.batch_execute(&format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                ))
                .unwrap();
                let url = format!("{admin}/{name}");
                (TestDb::Mysql { name }, url)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        match self {
            TestDb::Sqlite => {}
            TestDb::Postgres { name } => {
                let admin = format!("{}/postgres", postgres_admin_url());
                if let Ok(mut conn) = diesel::PgConnection::establish(&admin) {
                    let _ =
                        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
            #[cfg(feature = "mysql")]
            TestDb::Mysql { name } => {
                if let Ok(mut conn) = diesel::MysqlConnection::establish(&mysql_admin_url()) {
                    let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
                }
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub jwt_secret: String,
    /// The admin address serving `/metrics`, when `metrics.listen` is set.
    pub metrics_address: Option<std::net::SocketAddr>,
    // Dropped in this order: the database, then the folder it may live in.
    _db: TestDb,
    _data_dir: TempDir,
}

pub struct TestUser {
    pub id: UserId,
    pub token: String,
    pub display_name: String,
}

/// Settings for a test: loopback, port 0, a fresh database, limits off unless asked.
pub fn test_settings(db_url: &str, data_dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("TALKCONNECT__SERVER__HOST", "127.0.0.1"),
        ("TALKCONNECT__SERVER__PORT", "0"),
        ("TALKCONNECT__SERVER__WORKERS", "2"),
        ("TALKCONNECT__RATE_LIMIT__ENABLED", "false"),
        // Tests make many rooms with one host; the cap has its own test.
        ("TALKCONNECT__ROOMS__MAX_SEATS_PER_USER", "1000"),
        ("TALKCONNECT__LOG__LEVEL", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("TALKCONNECT__DATABASE__URL".into(), db_url.to_string());
    env.insert(
        "TALKCONNECT__SERVER__DATA_DIR".into(),
        data_dir.display().to_string(),
    );
    env.insert(
        "TALKCONNECT__AUTH__JWT_SECRET".into(),
        format!("test-secret-{}", Uuid::new_v4()),
    );
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::load_with_env(None, Some(env)).expect("test settings")
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::create();
        let (db, url) = TestDb::create(backend, &dir.0);
        let settings = test_settings(&url, &dir.0, extra);
        Self::start(settings, db, dir).await
    }

    /// Builds the app of `settings` and serves it in the background.
    async fn start(settings: Settings, db: TestDb, dir: TempDir) -> Self {
        let jwt_secret = settings.auth.jwt_secret.clone();
        let app = Application::build(settings).await.expect("the app builds");
        let address = format!("http://{}", app.address());
        let state = app.state();
        let metrics_address = app.metrics_address();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            client: reqwest::Client::new(),
            state,
            jwt_secret,
            metrics_address,
            _db: db,
            _data_dir: dir,
        }
    }

    /// Another replica of this app: the same database and JWT secret, its own data folder
    /// and port, `extra` on top (a cluster test gives both the same Redis and prefix).
    pub async fn replica(&self, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::create();
        let url = self.state.settings.database.url.clone();
        let mut all = vec![("TALKCONNECT__AUTH__JWT_SECRET", self.jwt_secret.as_str())];
        all.extend_from_slice(extra);
        let settings = test_settings(&url, &dir.0, &all);
        // The first app owns the database and drops it; this one leaves it alone.
        Self::start(settings, TestDb::Sqlite, dir).await
    }

    /// Sends a request; every JSON answer is checked against the OpenAPI document.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path} answered {status} with non-JSON {text:?}: {e}")
        });
        check_openapi(&method, path, status, &value);
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, None).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, token, None).await
    }

    pub async fn guest(&self, name: &str) -> TestUser {
        let (status, body) = self
            .post("/api/auth/guest", None, json!({ "displayName": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestUser {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: body["token"].as_str().unwrap().to_string(),
            display_name: name.to_string(),
        }
    }

    /// Guests of these display names, in order.
    pub async fn guests<const N: usize>(&self, names: [&str; N]) -> [TestUser; N] {
        let mut users = Vec::with_capacity(N);
        for name in names {
            users.push(self.guest(name).await);
        }
        users
            .try_into()
            .unwrap_or_else(|_| unreachable!("one user a name"))
    }

    /// A room of `title` that `host` opened and each of `guests` joined.
    pub async fn seated_room(&self, host: &TestUser, title: &str, guests: &[&TestUser]) -> RoomId {
        let room = self.room(host, json!({ "title": title })).await;
        for guest in guests {
            let (status, body) = self.join(room, guest).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        room
    }

    /// Creates a room as `host` and returns its id.
    pub async fn room(&self, host: &TestUser, body: Value) -> RoomId {
        let (status, room) = self.post("/api/rooms", Some(&host.token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        room["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn join(&self, room: RoomId, user: &TestUser) -> (StatusCode, Value) {
        self.post_empty(&format!("/api/rooms/{room}/join"), Some(&user.token))
            .await
    }
}

/// Whether Redis answers on 127.0.0.1:6379; under CI it must (the test fails), elsewhere a
/// test that needs it says it is skipped and returns.
pub fn redis_reachable() -> bool {
    let reachable = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    if !reachable {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "Redis is needed under CI"
        );
        eprintln!("skipped: no Redis on 127.0.0.1:6379 (run scripts/services)");
    }
    reachable
}

/// The seconds of a `429`'s `Retry-After`.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::from_str(talkconnect::platform::OPENAPI_JSON).expect("openapi.json parses")
    })
}

/// Finds the documented path template matching a concrete path (query string ignored).
pub fn openapi_template(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    openapi()["paths"]
        .as_object()?
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s)
        })
        .cloned()
}

/// Fails the test when a documented operation answers a status or body its document does
/// not describe. Undocumented paths (404 probes) must answer the generic error shape.
pub fn check_openapi(method: &Method, path: &str, status: StatusCode, body: &Value) {
    let doc = openapi();
    let error_schema = json!({ "$ref": "#/components/schemas/Error" });
    let schema = match openapi_template(path) {
        Some(template) => {
            let op = &doc["paths"][&template][method.as_str().to_lowercase()];
            if op.is_null() {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                error_schema
            } else {
                let response = &op["responses"][status.as_str()];
                assert!(
                    !response.is_null(),
                    "{method} {template} answered {status}, which docs/openapi.json does not list: {body}"
                );
                response["content"]["application/json"]["schema"].clone()
            }
        }
        None => error_schema,
    };
    let root = json!({ "$ref": schema["$ref"].clone(), "components": doc["components"].clone() });
    let root = if schema.get("$ref").is_some() {
        root
    } else {
        let mut s = schema.clone();
        s["components"] = doc["components"].clone();
        s
    };
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} → {status}: the body does not match docs/openapi.json: {errors:?}\n{body}"
    );
}
