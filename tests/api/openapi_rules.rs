//! docs/openapi.json against the server's real input rules. For every documented JSON body
//! field and query parameter, values at and around each documented bound, every documented
//! enum value and a set of awkward ones (blank, padded, control and format characters,
//! non-ASCII, wrong types) are sent to the running server. Whatever the document accepts,
//! the server must accept; whatever the server accepts, the document must accept too, or
//! accept it once normalized the way the server normalizes (surrounding spaces, letter case,
//! '-' or ' ' for '_', a blank query parameter for none). A rule added on one side only
//! fails here, naming the field and the value.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, code};

/// What refusing a request for its shape looks like (as opposed to refusing what it asks).
const SHAPE_REFUSALS: &[&str] = &[
    "VALIDATION_FAILED",
    "INVALID_BODY",
    "MALFORMED_JSON",
    "INVALID_QUERY",
    "INVALID_CURSOR",
    "PAYLOAD_TOO_LARGE",
];

fn doc() -> Value {
    serde_json::from_str(talkconnect::platform::OPENAPI_JSON).unwrap()
}

/// Does the document accept `value` under `schema`?
fn doc_accepts(doc: &Value, schema: &Value, value: &Value) -> bool {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("schema compiles");
    validator.is_valid(value)
}

/// Follows a `$ref` into the components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Every enum value and length/number bound a schema (or the ones it is made of) names.
fn bounds(doc: &Value, schema: &Value, out: &mut Vec<Value>) {
    let schema = resolve(doc, schema);
    for alt in ["oneOf", "anyOf"] {
        for inner in schema[alt].as_array().into_iter().flatten() {
            bounds(doc, inner, out);
        }
    }
    for value in schema["enum"].as_array().into_iter().flatten() {
        out.push(value.clone());
        if let Some(s) = value.as_str() {
            out.push(json!(s.to_uppercase()));
            out.push(json!(format!(" {s} ")));
        }
    }
    let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
    let max = schema["maxLength"].as_u64().map(|m| m as usize);
    for n in [Some(min), min.checked_sub(1), max, max.map(|m| m + 1)]
        .into_iter()
        .flatten()
    {
        out.push(json!("a".repeat(n)));
        out.push(json!("ế".repeat(n)));
    }
    if max.is_none() {
        // An undocumented limit shows up here.
        out.push(json!("a".repeat(300)));
        out.push(json!("a".repeat(1500)));
    }
    for key in ["minimum", "maximum"] {
        if let Some(n) = schema[key].as_i64() {
            for m in [n - 1, n, n + 1] {
                out.push(json!(m));
            }
        }
    }
}

/// Values every field is tried with.
fn awkward() -> Vec<Value> {
    [
        "",
        " ",
        "\t\n",
        "x",
        "Lan",
        "  Lan  ",
        "lan_01",
        "_lan",
        "lan.01",
        "la n",
        "lan!",
        "Tiếng Việt",
        "ＬＡＮ",
        "a\u{7}b",
        "a\nb",
        "a\tb",
        "\u{200B}",
        "a\u{200B}b",
        "a\u{202E}b",
        "e\u{301}",
        "a@b.co",
        "not an email",
        "12",
        "2.5",
        "true",
    ]
    .iter()
    .map(|s| json!(s))
    .chain([
        json!(2),
        json!(6),
        json!(2.5),
        json!(-1),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
    ])
    .collect()
}

fn candidates(doc: &Value, schema: &Value) -> Vec<Value> {
    let mut out = awkward();
    bounds(doc, schema, &mut out);
    out.dedup();
    out
}

/// A value short enough to read in a failure message.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…({} chars)", &text[..cut], text.chars().count()),
        None => text,
    }
}

/// The server's leniency: the same value once trimmed, in either letter case, with '-' or
/// ' ' for '_'.
fn normalized(value: &Value) -> Vec<Value> {
    let Some(s) = value.as_str() else {
        return Vec::new();
    };
    let trimmed = s.trim();
    let snake = trimmed.to_lowercase().replace(['-', ' '], "_");
    [
        trimmed.to_owned(),
        trimmed.to_lowercase(),
        trimmed.to_uppercase(),
        snake,
    ]
    .into_iter()
    .map(Value::String)
    .collect()
}

