//! Client ICE candidates, parsed (RFC 8839) and judged before webrtc-rs sees them. The SFU
//! sends STUN checks to every candidate it is given, so a client could otherwise make the
//! server probe hosts of the server's own network: candidates on such addresses are ignored,
//! and one session may name only so many.

use super::config::SfuConfig;
use super::error::SfuError;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Distinct candidates one participant may name in its session, trickled and in its SDPs
/// together, used or ignored. A browser gathers one to two dozen (host per interface and
/// protocol, server-reflexive, relayed per TURN server) and a fresh session starts from zero;
/// the cap bounds the pairs and checks one client can make the server run. A constant, like
/// the SDP limits: no deployment needs another value.
pub const MAX_CLIENT_CANDIDATES: usize = 50;

/// A candidate's connection address: an IP literal or a name (mDNS `.local` from browsers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ConnectionAddress {
    Ip(IpAddr),
    Name(String),
}

/// The fields of a candidate line that say where checks would go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Candidate {
    component: u16,
    /// Lower-cased (`udp`, `tcp`).
    transport: String,
    address: ConnectionAddress,
    port: u16,
    /// `host`, `srflx`, `prflx`, `relay`, …
    kind: String,
}

impl Candidate {
    /// Parses `candidate:<foundation> <component> <transport> <priority> <address> <port> typ
    /// <type> …` (the `candidate:` prefix is optional, as in an SDP attribute's value; the
    /// extensions after the type are not looked at). The reason says which field is wrong,
    /// without repeating it.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        let text = text.strip_prefix("candidate:").unwrap_or(text);
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let [
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            typ,
            kind,
            ..,
        ] = fields[..]
        else {
            return Err("too few fields");
        };
        let ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
        if foundation.len() > 32 || !foundation.chars().all(ice_char) {
            return Err("bad foundation");
        }
        let component = component
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=256).contains(c))
            .ok_or("bad component")?;
        if !transport.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("bad transport");
        }
        priority.parse::<u32>().map_err(|_| "bad priority")?;
        let address = ConnectionAddress::parse(address).ok_or("bad connection address")?;
        let port = port.parse::<u16>().map_err(|_| "bad port")?;
        if typ != "typ" || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("bad candidate type");
        }
        Ok(Self {
            component,
            transport: transport.to_ascii_lowercase(),
            address,
            port,
            kind: kind.to_ascii_lowercase(),
        })
    }

    /// `udp` or `tcp` (lower-cased).
    pub(crate) fn transport(&self) -> &str {
        &self.transport
    }

    /// `host`, `srflx`, `prflx`, `relay`, …
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    /// What the connection address is, for [`CandidatePolicy::admits`].
    pub(crate) fn class(&self) -> AddressClass {
        match &self.address {
            ConnectionAddress::Ip(ip) => classify_ip(*ip),
            ConnectionAddress::Name(name) if is_mdns_name(name) => AddressClass::Mdns,
            ConnectionAddress::Name(_) => AddressClass::Hostname,
        }
    }
}

impl ConnectionAddress {
    /// An IP literal (an IPv6 zone suffix is dropped: only link-local addresses have one) or
    /// a host name of letters, digits, `-` and `.`.
    fn parse(text: &str) -> Option<Self> {
        let unzoned = text.split_once('%').map_or(text, |(ip, _)| ip);
        if let Ok(ip) = unzoned.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        let valid = !text.is_empty() && text.len() <= 253 && text.chars().all(name_char);
        valid.then(|| Self::Name(text.to_ascii_lowercase()))
    }
}

fn is_mdns_name(name: &str) -> bool {
    name.trim_end_matches('.').ends_with(".local")
}

/// Where an address points, as far as probing it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A globally routed address: the only kind probed by default.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, shared `100.64.0.0/10` (carrier NAT, overlay networks), IPv6 ULA
    /// `fc00::/7` and the deprecated site-local `fec0::/10`.
    Private,
    /// `169.254.0.0/16` (where cloud metadata services answer), `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0/8` (Linux delivers `0.0.0.0` to the host itself), `::`.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `240.0.0.0/4` with the broadcast address, IPv4-compatible IPv6 (`::a.b.c.d`).
    Reserved,
    /// A browser's mDNS name (`<uuid>.local`); mDNS is off in the SFU.
    Mdns,
    /// Any other name: the SFU resolves none (a name may resolve to an internal address).
    Hostname,
}

