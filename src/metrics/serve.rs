//! Where `/metrics` is served: on the main port behind `metrics.token` (401 without it, 404
//! when no token is set), and on the admin address `metrics.listen` without one. Also the
//! middleware that counts every HTTP request by route pattern.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use subtle::ConstantTimeEq;

use super::Metrics;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Counts the request under its route's pattern (`/api/rooms/{id}/join`), never its path.
pub async fn record_request(
    metrics: Arc<Metrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(response) => (
            response.request().match_pattern(),
            response.status().as_u16(),
        ),
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    metrics.http_request(route, method.as_str(), status, started.elapsed());
    result
}

/// `/metrics` on the main port.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::http::get_only("/metrics", main_port_metrics));
}

async fn main_port_metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let expected = state.settings.metrics.token.as_bytes();
    if expected.is_empty() {
        return crate::http::not_found().await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes();
    // Constant time, so the answer's timing does not spell the token out.
    if !bool::from(given.ct_eq(expected)) {
        return ApiError::unauthorized(
            ErrorCode::Unauthenticated,
            "The metrics token is missing or wrong",
        )
        .error_response();
    }
    exposition(&state).await
}

async fn exposition(state: &AppState) -> HttpResponse {
    match super::scrape::render(state).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
            .body(text),
        Err(e) => ApiError::internal(format!("metrics not encoded: {e}")).error_response(),
    }
}

/// The admin server on `metrics.listen`: `/metrics` without a token, nothing else.
pub struct AdminServer {
    pub server: Server,
    pub address: std::net::SocketAddr,
}

/// Binds `metrics.listen` (if set) and prepares its server; the caller runs it.
pub fn serve_admin(
    state: web::Data<AppState>,
) -> Result<Option<AdminServer>, crate::state::StartError> {
    let Some(at) = state.settings.metrics.listen_address()? else {
        return Ok(None);
    };
    let bind_error = |source| crate::state::StartError::Bind {
        address: at.to_string(),
        source,
    };
    let listener = TcpListener::bind(at).map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .route(
                "/metrics",
                web::get().to(|state: web::Data<AppState>| async move { exposition(&state).await }),
            )
            .default_service(web::to(crate::http::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    Ok(Some(AdminServer { server, address }))
}
