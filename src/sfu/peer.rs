//! Building one server-side peer connection: codecs, interceptors, sockets, and the
//! rewriting of host addresses to the announced public IP.

use super::candidate::map_candidate_lines;
use super::config::SfuConfig;
use super::congestion::{self, DownlinkEstimate};
use super::error::{SfuError, internal};
use super::mux::{MuxRoute, SfuRuntime, UdpMux};
use super::red;
use super::rtcp::{FEEDBACK_MARKER_SLOT, FeedbackMarker};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{NackGeneratorBuilder, Slot};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, Registry,
    SettingEngineBuilder, configure_rtcp_reports, configure_simulcast_extension_headers,
    configure_twcc_receiver_only,
};

/// Header extensions whose value means the same on every hop and is therefore forwarded
/// (remapped to the subscriber's id). Everything else (mid, rid, transport-cc, …) is hop-by-hop.
pub(crate) const FORWARDED_EXTENSIONS: [&str; 2] = [
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:3gpp:video-orientation",
];

/// What the SFU asks of every Opus sender: in-band FEC (a lost packet is rebuilt from the
/// next one's redundancy) and DTX (silence costs almost nothing).
pub(crate) const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;usedtx=1";

/// Opus (and RED over it) for audio; VP8 first for video, H.264 (constrained baseline,
/// packetization-mode 1) where offered. No RTX: webrtc-rs 0.21.1's `TrackLocalStaticRTP`
/// writes only a coding's primary SSRC (`RTCRtpSender::write_rtp` refuses any other), so a
/// leg could not send RTX on its own SSRC; retransmissions come on the media SSRC, with the
/// `nack` feedback below.
fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut engine = MediaEngine::default();
    let video_feedback = vec![
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: "pli".to_owned(),
        },
    ];
    let codecs = [
        (
            RtpCodecKind::Audio,
            MIME_TYPE_OPUS,
            48000,
            2,
            OPUS_FMTP,
            111,
        ),
        // Redundant Opus (`red.rs`): offered by Chromium; the web app lists it first, so its
        // packets carry the last frame again.
        (
            RtpCodecKind::Audio,
            red::MIME_TYPE_RED,
            48000,
            2,
            "111/111",
            63,
        ),
        (RtpCodecKind::Video, MIME_TYPE_VP8, 90000, 0, "", 96),
        (
            RtpCodecKind::Video,
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        (
            RtpCodecKind::Video,
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            108,
        ),
    ];
    for (kind, mime, clock_rate, channels, fmtp, payload_type) in codecs {
        let feedback = if kind == RtpCodecKind::Video {
            video_feedback.clone()
        } else {
            vec![]
        };
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: mime.to_owned(),
                        clock_rate,
                        channels,
                        sdp_fmtp_line: fmtp.to_owned(),
                        rtcp_feedback: feedback,
                    },
                    payload_type,
                },
                kind,
            )
            .map_err(|e| internal("register codec", e))?;
    }
    for (uri, kind) in [
        (FORWARDED_EXTENSIONS[0], RtpCodecKind::Audio),
        (FORWARDED_EXTENSIONS[1], RtpCodecKind::Video),
    ] {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                kind,
                None,
            )
            .map_err(|e| internal("register header extension", e))?;
    }
    Ok(engine)
}

/// webrtc-rs' default interceptors without its NACK responder: the NACK generator (asks
/// publishers for what the SFU missed), the TWCC receiver, sender and receiver reports and
/// the simulcast header extensions, then our feedback marker. Subscribers' NACKs are answered
/// by the forwarder's one buffer per published track (`retransmit.rs`); the responder would
/// keep a second copy of every packet per leg and answer each NACK a second time.
fn interceptors(registry: Registry, engine: &mut MediaEngine) -> Result<Registry, SfuError> {
    configure_simulcast_extension_headers(engine)
        .map_err(|e| internal("register header extensions", e))?;
    let registry = configure_twcc_receiver_only(registry, engine)
        .map_err(|e| internal("register interceptors", e))?;
    Ok(configure_rtcp_reports(registry)
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
        .with(Slot::from(FEEDBACK_MARKER_SLOT), FeedbackMarker::default()))
}

