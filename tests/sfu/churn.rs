//! m-line reuse: one participant stays (publishing too, so its own m-lines are in the same SDP)
//! while 30 publishers join and leave one after another. A departed publisher's two m-lines are
//! recycled for the next one, so the staying participant's SDP stays the same size; and each
//! publisher's media reaches it under that publisher's name, on a recycled m-line. Publishers
//! alternate VP8 and H.264 cameras, so one video m-line carries both codecs in turn.

use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{MediaKind, Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::{Client, VideoCodec, has_kind, wait_for};

const CHURNS: usize = 30;
/// The staying participant's own microphone and camera.
const OWN_M_LINES: usize = 2;

fn m_lines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_publishers_come_and_go_and_the_sdp_of_who_stays_does_not_grow() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sfu = Sfu::start(SfuConfig::loopback(42570, 42589)).expect("sfu starts");
    let h = sfu.handle();
    let room = "churn";
    let mut stay = Client::join(&h, room, "stay", true).await;
    stay.start_media(50, 300);

    let mut first_size: Option<(usize, usize)> = None;
    for i in 0..CHURNS {
        let name = format!("pub{i}");
        let video = if i % 2 == 0 {
            VideoCodec::Vp8
        } else {
            VideoCodec::H264
        };
        let mut publisher = Client::join_publishing(&h, room, &name, video).await;
        publisher.start_media(50, 300);
        wait_for(
            &format!("{name}'s audio and video reach the staying participant"),
            Duration::from_secs(20),
            || {
                let got = stay.state.received_from(&name);
                got.audio >= 5 && got.video >= 5
            },
        )
        .await;
        // The server's labels agree: both of this publisher's m-lines, no one else's.
        let tracks = stay.state.tracks.lock().unwrap().clone();
        assert!(
            has_kind(&tracks, &name, MediaKind::Audio)
                && has_kind(&tracks, &name, MediaKind::Video),
            "tracks list names {name}: {tracks:?}"
        );
        assert_eq!(
            tracks.len(),
            2,
            "only the present publisher's tracks: {tracks:?}"
        );
        let got = stay.state.received_from(&name);
        assert_eq!(got.mislabelled, 0, "{name}'s packets carried another name");
        // The other way round too: the newcomer receives the one who stays.
        wait_for(
            "the staying participant reaches the newcomer",
            Duration::from_secs(20),
            || publisher.state.received_from("stay").video >= 5,
        )
        .await;

        let sdp = stay.state.last_offer_sdp.lock().unwrap().clone();
        let lines = m_lines(&sdp);
        // Its video m-line names it and offers its codec alone.
        let section = sdp
            .split("\r\nm=")
            .find(|m| m.starts_with("video") && m.contains(&format!("a=msid:{name} ")))
            .unwrap_or_else(|| panic!("no video m-line names {name}: {sdp}"));
        let (wanted, other) = match video {
            VideoCodec::Vp8 => (" VP8/90000", " H264/90000"),
            VideoCodec::H264 => (" H264/90000", " VP8/90000"),
        };
        assert!(
            section.contains(wanted) && !section.contains(other),
            "{name}'s video m-line offers {wanted} alone: {section}"
        );
        // Present: one publisher (two m-lines); at most one departed pair waiting to be
        // recycled; our own two. A bound that does not move with the number of churns.
        let present = 1;
        assert!(
            lines <= 2 + 2 * present + OWN_M_LINES,
            "churn {i}: {lines} m-lines in the staying participant's SDP"
        );
        let first = *first_size.get_or_insert((lines, sdp.len()));
        assert!(
            lines <= first.0,
            "churn {i}: {lines} m-lines, {} at the first",
            first.0
        );
        tracing::info!(
            churn = i,
            m_lines = lines,
            sdp_bytes = sdp.len(),
            "staying SDP"
        );

        let offers = stay.state.offers.load(Ordering::SeqCst);
        h.leave(room, &name).await.expect("leave");
        publisher.close().await;
        // The departure is negotiated (its m-lines inactive) before the next one joins.
        wait_for(
            "the departure is renegotiated",
            Duration::from_secs(20),
            || {
                stay.state.offers.load(Ordering::SeqCst) > offers
                    && !stay
                        .state
                        .tracks
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|t| t.user_id == name)
            },
        )
        .await;
    }
    let stats = h.stats();
    assert!(
        stats.recycled_legs >= 2 * (CHURNS as u64 - 1),
        "every publisher after the first used recycled m-lines: {} reused",
        stats.recycled_legs
    );
    let sdp = stay.state.last_offer_sdp.lock().unwrap().clone();
    tracing::info!(
        churns = CHURNS,
        m_lines = m_lines(&sdp),
        sdp_bytes = sdp.len(),
        ?first_size,
        "staying SDP at the end"
    );
    assert!(
        stay.state.errors.lock().unwrap().is_empty(),
        "client errors: {:?}",
        stay.state.errors.lock().unwrap()
    );
    stay.close().await;
    sfu.shutdown().await;
}