fn shape_refused(status: StatusCode, body: &Value) -> bool {
    matches!(status.as_u16(), 400 | 413 | 415 | 422) && SHAPE_REFUSALS.contains(&code(body))
}

/// One JSON-body operation: its path, who sends it, and its document schema and example.
struct BodyOp {
    method: Method,
    path: String,
    template: &'static str,
    token: Option<String>,
}

async fn probe_bodies(app: &TestApp, doc: &Value, op: &BodyOp, mismatches: &mut Vec<String>) {
    let schema = &doc["paths"][op.template][op.method.as_str().to_lowercase()]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{} {} has a JSON body",
        op.method,
        op.template
    );
    let example = &schema["example"];
    assert!(
        example.is_object(),
        "{} {} has an example",
        op.method,
        op.template
    );
    let send =
        |body: Value| app.request(op.method.clone(), &op.path, op.token.as_deref(), Some(body));
    let (status, answer) = send(example.clone()).await;
    assert!(
        doc_accepts(doc, schema, example) && !shape_refused(status, &answer),
        "{} {}: the documented example must be accepted: {status} {answer}",
        op.method,
        op.template
    );
    for (field, field_schema) in schema["properties"].as_object().unwrap() {
        let mut tries = candidates(doc, field_schema);
        tries.push(Value::Null);
        for value in tries {
            let mut body = example.clone();
            body[field] = value.clone();
            let doc_ok = doc_accepts(doc, schema, &body);
            let (status, answer) = send(body.clone()).await;
            let server_ok = !shape_refused(status, &answer);
            let lenient = server_ok
                && normalized(&value).into_iter().any(|v| {
                    let mut body = body.clone();
                    body[field] = v;
                    doc_accepts(doc, schema, &body)
                });
            if doc_ok != server_ok && !lenient {
                mismatches.push(format!(
                    "{} {} {field} = {}: the document {} it, the server {} it ({status} {})",
                    op.method,
                    op.template,
                    shown(&value),
                    if doc_ok { "accepts" } else { "refuses" },
                    if server_ok { "accepts" } else { "refuses" },
                    code(&answer),
                ));
            }
        }
        if schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(field)))
        {
            let mut body = example.clone();
            body.as_object_mut().unwrap().remove(field);
            let (status, answer) = send(body).await;
            if !shape_refused(status, &answer) {
                mismatches.push(format!(
                    "{} {}: without the required {field} the server answers {status}",
                    op.method, op.template
                ));
            }
        }
    }
}

/// A query value as the document reads it: the parameter's type decides.
fn query_value(doc: &Value, schema: &Value, raw: &str) -> Option<Value> {
    let schema = resolve(doc, schema);
    match schema["type"].as_str() {
        Some("integer") => raw.parse::<i64>().ok().map(|n| json!(n)),
        Some("boolean") => match raw {
            "true" => Some(json!(true)),
            "false" => Some(json!(false)),
            _ => None,
        },
        _ => Some(json!(raw)),
    }
}

async fn probe_query(
    app: &TestApp,
    doc: &Value,
    template: &'static str,
    path: &str,
    token: Option<&str>,
    mismatches: &mut Vec<String>,
) {
    let params = doc["paths"][template]["get"]["parameters"]
        .as_array()
        .unwrap();
    for param in params.iter().filter(|p| p["in"] == "query") {
        let name = param["name"].as_str().unwrap();
        let schema = &param["schema"];
        let raws: Vec<String> = candidates(doc, schema)
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        for raw in raws {
            let accepts = |raw: &str| {
                query_value(doc, schema, raw).is_some_and(|v| doc_accepts(doc, schema, &v))
            };
            let doc_ok = accepts(&raw);
            let query = serde_urlencoded::to_string([(name, raw.as_str())]).unwrap();
            let (status, answer) = app
                .request(Method::GET, &format!("{path}?{query}"), token, None)
                .await;
            let server_ok = !shape_refused(status, &answer);
            let lenient = server_ok
                && (raw.trim().is_empty()
                    || normalized(&json!(raw))
                        .iter()
                        .any(|v| v.as_str().is_some_and(accepts)));
            if doc_ok != server_ok && !lenient {
                mismatches.push(format!(
                    "GET {template}?{name}={}: the document {} it, the server {} it ({status} {})",
                    shown(&json!(raw)),
                    if doc_ok { "accepts" } else { "refuses" },
                    if server_ok { "accepts" } else { "refuses" },
                    code(&answer),
                ));
            }
        }
    }
}

