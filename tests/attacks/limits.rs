//! Findings 5–7 and 10: the limits hold against a client that lies about its address, that
//! posts chat over REST, that fails logins on purpose, that searches without signing in or
//! floods a long-poll; and the small things (405 Allow, invisible characters, the hashing
//! that held database connections).

use reqwest::StatusCode;
use serde_json::json;

use crate::server::Server;

/// A trusted proxy in front (the test plays it from 127.0.0.1), tight sign-in limits.
async fn behind_a_proxy() -> Server {
    Server::start(&[
        ("TALKCONNECT__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__COUNT", "3"),
        ("TALKCONNECT__RATE_LIMIT__AUTH_PER_IP__PER_SECS", "600"),
        ("TALKCONNECT__RATE_LIMIT__AUTH_PER_LOGIN__COUNT", "3"),
        ("TALKCONNECT__RATE_LIMIT__AUTH_PER_LOGIN__PER_SECS", "600"),
    ])
    .await
}

/// Finding 5: the per-address limits key on the address the proxy saw (the rightmost
/// untrusted hop), not on one the client wrote into X-Forwarded-For or Forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_its_own_address() {
    let server = behind_a_proxy().await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = server
            .http
            .post(server.url("/api/auth/guest"))
            .header("x-forwarded-for", format!("10.9.8.{i}, 203.0.113.9"))
            .header("forwarded", format!("for=192.0.2.{i}"))
            .json(&json!({ "displayName": "Spoofer" }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(&statuses[..3], &[StatusCode::CREATED; 3]);
    assert!(
        statuses[3..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// Finding 7: failing someone's login on purpose does not lock them out from their own
/// address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_a_stranger_do_not_lock_the_owner_out() {
    let server = behind_a_proxy().await;
    let register = server
        .http
        .post(server.url("/api/auth/register"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"username": "lan", "email": "lan@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::CREATED);
    for _ in 0..6 {
        server
            .http
            .post(server.url("/api/auth/login"))
            .header("x-forwarded-for", "203.0.113.66")
            .json(&json!({"login": "lan", "password": "wrong guess"}))
            .send()
            .await
            .unwrap();
    }
    let owner = server
        .http
        .post(server.url("/api/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"login": "lan", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
}

/// Finding 6: chat over REST spends the same budget as chat over the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_rest_is_rate_limited() {
    let server = Server::start(&[]).await;
    let (_, token) = server.guest("Chatty").await;
    let room = server.room(&token, "Loud").await;
    let mut limited = false;
    for i in 0..40 {
        let response = server
            .http
            .post(server.url(&format!("/api/rooms/{room}/chat")))
            .bearer_auth(&token)
            .json(&json!({ "message": format!("message {i}") }))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            limited = true;
            break;
        }
    }
    assert!(limited, "40 REST chat messages in a row, none limited");
}

/// Finding 10: the lobby's text search, open to anyone, has a per-address budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_lobby_search_is_rate_limited() {
    let server = Server::start(&[]).await;
    let mut limited = false;
    for i in 0..200 {
        let response = server
            .http
            .get(server.url(&format!("/api/rooms?q=%25{i}%25")))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "200 searches from one address, none limited");
}

/// Finding 10: a polling POST over the packet rate is refused with 429, not answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_post_over_the_packet_rate_is_refused() {
    let server = Server::start(&[]).await;
    let sid = server.polling_session().await;
    let body = vec!["6"; 1000].join("\u{1e}");
    let response = server
        .http
        .post(server.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}")))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Finding 10: a wrong method gets 405 with the methods that are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_names_the_allowed_ones() {
    let server = Server::start(&[]).await;
    for (path, allowed) in [
        ("/api/rooms", "GET, POST"),
        ("/api/meta", "GET"),
        ("/healthz", "GET"),
    ] {
        let response = server.http.put(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(response.headers()["allow"], allowed, "{path}");
    }
}

/// Finding 10: names cannot hide characters that make them look like someone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_characters_are_refused_in_names_titles_and_chat() {
    let server = Server::start(&[]).await;
    for name in ["Ho\u{200B}st", "\u{202E}tsoH", "Host\u{2066}"] {
        let response = server
            .http
            .post(server.url("/api/auth/guest"))
            .json(&json!({ "displayName": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}"
        );
    }
    let (_, token) = server.guest("Lan").await;
    let response = server
        .http
        .post(server.url("/api/rooms"))
        .bearer_auth(&token)
        .json(&json!({ "title": "Room\u{200F}" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A name typed with combining accents is stored composed.
    let body: serde_json::Value = server
        .http
        .post(server.url("/api/auth/guest"))
        .json(&json!({ "displayName": "Tie\u{302}\u{301}n" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["displayName"], "Tiến");
}

/// Finding 10: password hashing does not hold database connections: with one pooled
/// connection and a short wait for it, thirty-two logins in flight do not starve other
/// requests (each used to hold the connection for its whole hash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_in_flight_do_not_starve_the_database_pool() {
    let server = Server::start(&[
        ("TALKCONNECT__DATABASE__MAX_CONNECTIONS", "1"),
        ("TALKCONNECT__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
        ("TALKCONNECT__RATE_LIMIT__ENABLED", "false"),
    ])
    .await;
    server
        .http
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "mai", "email": "mai@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let logins = (0..32).map(|_| {
        server
            .http
            .post(server.url("/api/auth/login"))
            .json(&json!({"login": "mai", "password": "wrong guess"}))
            .send()
    });
    let lobby = (0..8).map(|_| server.http.get(server.url("/api/rooms")).send());
    let (logins, lobby) = tokio::join!(
        futures_util::future::join_all(logins),
        futures_util::future::join_all(lobby)
    );
    for response in logins {
        assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    for response in lobby {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
}
