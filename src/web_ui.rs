//! Serves the browser app (web/, built by Vite) from files embedded in the binary at build
//! time: hashed assets cached for a year, index.html revalidated, and index.html for every
//! other page path so `/r/<roomId>` links open the app (SPA fallback). `/api/*` and
//! `/socket.io/*` never fall back to the app. Without a UI build (no Node on the build
//! machine) the table is empty and every page says how to build the UI.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::http;

/// One file of web/dist, with its gzip copy when that is worth having.
pub struct EmbeddedFile {
    pub path: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub etag: &'static str,
}

// Defines `UI_BUILT` and `ASSETS` (written by build.rs).
include!(concat!(env!("OUT_DIR"), "/web_ui_assets.rs"));

/// What the page may load: only this origin (scripts, styles, sockets, media), no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; \
     form-action 'self'; frame-ancestors 'none'";

/// Vite writes content-hashed names under assets/: they never change, so cache them long.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=3600";
const REVALIDATE: &str = "no-cache";

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TalkConnect — web app not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
code,pre{background:#f1f3f5;border-radius:4px;padding:.1rem .3rem}pre{padding:.75rem}</style>
</head><body>
<h1>TalkConnect is running</h1>
<p>The API answers under <code>/api</code>, but this binary was built without the web app
(Node.js was not available, or <code>web/dist</code> did not exist when it was compiled).</p>
<p>Build the web app, then rebuild the server so it embeds it:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd .. &amp;&amp; cargo build --release</pre>
<p><code>scripts/run</code> does all of this when Node.js 20 and npm are installed.</p>
</body></html>
"#;

/// The default service: a file of the app, the app's page for any other path, or the
/// JSON 404 for the server's own prefixes and for other methods.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return http::not_found().await;
    }
    let path = req.path().trim_start_matches('/');
    if is_server_path(path) {
        return http::not_found().await;
    }
    if let Some(file) = find(path) {
        return file_response(&req, file);
    }
    if looks_like_file(path) {
        return HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, REVALIDATE))
            .body("Not found");
    }
    match find("index.html") {
        Some(index) => file_response(&req, index),
        None => page_headers(HttpResponse::Ok())
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(PLACEHOLDER),
    }
}

/// Whether the binary embeds a built web app (false: the placeholder page is served).
pub fn ui_built() -> bool {
    UI_BUILT
}

fn find(path: &str) -> Option<&'static EmbeddedFile> {
    ASSETS.iter().find(|f| f.path == path)
}

/// Prefixes the app must never shadow, even when their own service is not mounted.
fn is_server_path(path: &str) -> bool {
    ["api", "socket.io"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// A request for a file (assets/…, favicon.ico) that does not exist answers 404 instead of
/// the app's page, so a stale script tag fails loudly rather than parsing HTML as JS.
fn looks_like_file(path: &str) -> bool {
    path.starts_with("assets/")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'))
}

fn file_response(req: &HttpRequest, file: &EmbeddedFile) -> HttpResponse {
    let cache = if file.path == "index.html" {
        REVALIDATE
    } else if file.path.starts_with("assets/") {
        IMMUTABLE
    } else {
        SHORT
    };
    let mut builder = if file.path == "index.html" {
        page_headers(HttpResponse::Ok())
    } else {
        let mut b = HttpResponse::Ok();
        b.insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        b
    };
    builder
        .insert_header((header::CONTENT_TYPE, content_type(file.path)))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, file.etag));
    if file.gzip.is_some() {
        builder.insert_header((header::VARY, "Accept-Encoding"));
    }
    if etag_matches(req, file.etag) {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    match file.gzip {
        Some(gz) if accepts_gzip(req) => builder
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(gz),
        _ => builder.body(file.body),
    }
}

/// Headers of an HTML page of the app: CSP, no sniffing, no referrer leaks, no framing.
fn page_headers(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, REVALIDATE));
    builder
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `Accept-Encoding` names gzip without `q=0`.
fn accepts_gzip(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v: &HeaderValue| v.to_str().ok())
    else {
        return false;
    };
    value.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or_default();
        let refused = pieces.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test, web};

    /// The web UI as the default service beside an /api scope, as app.rs mounts it.
    macro_rules! app {
        () => {
            test::init_service(
                App::new()
                    .service(web::scope("/api").default_service(web::to(http::not_found)))
                    .default_service(web::to(serve)),
            )
            .await
        };
    }

    fn header(res: &actix_web::dev::ServiceResponse, name: header::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[actix_web::test]
    async fn pages_get_the_app_with_revalidation_and_a_csp() {
        let app = app!();
        for path in ["/", "/r/0b0e1c1e-7d64-4a54-9d0e-6a7c2f3c9a11", "/some/page"] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header(&res, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache");
            assert!(
                header(&res, header::CONTENT_SECURITY_POLICY).contains("frame-ancestors 'none'")
            );
            let body = test::read_body(res).await;
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("<html"), "{path}: {text}");
            if !ui_built() {
                assert!(text.contains("npm run build"));
            }
        }
    }

    #[actix_web::test]
    async fn server_prefixes_and_other_methods_keep_json_404s() {
        let app = app!();
        for path in [
            "/api/nothing",
            "/socket.io/?EIO=4&transport=polling",
            "/socket.io",
        ] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(header(&res, header::CONTENT_TYPE).starts_with("application/json"));
        }
        let res = test::call_service(&app, test::TestRequest::post().uri("/").to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(header(&res, header::CONTENT_TYPE).starts_with("application/json"));
    }

    #[actix_web::test]
    async fn missing_files_are_404_not_the_page() {
        let app = app!();
        for path in ["/assets/index-deadbeef.js", "/favicon.ico.missing"] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[actix_web::test]
    async fn built_assets_have_types_caching_etags_and_gzip() {
        let app = app!();
        for file in ASSETS {
            let uri = format!("/{}", file.path);
            let res = test::call_service(
                &app,
                test::TestRequest::get()
                    .uri(&uri)
                    .insert_header((header::ACCEPT_ENCODING, "gzip, br"))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&res, header::CONTENT_TYPE), content_type(file.path));
            let expected_cache = match file.path {
                "index.html" => REVALIDATE,
                p if p.starts_with("assets/") => IMMUTABLE,
                _ => SHORT,
            };
            assert_eq!(header(&res, header::CACHE_CONTROL), expected_cache, "{uri}");
            assert_eq!(
                header(&res, header::CONTENT_ENCODING),
                if file.gzip.is_some() { "gzip" } else { "" }
            );
            let revalidated = test::call_service(
                &app,
                test::TestRequest::get()
                    .uri(&uri)
                    .insert_header((header::IF_NONE_MATCH, file.etag))
                    .to_request(),
            )
            .await;
            assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED, "{uri}");
        }
        if ui_built() {
            assert!(ASSETS.iter().any(|f| f.path.ends_with(".js")));
        }
    }

    #[actix_web::test]
    async fn gzip_negotiation_respects_q_zero() {
        let req = |v: &str| {
            test::TestRequest::default()
                .insert_header((header::ACCEPT_ENCODING, v))
                .to_http_request()
        };
        assert!(accepts_gzip(&req("gzip, deflate, br")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("br")));
        assert!(!accepts_gzip(
            &test::TestRequest::default().to_http_request()
        ));
    }

    #[actix_web::test]
    async fn content_types_by_extension() {
        assert_eq!(
            content_type("assets/a-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/a-1.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }
}