#[test]
fn the_documented_languages_are_the_default_configuration() {
    let doc = doc();
    let settings = talkconnect::config::Settings::load(None).unwrap();
    let mut documented: Vec<Value> =
        doc["paths"]["/api/rooms"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"]["language"]["enum"]
            .as_array()
            .unwrap()
            .clone();
    documented.retain(|v| !v.is_null());
    assert_eq!(
        documented,
        json!(settings.rooms.languages).as_array().unwrap().clone()
    );
}

#[tokio::test]
async fn the_document_and_the_server_agree_on_every_input_rule() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("TALKCONNECT__MODERATION__ADMINS", "boss")],
    )
    .await;
    let doc = doc();
    let host = app.guest("Host").await;
    let (status, boss) = app
        .post(
            "/api/auth/register",
            None,
            json!({"username": "boss", "email": "boss@example.com", "password": "long enough pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let boss = boss["token"].as_str().unwrap().to_owned();
    let room = app.room(&host, json!({"title": "Rules"})).await;
    let seated = app.guest("Seated").await;
    app.join(room, &seated).await;
    let mut mismatches = Vec::new();
    let ops = [
        BodyOp {
            method: Method::POST,
            path: "/api/auth/guest".into(),
            template: "/api/auth/guest",
            token: None,
        },
        BodyOp {
            method: Method::POST,
            path: "/api/auth/register".into(),
            template: "/api/auth/register",
            token: None,
        },
        BodyOp {
            method: Method::POST,
            path: "/api/auth/login".into(),
            template: "/api/auth/login",
            token: None,
        },
        BodyOp {
            method: Method::POST,
            path: "/api/rooms".into(),
            template: "/api/rooms",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::PATCH,
            path: format!("/api/rooms/{room}"),
            template: "/api/rooms/{roomId}",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/join"),
            template: "/api/rooms/{roomId}/join",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/participants/{}/mute", seated.id),
            template: "/api/rooms/{roomId}/participants/{userId}/mute",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/cohosts"),
            template: "/api/rooms/{roomId}/cohosts",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/host"),
            template: "/api/rooms/{roomId}/host",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/chat"),
            template: "/api/rooms/{roomId}/chat",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: format!("/api/rooms/{room}/reports"),
            template: "/api/rooms/{roomId}/reports",
            token: Some(host.token.clone()),
        },
        BodyOp {
            method: Method::POST,
            path: "/api/admin/bans".into(),
            template: "/api/admin/bans",
            token: Some(boss.clone()),
        },
    ];
    for op in &ops {
        probe_bodies(&app, &doc, op, &mut mismatches).await;
    }
    probe_query(
        &app,
        &doc,
        "/api/rooms",
        "/api/rooms",
        None,
        &mut mismatches,
    )
    .await;
    probe_query(
        &app,
        &doc,
        "/api/rooms/{roomId}/chat",
        &format!("/api/rooms/{room}/chat"),
        Some(&host.token),
        &mut mismatches,
    )
    .await;
    assert!(
        mismatches.is_empty(),
        "docs/openapi.json and the server disagree ({}):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// A server with its own languages documents those.
#[tokio::test]
async fn the_served_document_names_the_configured_languages() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__ROOMS__LANGUAGES", "vi,en"),
            ("TALKCONNECT__ROOMS__DEFAULT_LANGUAGE", "vi"),
        ],
    )
    .await;
    let (status, served) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let create = &served["paths"]["/api/rooms"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["language"]["enum"];
    assert_eq!(create, &json!(["vi", "en", null]));
    let query = served["paths"]["/api/rooms"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "language")
        .unwrap();
    assert_eq!(query["schema"]["enum"], json!(["vi", "en"]));
}