/// Builds a connection bound on `port` (UDP, and TCP when ICE-TCP is on) with mDNS off and
/// our interceptors; with `estimate`, also transport-wide CC and the downlink estimator
/// (src/sfu/congestion.rs). In single-port mode it also returns the connection's route, which
/// each local description must be shown to ([`MuxRoute::follow`]) before it is sent.
pub(crate) async fn build_peer_connection(
    config: &SfuConfig,
    port: u16,
    mux: Option<&Arc<UdpMux>>,
    handler: Arc<dyn PeerConnectionEventHandler>,
    estimate: Option<Arc<DownlinkEstimate>>,
) -> Result<(Arc<dyn PeerConnection>, Option<MuxRoute>), SfuError> {
    let mut engine = media_engine()?;
    let registry = match estimate {
        Some(estimate) => congestion::register(Registry::new(), &mut engine, estimate)
            .map_err(|e| internal("register congestion control", e))?,
        None => Registry::new(),
    };
    let registry = interceptors(registry, &mut engine)?;
    let settings = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled);
    let mut addrs: Vec<SocketAddr> = config.bind_addrs(port);
    let tcp_addrs = if config.ice_tcp {
        addrs.clone()
    } else {
        vec![]
    };
    // webrtc-rs skips an address it cannot bind and fails only when none is left, so a port
    // that another program holds on one address (often an outgoing TCP connection: the range
    // lies among the kernel's ephemeral ports) would leave the participant without that
    // candidate. Probe every address first, so such a port is skipped as a whole.
    let udp_probe = if mux.is_none() { &addrs[..] } else { &[] };
    if let Some(err) = probe_binds(udp_probe, &tcp_addrs) {
        tracing::info!(port, error = %err, "sfu: port held by another program, skipped");
        return Err(SfuError::NoFreePort);
    }
    let mut runtime = SfuRuntime::default();
    // No fixed ICE credentials (webrtc-rs would reuse them on every ICE restart, which then
    // restarts nothing for the browser): the shared socket learns each new ufrag from the
    // local descriptions instead. The driver still binds a placeholder socket, which the
    // runtime swaps for a view of the shared one.
    let route = mux.map(MuxRoute::new);
    if route.is_some() {
        runtime.mux.clone_from(&route);
        addrs = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    }
    let builder = PeerConnectionBuilder::new().with_runtime(Arc::new(runtime));
    let pc = builder
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings.build())
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .with_tcp_addrs(tcp_addrs)
        .build()
        .await
        .map_err(|e| {
            tracing::warn!(port, error = %e, "sfu: peer connection could not bind");
            SfuError::NoFreePort
        })?;
    Ok((Arc::new(pc), route))
}

/// Binds and releases each address: the first error, if one cannot be bound now.
fn probe_binds(udp: &[SocketAddr], tcp: &[SocketAddr]) -> Option<std::io::Error> {
    let udp = udp.iter().map(|a| std::net::UdpSocket::bind(a).map(drop));
    let tcp = tcp.iter().map(|a| std::net::TcpListener::bind(a).map(drop));
    udp.chain(tcp).find_map(Result::err)
}

/// How our candidates are presented to browsers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CandidateRewrite {
    /// 1:1 NAT: the public address of our non-loopback host candidates.
    pub announced: Option<IpAddr>,
    /// Single-port mode: every UDP host candidate becomes this address.
    pub single_port: Option<SocketAddr>,
}

/// Rewrites a host candidate: in single-port mode every UDP host candidate names the shared
/// address; otherwise one naming a bound, non-loopback address gets the announced IP (1:1
/// NAT). Other candidates pass unchanged.
pub(crate) fn announce_candidate(candidate: &str, rewrite: &CandidateRewrite) -> String {
    let mut fields: Vec<String> = candidate.split(' ').map(str::to_owned).collect();
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …
    let is_host =
        fields.get(6).is_some_and(|f| f == "typ") && fields.get(7).is_some_and(|f| f == "host");
    if !is_host || fields.len() < 8 {
        return candidate.to_owned();
    }
    let udp = fields[2].eq_ignore_ascii_case("udp");
    if let (Some(shared), true) = (rewrite.single_port, udp) {
        fields[4] = shared.ip().to_string();
        fields[5] = shared.port().to_string();
        return fields.join(" ");
    }
    if let (Some(announced), Ok(address)) = (rewrite.announced, fields[4].parse::<IpAddr>())
        && !address.is_loopback()
        && address.is_ipv4() == announced.is_ipv4()
    {
        fields[4] = announced.to_string();
        return fields.join(" ");
    }
    candidate.to_owned()
}

/// Applies [`announce_candidate`] to every `a=candidate:` line of an SDP.
pub(crate) fn announce_sdp(sdp: &str, rewrite: &CandidateRewrite) -> String {
    let sdp = ask_for_opus_fec_dtx(sdp);
    if *rewrite == CandidateRewrite::default() {
        return sdp;
    }
    let Ok(out) = map_candidate_lines(&sdp, |line| {
        Ok::<_, Infallible>(Some(announce_candidate(line, rewrite)))
    });
    out
}

