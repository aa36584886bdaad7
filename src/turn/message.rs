//! The STUN message format (RFC 8489) as far as a TURN server needs it: parse a datagram or a
//! framed stream chunk into its attributes, check MESSAGE-INTEGRITY, and build answers with
//! integrity and FINGERPRINT. Anything malformed is `None` or an error, never a panic: this is
//! what strangers send.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const HEADER_LEN: usize = 20;

// Methods.
pub const BINDING: u16 = 0x001;
pub const ALLOCATE: u16 = 0x003;
pub const REFRESH: u16 = 0x004;
pub const SEND: u16 = 0x006;
pub const DATA: u16 = 0x007;
pub const CREATE_PERMISSION: u16 = 0x008;
pub const CHANNEL_BIND: u16 = 0x009;

// Attributes.
pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA_ATTR: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const RESERVATION_TOKEN: u16 = 0x0022;
pub const SOFTWARE: u16 = 0x8022;
pub const FINGERPRINT: u16 = 0x8028;

/// Comprehension-required attributes (below 0x8000) this server understands; any other one in
/// a request is answered with 420 Unknown Attribute, as the RFC asks.
const UNDERSTOOD: [u16; 15] = [
    MAPPED_ADDRESS,
    USERNAME,
    MESSAGE_INTEGRITY,
    ERROR_CODE,
    UNKNOWN_ATTRIBUTES,
    CHANNEL_NUMBER,
    LIFETIME,
    XOR_PEER_ADDRESS,
    DATA_ATTR,
    REALM,
    NONCE,
    REQUESTED_ADDRESS_FAMILY,
    REQUESTED_TRANSPORT,
    DONT_FRAGMENT,
    XOR_MAPPED_ADDRESS,
];

/// STUN classes, in the two bits the type field spreads them over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// A parsed STUN message: it borrows the bytes it came in.
#[derive(Debug)]
pub struct Message<'a> {
    pub method: u16,
    pub class: Class,
    pub transaction: [u8; 12],
    raw: &'a [u8],
    /// (type, offset of the value in `raw`, value length), in order.
    attributes: Vec<(u16, usize, usize)>,
}

/// Most attributes one message may carry: a bound on the work one datagram can cause.
const MAX_ATTRIBUTES: usize = 32;

impl<'a> Message<'a> {
    /// A whole STUN message, exactly `bytes` long (a stream frame or a datagram); `None` when
    /// it is not one.
    pub fn parse(bytes: &'a [u8]) -> Option<Message<'a>> {
        let header = bytes.get(..HEADER_LEN)?;
        if header[0] & 0xC0 != 0 || header[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return None;
        }
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length % 4 != 0 || bytes.len() != HEADER_LEN + length {
            return None;
        }
        let method = (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2);
        let class = match kind & 0x0110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        };
        let mut attributes = Vec::new();
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let head = bytes.get(at..at + 4)?;
            let kind = u16::from_be_bytes([head[0], head[1]]);
            let size = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value_at = at + 4;
            bytes.get(value_at..value_at + size)?;
            if attributes.len() == MAX_ATTRIBUTES {
                return None;
            }
            attributes.push((kind, value_at, size));
            at = value_at + size.div_ceil(4) * 4;
        }
        if at != bytes.len() {
            return None;
        }
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&header[8..20]);
        Some(Message {
            method,
            class,
            transaction,
            raw: bytes,
            attributes,
        })
    }

    /// The first value of attribute `kind` (later duplicates are ignored, as the RFC says).
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.attributes
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|&(_, at, size)| &self.raw[at..at + size])
    }

    /// Every value of attribute `kind` (CreatePermission may carry several peers).
    pub fn all(&self, kind: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .map(|&(_, at, size)| &self.raw[at..at + size])
    }

    /// Comprehension-required attributes this server does not know (answer 420 with them).
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attributes
            .iter()
            .map(|(k, _, _)| *k)
            .filter(|k| *k < 0x8000 && !UNDERSTOOD.contains(k))
            .collect()
    }

    pub fn text(&self, kind: u16) -> Option<&'a str> {
        std::str::from_utf8(self.get(kind)?).ok()
    }

    pub fn u32(&self, kind: u16) -> Option<u32> {
        let v = self.get(kind)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    /// An XOR-encoded address attribute (XOR-PEER-ADDRESS and friends).
    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        decode_xor_address(self.get(kind)?, &self.transaction)
    }

    /// Whether MESSAGE-INTEGRITY is present and right for `key` (RFC 8489 §14.5: the HMAC
    /// covers the message up to the attribute, with the length field counting up to its end).
    pub fn integrity_ok(&self, key: &[u8]) -> bool {
        let Some(&(_, at, size)) = self
            .attributes
            .iter()
            .find(|(k, _, _)| *k == MESSAGE_INTEGRITY)
        else {
            return false;
        };
        if size != 20 {
            return false;
        }
        let covered_end = at - 4;
        let mut mac = hmac_sha1(key);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.raw[..HEADER_LEN]);
        let length = (at + size - HEADER_LEN) as u16;
        header[2..4].copy_from_slice(&length.to_be_bytes());
        mac.update(&header);
        mac.update(&self.raw[HEADER_LEN..covered_end]);
        mac.verify_slice(&self.raw[at..at + size]).is_ok()
    }
}

fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The 16 bytes an address is XOR-ed with: the cookie, then the transaction id.
fn xor_mask(transaction: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    mask
}

pub fn decode_xor_address(value: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    let mask = xor_mask(transaction);
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([value.get(2)? ^ mask[0], value.get(3)? ^ mask[1]]);
    let ip = match family {
        0x01 => {
            let b = value.get(4..8)?;
            IpAddr::V4(Ipv4Addr::new(
                b[0] ^ mask[0],
                b[1] ^ mask[1],
                b[2] ^ mask[2],
                b[3] ^ mask[3],
            ))
        }
        0x02 => {
            let b = value.get(4..20)?;
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = b[i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn encode_xor_address(address: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let mask = xor_mask(transaction);
    let mut value = vec![0u8];
    let port = address.port().to_be_bytes();
    let ip: Vec<u8> = match address.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            ip.octets().to_vec()
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            ip.octets().to_vec()
        }
    };
    value.push(port[0] ^ mask[0]);
    value.push(port[1] ^ mask[1]);
    value.extend(ip.iter().zip(mask).map(|(b, m)| b ^ m));
    value
}

/// Builds one STUN message; `finish` adds MESSAGE-INTEGRITY (when a key is given) and
/// FINGERPRINT.
pub struct Builder {
    bytes: Vec<u8>,
    transaction: [u8; 12],
}

impl Builder {
    pub fn new(method: u16, class: Class, transaction: [u8; 12]) -> Self {
        let kind = (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2);
        let kind = kind | class.bits();
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&kind.to_be_bytes());
        bytes.extend_from_slice(&0u16.to_be_bytes());
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&transaction);
        Builder { bytes, transaction }
    }

    pub fn attribute(mut self, kind: u16, value: &[u8]) -> Self {
        self.push(kind, value);
        self
    }

    fn push(&mut self, kind: u16, value: &[u8]) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(value);
        let padding = value.len().div_ceil(4) * 4 - value.len();
        self.bytes.extend(std::iter::repeat_n(0u8, padding));
        self.set_length();
    }

    fn set_length(&mut self) {
        let length = (self.bytes.len() - HEADER_LEN) as u16;
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
    }

    pub fn xor_address(self, kind: u16, address: SocketAddr) -> Self {
        let value = encode_xor_address(address, &self.transaction);
        self.attribute(kind, &value)
    }

    pub fn u32(self, kind: u16, value: u32) -> Self {
        self.attribute(kind, &value.to_be_bytes())
    }

    pub fn error(self, code: u16, reason: &str) -> Self {
        let mut value = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        value.extend_from_slice(reason.as_bytes());
        self.attribute(ERROR_CODE, &value)
    }

    pub fn finish(mut self, key: Option<&[u8]>) -> Vec<u8> {
        if let Some(key) = key {
            // The length counts the integrity attribute itself before the HMAC is taken.
            let length = (self.bytes.len() + 24 - HEADER_LEN) as u16;
            self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
            let mut mac = hmac_sha1(key);
            mac.update(&self.bytes);
            let digest = mac.finalize().into_bytes();
            self.push(MESSAGE_INTEGRITY, &digest);
        }
        let length = (self.bytes.len() + 8 - HEADER_LEN) as u16;
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32fast::hash(&self.bytes) ^ 0x5354_554E;
        self.push(FINGERPRINT, &crc.to_be_bytes());
        self.bytes
    }
}

