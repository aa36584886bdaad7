//! What the SFU does with a client's SDP and ICE candidates before webrtc-rs sees them:
//! candidate lines parsed and filtered (`RemoteCandidates`), then the offer parsed and its
//! sending sections counted (`parse_client_offer`). No panic; filtering drops exactly the
//! ignored lines and is idempotent; a candidate named again is judged the same; a refused
//! SDP counts none of its candidates. Input: one byte of policy, then the SDP or candidate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::sfu::{
    CandidatePolicy, MAX_CLIENT_CANDIDATES, RemoteCandidates, SfuError, Verdict, parse_client_offer,
};

fn candidate_lines(sdp: &str) -> usize {
    sdp.split_inclusive('\n')
        .filter(|line| line.starts_with("a=candidate:"))
        .count()
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let policy = CandidatePolicy {
        allow_loopback: flags & 1 != 0,
        allow_private: flags & 2 != 0,
    };

    // A trickled candidate: judged the same when named again, which never counts twice.
    let mut trickled = RemoteCandidates::default();
    let first = trickled.admit(text, policy);
    let again = trickled.admit(text, policy);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(SfuError::InvalidCandidate(_)), Err(SfuError::InvalidCandidate(_))) => {}
        _ => panic!("{first:?} then {again:?}"),
    }
    if let Ok(Verdict::Use) = first {
        let open = CandidatePolicy {
            allow_loopback: true,
            allow_private: true,
        };
        assert_eq!(trickled.admit(text, open).ok(), Some(Verdict::Use));
    }

    // The same text as an SDP.
    let mut seen = RemoteCandidates::default();
    match seen.filter_sdp(text, policy) {
        Ok((filtered, ignored)) => {
            assert_eq!(candidate_lines(text) - candidate_lines(&filtered), ignored);
            let (twice, none) = seen
                .filter_sdp(&filtered, policy)
                .unwrap_or_else(|e| panic!("filtered SDP refused: {e:?}"));
            assert_eq!((twice.as_str(), none), (filtered.as_str(), 0));
            let _ = parse_client_offer(filtered);
        }
        Err(_) => {
            // Nothing was counted: a full session's worth of new candidates still fits.
            for i in 0..MAX_CLIENT_CANDIDATES {
                let line = format!("candidate:{i} 1 udp 1 203.0.113.{} 9 typ host", i + 1);
                assert!(seen.admit(&line, policy).is_ok(), "a refused SDP counted");
            }
        }
    }
});
