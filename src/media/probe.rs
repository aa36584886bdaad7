//! `POST /api/doctor/probe`: the web app's `/doctor` page asks this replica's SFU for a
//! connectivity probe (`sfu::ProbeTransport`) and times round trips over its data channel.
//! Signed-in users only, on its own rate budget; in mesh mode there is nothing to probe.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::Media;
use crate::auth::AuthUser;
use crate::config::MediaMode;
use crate::error::{ApiError, ErrorCode};
use crate::http::{self, Budget, Limits};
use crate::ids::UserId;
use crate::sfu::{PROBE_LIFETIME, ProbeAnswer, ProbeTransport, SfuError};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProbeRequest {
    transport: ProbeTransport,
    /// The browser's offer with one data channel, ICE gathering complete.
    sdp: String,
}

/// Why a path cannot be probed on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeUnavailable {
    /// `media.mode = "mesh"`: browsers connect to each other, there is no SFU.
    MeshMode,
    /// `sfu.ice_tcp = false`.
    IceTcpOff,
}

#[derive(Debug, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum ProbeResponse {
    Ready {
        available: bool,
        sdp: String,
        lifetime_ms: u64,
    },
    Unavailable {
        available: bool,
        reason: ProbeUnavailable,
    },
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/doctor/probe")
            .route(web::post().to(post_probe))
            .default_service(http::allow("POST")),
    );
}

async fn post_probe(
    media: web::Data<Media>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    user: AuthUser,
    body: web::Json<ProbeRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = user.0.user_id();
    limits
        .spend(Budget::MediaProbe, user, limits.client_ip(&req))
        .await?;
    let ProbeRequest { transport, sdp } = body.into_inner();
    let response = match media.probe(user, transport, sdp).await? {
        Ok(sdp) => ProbeResponse::Ready {
            available: true,
            sdp,
            lifetime_ms: u64::try_from(PROBE_LIFETIME.as_millis()).unwrap_or(u64::MAX),
        },
        Err(reason) => ProbeResponse::Unavailable {
            available: false,
            reason,
        },
    };
    Ok(HttpResponse::Ok().json(response))
}

impl Media {
    /// A probe on this replica's SFU (in a cluster too: the path tested is the one to the
    /// replica that answered, and every replica's media ports are set up alike).
    pub async fn probe(
        &self,
        user: UserId,
        transport: ProbeTransport,
        sdp: String,
    ) -> Result<Result<String, ProbeUnavailable>, ApiError> {
        let Some(sfu) = self.sfu.as_ref().filter(|_| self.mode == MediaMode::Sfu) else {
            return Ok(Err(ProbeUnavailable::MeshMode));
        };
        match sfu.probe(&user.to_string(), transport, sdp).await {
            Ok(ProbeAnswer::Ready { sdp }) => Ok(Ok(sdp)),
            Ok(ProbeAnswer::TransportOff) => Ok(Err(ProbeUnavailable::IceTcpOff)),
            // A REST body that is not a usable offer is the client's mistake: 400.
            Err(e @ SfuError::InvalidSdp(_)) => Err(ApiError::bad_request(
                ErrorCode::SfuInvalidSdp,
                e.to_string(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}