/// A ChannelData message (RFC 8656 §12.4): channel number, then the application data.
pub fn channel_data(channel: u16, data: &[u8], padded: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len() + 3);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    if padded {
        let padding = data.len().div_ceil(4) * 4 - data.len();
        out.extend(std::iter::repeat_n(0u8, padding));
    }
    out
}

/// A ChannelData message's channel and data, or `None`. Over UDP, trailing padding is allowed.
pub fn parse_channel_data(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let channel = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
    if !(0x4000..=0x4FFF).contains(&channel) {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
    Some((channel, bytes.get(4..4 + length)?))
}

/// How many bytes the stream frame starting with `head` (at least 4 bytes) takes, padding
/// included (RFC 8656 §12.5: over TCP, ChannelData is padded to four bytes); `None` when the
/// bytes start neither a STUN message nor ChannelData.
pub fn stream_frame_len(head: &[u8]) -> Option<usize> {
    let first = *head.first()?;
    let length = usize::from(u16::from_be_bytes([*head.get(2)?, *head.get(3)?]));
    match first >> 6 {
        0 => Some(HEADER_LEN + length),
        1 => Some(4 + length.div_ceil(4) * 4),
        _ => None,
    }
}

/// The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    hasher.update(format!("{username}:{realm}:{password}").as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_messages_parse_back_with_their_integrity() {
        let key = long_term_key("user", "realm", "pass");
        let tx = [7u8; 12];
        let peer: SocketAddr = "203.0.113.5:4242".parse().unwrap();
        let bytes = Builder::new(CREATE_PERMISSION, Class::Request, tx)
            .attribute(USERNAME, b"user")
            .xor_address(XOR_PEER_ADDRESS, peer)
            .finish(Some(&key));
        let m = Message::parse(&bytes).expect("parses");
        assert_eq!(m.method, CREATE_PERMISSION);
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.xor_address(XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(m.text(USERNAME), Some("user"));
        assert!(m.integrity_ok(&key));
        assert!(!m.integrity_ok(&long_term_key("user", "realm", "other")));
    }

    #[test]
    fn a_flipped_byte_breaks_the_integrity() {
        let key = long_term_key("u", "r", "p");
        let mut bytes = Builder::new(REFRESH, Class::Request, [1; 12])
            .u32(LIFETIME, 600)
            .finish(Some(&key));
        bytes[HEADER_LEN + 7] ^= 1;
        let m = Message::parse(&bytes).unwrap();
        assert!(!m.integrity_ok(&key));
    }

    #[test]
    fn ipv6_addresses_round_trip() {
        let tx = [9u8; 12];
        let peer: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let bytes = Builder::new(SEND, Class::Indication, tx)
            .xor_address(XOR_PEER_ADDRESS, peer)
            .finish(None);
        assert_eq!(
            Message::parse(&bytes)
                .unwrap()
                .xor_address(XOR_PEER_ADDRESS),
            Some(peer)
        );
    }

    #[test]
    fn malformed_input_is_refused_not_a_panic() {
        assert!(Message::parse(&[]).is_none());
        assert!(Message::parse(&[0u8; 19]).is_none());
        let mut bytes = Builder::new(BINDING, Class::Request, [0; 12]).finish(None);
        bytes[3] += 4; // a length past the end
        assert!(Message::parse(&bytes).is_none());
        let mut bytes = Builder::new(BINDING, Class::Request, [0; 12])
            .attribute(SOFTWARE, b"x")
            .finish(None);
        bytes[HEADER_LEN + 3] = 200; // an attribute longer than the message
        assert!(Message::parse(&bytes).is_none());
        assert!(parse_channel_data(&[0x40, 0, 0, 9, 1]).is_none());
        assert_eq!(
            parse_channel_data(&[0x40, 1, 0, 1, 9, 0, 0, 0]),
            Some((0x4001, &[9u8][..]))
        );
        assert_eq!(stream_frame_len(&[0x40, 1, 0, 5]), Some(12));
        assert_eq!(stream_frame_len(&[0x80, 1, 0, 5]), None);
    }

    #[test]
    fn unknown_required_attributes_are_named() {
        let bytes = Builder::new(ALLOCATE, Class::Request, [0; 12])
            .attribute(0x0031, b"1234")
            .attribute(0x8031, b"1234")
            .finish(None);
        assert_eq!(
            Message::parse(&bytes).unwrap().unknown_required(),
            vec![0x0031]
        );
    }
}