/// Puts [`OPUS_FMTP`]'s FEC and DTX into every Opus `a=fmtp` line we send. webrtc-rs answers
/// with the offerer's Opus parameters (Chromium offers `useinbandfec=1` but not `usedtx`),
/// and a browser applies what the answer asks to its own encoder.
pub(crate) fn ask_for_opus_fec_dtx(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let opus_types: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, codec)| codec.to_ascii_lowercase().starts_with("opus/"))
        .map(|(pt, _)| pt)
        .collect();
    if opus_types.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() + 16 * opus_types.len());
    for line in sdp.split(eol) {
        let opus_fmtp = line
            .strip_prefix("a=fmtp:")
            .and_then(|rest| rest.split_once(' '))
            .filter(|(pt, _)| opus_types.contains(pt));
        match opus_fmtp {
            Some((pt, params)) => {
                let mut kept: Vec<&str> = params
                    .split(';')
                    .map(str::trim)
                    .filter(|kv| {
                        let key = kv.split('=').next().unwrap_or_default();
                        !kv.is_empty()
                            && !key.eq_ignore_ascii_case("useinbandfec")
                            && !key.eq_ignore_ascii_case("usedtx")
                    })
                    .collect();
                kept.extend(["useinbandfec=1", "usedtx=1"]);
                out.push_str(&format!("a=fmtp:{pt} {}", kept.join(";")));
            }
            None => out.push_str(line),
        }
        out.push_str(eol);
    }
    // `split` yields an empty last piece after a final line break: one break too many.
    out.truncate(out.len() - eol.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host";

    fn nat(ip: [u8; 4]) -> CandidateRewrite {
        CandidateRewrite {
            announced: Some(IpAddr::from(ip)),
            single_port: None,
        }
    }

    #[test]
    fn opus_fmtp_asks_for_fec_and_dtx_and_leaves_the_rest() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=fmtp:111 minptime=10;useinbandfec=0\r\na=rtpmap:63 red/48000/2\r\n\
                   a=fmtp:63 111/111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fmtp:96 x=1\r\n";
        let out = ask_for_opus_fec_dtx(sdp);
        assert!(out.contains("a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n"));
        assert!(out.contains("a=fmtp:63 111/111\r\n"), "{out}");
        assert!(out.contains("a=fmtp:96 x=1\r\n"));
        assert_eq!(out.len(), sdp.len() + ";usedtx=1".len());
        assert!(out.ends_with("\r\n"));
        assert_eq!(ask_for_opus_fec_dtx(&out), out, "idempotent");
        let no_audio = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(ask_for_opus_fec_dtx(no_audio), no_audio);
    }

    #[test]
    fn single_port_rewrites_udp_host_candidates_only() {
        let rewrite = CandidateRewrite {
            announced: None,
            single_port: Some(SocketAddr::from(([198, 51, 100, 9], 3478))),
        };
        assert_eq!(
            announce_candidate(
                "candidate:1 1 udp 2130706431 127.0.0.1 50123 typ host",
                &rewrite
            ),
            "candidate:1 1 udp 2130706431 198.51.100.9 3478 typ host"
        );
        let tcp = "candidate:2 1 tcp 1 127.0.0.1 40001 typ host tcptype passive";
        assert_eq!(announce_candidate(tcp, &rewrite), tcp);
    }

    #[test]
    fn host_candidate_gets_public_address() {
        let public = &nat([203, 0, 113, 7]);
        assert_eq!(
            announce_candidate(HOST, public),
            "candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
        );
        let loopback = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host";
        assert_eq!(announce_candidate(loopback, public), loopback);
        let srflx = "candidate:2 1 udp 1 198.51.100.1 4000 typ srflx raddr 10.0.0.5 rport 40000";
        assert_eq!(announce_candidate(srflx, public), srflx);
        assert_eq!(announce_candidate(HOST, &CandidateRewrite::default()), HOST);
    }

    #[test]
    fn sdp_candidate_lines_are_rewritten_and_the_rest_kept() {
        let sdp = format!("v=0\r\na=mid:0\r\na={HOST}\r\na=end-of-candidates\r\n");
        let out = announce_sdp(&sdp, &nat([203, 0, 113, 7]));
        assert!(out.contains("203.0.113.7 40000 typ host\r\n"));
        assert!(!out.contains("10.0.0.5"));
        assert!(out.starts_with("v=0\r\na=mid:0\r\n"));
        assert!(out.ends_with("a=end-of-candidates\r\n"));
    }

    #[test]
    fn media_engine_and_interceptors_register() {
        let mut engine = media_engine().expect("codecs register");
        assert!(interceptors(Registry::new(), &mut engine).is_ok());
    }
}