/// Classifies an address; IPv4 addresses carried in IPv6 (mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`) are classified by the IPv4 address they reach.
pub(crate) fn classify_ip(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    match (a, b) {
        (0, _) => AddressClass::Unspecified,
        (127, _) => AddressClass::Loopback,
        (10, _) | (172, 16..=31) | (192, 168) | (100, 64..=127) => AddressClass::Private,
        (169, 254) => AddressClass::LinkLocal,
        (224..=239, _) => AddressClass::Multicast,
        (240..=255, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    const NAT64_PREFIX: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];
    let segments = ip.segments();
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if segments[..6] == NAT64_PREFIX {
        let [.., a, b, c, d] = ip.octets();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[..6] == [0; 6] {
        return AddressClass::Reserved;
    }
    match segments[0] {
        0xfc00..=0xfdff | 0xfec0..=0xfeff => AddressClass::Private,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xff00..=0xffff => AddressClass::Multicast,
        _ => AddressClass::Public,
    }
}

/// Which classes of client candidate the SFU probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidatePolicy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

impl CandidatePolicy {
    pub fn of(config: &SfuConfig) -> Self {
        Self {
            allow_loopback: config.allow_loopback,
            allow_private: config.allow_private_candidates,
        }
    }

    /// Whether a candidate of this class is handed to the ICE agent (else it is ignored).
    pub fn admits(self, class: AddressClass) -> bool {
        match class {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private => self.allow_private,
            AddressClass::LinkLocal
            | AddressClass::Unspecified
            | AddressClass::Multicast
            | AddressClass::Reserved
            | AddressClass::Mdns
            | AddressClass::Hostname => false,
        }
    }
}

/// What to do with one client candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the ICE agent.
    Use,
    /// Drop it silently (browsers send such candidates routinely).
    Ignore(AddressClass),
}

/// The distinct candidates one participant has named so far.
#[derive(Debug, Default)]
pub struct RemoteCandidates {
    seen: HashSet<Candidate>,
}

impl RemoteCandidates {
    /// Judges one candidate line. A candidate named before is judged again without counting
    /// (browsers repeat theirs in later SDPs); a new one past [`MAX_CLIENT_CANDIDATES`] is
    /// refused.
    pub fn admit(&mut self, line: &str, policy: CandidatePolicy) -> Result<Verdict, SfuError> {
        let candidate =
            Candidate::parse(line).map_err(|why| SfuError::InvalidCandidate(why.to_owned()))?;
        let class = candidate.class();
        if !self.seen.contains(&candidate) {
            if self.seen.len() >= MAX_CLIENT_CANDIDATES {
                return Err(SfuError::TooManyCandidates);
            }
            self.seen.insert(candidate);
        }
        Ok(if policy.admits(class) {
            Verdict::Use
        } else {
            Verdict::Ignore(class)
        })
    }

    /// Judges every `a=candidate:` line of a client SDP: the SDP without the ignored ones and
    /// how many those were. A line that does not parse makes the SDP invalid; a refused SDP
    /// counts none of its candidates.
    pub fn filter_sdp(
        &mut self,
        sdp: &str,
        policy: CandidatePolicy,
    ) -> Result<(String, usize), SfuError> {
        let before = self.seen.clone();
        let filtered = self.filter_sdp_lines(sdp, policy);
        if filtered.is_err() {
            self.seen = before;
        }
        filtered
    }

    fn filter_sdp_lines(
        &mut self,
        sdp: &str,
        policy: CandidatePolicy,
    ) -> Result<(String, usize), SfuError> {
        let mut ignored = 0;
        let filtered = map_candidate_lines(sdp, |line| match self.admit(line, policy) {
            Ok(Verdict::Use) => Ok(Some(line.to_owned())),
            Ok(Verdict::Ignore(_)) => {
                ignored += 1;
                Ok(None)
            }
            Err(SfuError::InvalidCandidate(why)) => Err(SfuError::InvalidSdp(format!(
                "an a=candidate line does not parse ({why})"
            ))),
            Err(e) => Err(e),
        })?;
        Ok((filtered, ignored))
    }
}

/// Rebuilds `sdp` with each `a=candidate:` line replaced by what `f` makes of it (given the
/// text after `a=`, without the line ending; `None` drops the line). Other lines, and every
/// line ending, stay as they were.
pub(crate) fn map_candidate_lines<E>(
    sdp: &str,
    mut f: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("a=")
            && rest.starts_with("candidate:")
        {
            let trimmed = rest.trim_end_matches(['\r', '\n']);
            if let Some(replaced) = f(trimmed)? {
                out.push_str("a=");
                out.push_str(&replaced);
                out.push_str(&rest[trimmed.len()..]);
            }
            continue;
        }
        out.push_str(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: CandidatePolicy = CandidatePolicy {
        allow_loopback: false,
        allow_private: false,
    };

    fn class_of(address: &str) -> AddressClass {
        let line = format!("candidate:1 1 udp 2130706431 {address} 5000 typ host");
        Candidate::parse(&line).expect("parses").class()
    }

    #[test]
    fn ipv4_addresses_are_classified() {
        for (address, class) in [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.15.255.255", AddressClass::Public),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.254", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.5", AddressClass::Private),
            ("192.169.0.1", AddressClass::Public),
            ("100.63.255.255", AddressClass::Public),
            ("100.64.0.1", AddressClass::Private),
            ("100.127.255.255", AddressClass::Private),
            ("100.128.0.0", AddressClass::Public),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("224.0.0.251", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("203.0.113.7", AddressClass::Public),
            ("8.8.8.8", AddressClass::Public),
        ] {
            assert_eq!(class_of(address), class, "{address}");
        }
    }

    #[test]
    fn ipv6_addresses_are_classified() {
        for (address, class) in [
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("fe80::1%eth0", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("ff02::fb", AddressClass::Multicast),
            ("::ffff:10.1.2.3", AddressClass::Private),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:203.0.113.7", AddressClass::Public),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("64:ff9b::c000:0201", AddressClass::Public),
            ("::10.0.0.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Public),
            ("2a00:1450:4001::200e", AddressClass::Public),
        ] {
            assert_eq!(class_of(address), class, "{address}");
        }
    }

    #[test]
    fn names_are_mdns_or_hostnames() {
        assert_eq!(
            class_of("4f5c1b52-0d3e-4a8e-9d4b-6c0f2a1e3b7d.local"),
            AddressClass::Mdns
        );
        assert_eq!(class_of("Printer.LOCAL."), AddressClass::Mdns);
        assert_eq!(class_of("media.example.org"), AddressClass::Hostname);
        assert_eq!(class_of("local"), AddressClass::Hostname);
    }

    #[test]
    fn policy_probes_only_what_it_allows() {
        let all = [
            AddressClass::Public,
            AddressClass::Loopback,
            AddressClass::Private,
            AddressClass::LinkLocal,
            AddressClass::Unspecified,
            AddressClass::Multicast,
            AddressClass::Reserved,
            AddressClass::Mdns,
            AddressClass::Hostname,
        ];
        let admitted = |policy: CandidatePolicy| -> Vec<AddressClass> {
            all.into_iter().filter(|c| policy.admits(*c)).collect()
        };
        assert_eq!(admitted(STRICT), [AddressClass::Public]);
        let open = CandidatePolicy {
            allow_loopback: true,
            allow_private: true,
        };
        assert_eq!(
            admitted(open),
            [
                AddressClass::Public,
                AddressClass::Loopback,
                AddressClass::Private
            ]
        );
        let config = SfuConfig::loopback(1, 2);
        assert_eq!(
            CandidatePolicy::of(&config),
            CandidatePolicy {
                allow_loopback: true,
                allow_private: false
            }
        );
    }

    #[test]
    fn candidate_lines_parse_per_rfc_8839() {
        let srflx = Candidate::parse(
            "candidate:842163049 1 UDP 1677729535 198.51.100.1 61665 typ srflx raddr 10.0.0.5 \
             rport 61665 generation 0 ufrag abcd network-cost 999",
        )
        .expect("srflx parses");
        assert_eq!(srflx.transport, "udp");
        assert_eq!(srflx.kind, "srflx");
        assert_eq!(srflx.port, 61665);
        // The related address is not where checks go.
        assert_eq!(srflx.class(), AddressClass::Public);
        let tcp = Candidate::parse("1 1 tcp 1518280447 2001:db8::7 9 typ host tcptype active")
            .expect("without the prefix, as in an SDP attribute");
        assert_eq!(
            tcp.address,
            ConnectionAddress::Ip("2001:db8::7".parse().unwrap())
        );
        for bad in [
            "",
            "candidate:",
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ",
            "candidate:1 x udp 2130706431 127.0.0.1 5000 typ host",
            "candidate:1 0 udp 2130706431 127.0.0.1 5000 typ host",
            "candidate:1 1 udp 99999999999 127.0.0.1 5000 typ host",
            "candidate:1 1 udp 2130706431 127.0.0.1 70000 typ host",
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 type host",
            "candidate:1 1 udp 2130706431 no_such!host 5000 typ host",
            "candidate:1 1 u;dp 2130706431 127.0.0.1 5000 typ host",
            "candidate:~ 1 udp 2130706431 127.0.0.1 5000 typ host",
        ] {
            assert!(Candidate::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn admit_ignores_counts_and_caps() {
        let mut seen = RemoteCandidates::default();
        let line = |i: usize| format!("candidate:{i} 1 udp 2130706431 192.168.0.{i} 5000 typ host");
        assert_eq!(
            seen.admit("candidate:1 1 udp 1 203.0.113.7 5000 typ host", STRICT),
            Ok(Verdict::Use)
        );
        for i in 1..MAX_CLIENT_CANDIDATES {
            assert_eq!(
                seen.admit(&line(i), STRICT),
                Ok(Verdict::Ignore(AddressClass::Private))
            );
        }
        assert_eq!(
            seen.admit(&line(MAX_CLIENT_CANDIDATES), STRICT),
            Err(SfuError::TooManyCandidates)
        );
        // One named before is not new: judged again, not refused.
        assert_eq!(
            seen.admit(&line(3), STRICT),
            Ok(Verdict::Ignore(AddressClass::Private))
        );
        assert!(matches!(
            seen.admit("candidate:1 1 udp", STRICT),
            Err(SfuError::InvalidCandidate(_))
        ));
    }

    #[test]
    fn sdp_keeps_usable_candidates_and_drops_the_others() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   a=candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 10.0.0.5 5000 typ host\r\n\
                   a=candidate:3 1 udp 2130706431 abc.local 5000 typ host\r\n\
                   a=end-of-candidates\r\n";
        let mut seen = RemoteCandidates::default();
        let (out, ignored) = seen.filter_sdp(sdp, STRICT).expect("filters");
        assert_eq!(ignored, 2);
        assert_eq!(
            out,
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host\r\n\
             a=end-of-candidates\r\n"
        );
        let bad = "v=0\r\na=candidate:1 1 udp\r\n";
        assert!(matches!(
            seen.filter_sdp(bad, STRICT),
            Err(SfuError::InvalidSdp(_))
        ));
        let mut flood = String::from("v=0\r\n");
        for i in 0..=MAX_CLIENT_CANDIDATES {
            flood.push_str(&format!(
                "a=candidate:{i} 1 udp 1 203.0.113.7 {} typ host\r\n",
                5000 + i
            ));
        }
        let mut seen = RemoteCandidates::default();
        assert_eq!(
            seen.filter_sdp(&flood, STRICT),
            Err(SfuError::TooManyCandidates)
        );
        assert!(seen.seen.is_empty(), "a refused SDP counts nothing");
    }
}
