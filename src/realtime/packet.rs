//! Socket.IO v5 packet codec: `<type>[<attachments>-][<nsp>,][<ack id>][JSON]`, binary
//! attachments as `{"_placeholder":true,"num":n}` followed by raw binary messages.

use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;
use serde_json::Value;

use super::engine::{Frame, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl PacketType {
    fn from_digit(b: u8) -> Option<PacketType> {
        Some(match b {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// A decoded packet from a client. Binary attachments are added once they all arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: PacketType,
    pub nsp: String,
    pub id: Option<u64>,
    pub attachments: usize,
    pub data: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown packet type")]
    UnknownType,
    #[error("invalid attachment count")]
    InvalidAttachments,
    #[error("too many attachments")]
    TooManyAttachments,
    #[error("invalid ack id")]
    InvalidAckId,
    #[error("invalid JSON payload")]
    InvalidJson,
    #[error("payload does not fit the packet type")]
    InvalidPayload,
    #[error("namespace name too long")]
    NamespaceTooLong,
}

/// Longest namespace name accepted (a refusal names it back to the client).
pub const MAX_NAMESPACE_BYTES: usize = 256;

/// Parses a text packet; `max_attachments` bounds the binary parts a client may announce.
pub fn decode(text: &str, max_attachments: usize) -> Result<Packet, ParseError> {
    let bytes = text.as_bytes();
    let kind = bytes
        .first()
        .and_then(|b| PacketType::from_digit(*b))
        .ok_or(ParseError::UnknownType)?;
    let mut i = 1;
    let mut attachments = 0;
    if kind.is_binary() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(ParseError::InvalidAttachments);
        }
        attachments = text[start..i]
            .parse::<usize>()
            .map_err(|_| ParseError::TooManyAttachments)?;
        if attachments > max_attachments {
            return Err(ParseError::TooManyAttachments);
        }
        i += 1;
    }
    let mut nsp = "/";
    if bytes.get(i) == Some(&b'/') {
        let start = i;
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
        nsp = &text[start..i];
        if nsp.len() > MAX_NAMESPACE_BYTES {
            return Err(ParseError::NamespaceTooLong);
        }
        if i < bytes.len() {
            i += 1; // the comma
        }
    }
    let mut id = None;
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i > start {
        id = Some(
            text[start..i]
                .parse::<u64>()
                .map_err(|_| ParseError::InvalidAckId)?,
        );
    }
    let rest = &text[i..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|_| ParseError::InvalidJson)?)
    };
    let valid = match kind {
        PacketType::Connect => matches!(data, None | Some(Value::Object(_))) && id.is_none(),
        PacketType::Disconnect => data.is_none() && id.is_none(),
        PacketType::Event | PacketType::BinaryEvent => match &data {
            Some(Value::Array(args)) => matches!(args.first(), Some(Value::String(_))),
            _ => false,
        },
        PacketType::Ack | PacketType::BinaryAck => {
            id.is_some() && matches!(data, Some(Value::Array(_)))
        }
        // Only servers send CONNECT_ERROR.
        PacketType::ConnectError => false,
    };
    if !valid {
        return Err(ParseError::InvalidPayload);
    }
    Ok(Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        attachments,
        data,
    })
}

/// The Socket.IO side of a client's Engine.IO messages: a binary packet is held until its
/// attachments arrived, and a packet and its attachments together stay within `max_payload`.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// A binary packet waiting for its attachments.
    partial: Option<Box<(Packet, Vec<Bytes>)>>,
    /// Bytes of the packet text and the attachments `partial` holds.
    partial_bytes: usize,
}

impl Reassembly {
    /// Takes one message; a packet is returned with its attachments once it is complete. An
    /// error is a protocol violation (the connection closes); it says which, for the log.
    pub fn push(
        &mut self,
        message: Message,
        max_attachments: usize,
        max_payload: usize,
    ) -> Result<Option<(Packet, Vec<Bytes>)>, &'static str> {
        match message {
            Message::Text(text) => {
                if self.partial.is_some() {
                    return Err("text packet while attachments are pending");
                }
                match decode(&text, max_attachments) {
                    Ok(p) if p.attachments > 0 => {
                        let n = p.attachments;
                        self.partial = Some(Box::new((p, Vec::with_capacity(n))));
                        self.partial_bytes = text.len();
                        Ok(None)
                    }
                    Ok(p) => Ok(Some((p, Vec::new()))),
                    Err(_) => Err("invalid packet"),
                }
            }
            Message::Binary(data) => match self.partial.as_mut() {
                None => Err("unexpected binary attachment"),
                Some(_) if self.partial_bytes + data.len() > max_payload => {
                    Err("attachments over max_payload")
                }
                Some(partial) => {
                    self.partial_bytes += data.len();
                    partial.1.push(data);
                    if partial.1.len() == partial.0.attachments {
                        Ok(self.partial.take().map(|b| *b))
                    } else {
                        Ok(None)
                    }
                }
            },
        }
    }

    /// Drops a packet still waiting for attachments.
    pub fn clear(&mut self) {
        self.partial = None;
    }
}

/// Arguments of an event or an ack: JSON values and binary attachments. A value
/// `{"_placeholder":true,"num":n}` stands for `binary[n]`, exactly as on the wire; use
/// [`Args::push_binary`] to append a binary argument.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    pub values: Vec<Value>,
    pub binary: Vec<Bytes>,
}

impl Args {
    pub fn new() -> Args {
        Args::default()
    }

    /// Appends a JSON argument.
    pub fn push<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Args, serde_json::Error> {
        self.values.push(serde_json::to_value(value)?);
        Ok(self)
    }

    /// Appends a JSON argument already built as a value.
    pub fn value(mut self, value: Value) -> Args {
        self.values.push(value);
        self
    }

    /// Appends a binary argument (a `Buffer` / `ArrayBuffer` on the JS side).
    pub fn push_binary(mut self, data: impl Into<Bytes>) -> Args {
        let num = self.binary.len();
        self.values.push(placeholder(num));
        self.binary.push(data.into());
        self
    }

    /// The first argument, or `null`.
    pub fn first(&self) -> &Value {
        self.values.first().unwrap_or(&Value::Null)
    }

    /// The binary attachment a placeholder value refers to.
    pub fn binary_of(&self, value: &Value) -> Option<&Bytes> {
        let obj = value.as_object()?;
        if obj.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        let num = usize::try_from(obj.get("num")?.as_u64()?).ok()?;
        self.binary.get(num)
    }
}

/// The placeholder standing for attachment `num`.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({"_placeholder": true, "num": num})
}

/// A packet encoded once for the wire: the engine text frame (`4…`) and its attachments.
/// Shared by every recipient of a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    pub text: ByteString,
    pub binary: Vec<Bytes>,
}

impl EncodedPacket {
    /// The engine frames to queue, in order.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        std::iter::once(Frame::Text(self.text.clone()))
            .chain(self.binary.iter().cloned().map(Frame::Binary))
    }
}

/// Writes the header: engine `4`, type, attachment count, namespace, ack id.
fn header(kind: PacketType, nsp: &str, attachments: usize, id: Option<u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    out.push('4');
    out.push((b'0' + kind as u8) as char);
    if attachments > 0 {
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    out
}

fn finish(mut head: String, json: &[u8], binary: Vec<Bytes>) -> EncodedPacket {
    head.push_str(std::str::from_utf8(json).unwrap_or("[]"));
    EncodedPacket {
        text: ByteString::from(head),
        binary,
    }
}

/// `CONNECT` answer with the socket id.
pub fn encode_connect(nsp: &str, sid: &str) -> EncodedPacket {
    let mut head = header(PacketType::Connect, nsp, 0, None);
    head.push_str(r#"{"sid":""#);
    head.push_str(sid);
    head.push_str(r#""}"#);
    finish(head, b"", Vec::new())
}

pub fn encode_disconnect(nsp: &str) -> EncodedPacket {
    finish(
        header(PacketType::Disconnect, nsp, 0, None),
        b"",
        Vec::new(),
    )
}

/// `CONNECT_ERROR` with `{"message", "data"?}`.
pub fn encode_connect_error(nsp: &str, message: &str, data: Option<&Value>) -> EncodedPacket {
    let body = match data {
        Some(data) => serde_json::json!({"message": message, "data": data}),
        None => serde_json::json!({"message": message}),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    finish(
        header(PacketType::ConnectError, nsp, 0, None),
        &json,
        Vec::new(),
    )
}

/// An `EVENT` with one argument serialised straight from `data`.
pub fn encode_event<T: Serialize + ?Sized>(
    nsp: &str,
    event: &str,
    data: &T,
    id: Option<u64>,
) -> Result<EncodedPacket, serde_json::Error> {
    let mut json = Vec::with_capacity(64);
    json.push(b'[');
    serde_json::to_writer(&mut json, event)?;
    json.push(b',');
    serde_json::to_writer(&mut json, data)?;
    json.push(b']');
    Ok(finish(
        header(PacketType::Event, nsp, 0, id),
        &json,
        Vec::new(),
    ))
}

/// An `EVENT` (or `BINARY_EVENT`) with any arguments.
pub fn encode_event_args(
    nsp: &str,
    event: &str,
    args: Args,
    id: Option<u64>,
) -> Result<EncodedPacket, serde_json::Error> {
    let mut json = Vec::with_capacity(64);
    json.push(b'[');
    serde_json::to_writer(&mut json, event)?;
    for value in &args.values {
        json.push(b',');
        serde_json::to_writer(&mut json, value)?;
    }
    json.push(b']');
    let kind = if args.binary.is_empty() {
        PacketType::Event
    } else {
        PacketType::BinaryEvent
    };
    Ok(finish(
        header(kind, nsp, args.binary.len(), id),
        &json,
        args.binary,
    ))
}

/// An `ACK` (or `BINARY_ACK`) answering `id`.
pub fn encode_ack(nsp: &str, id: u64, args: Args) -> Result<EncodedPacket, serde_json::Error> {
    let json = serde_json::to_vec(&args.values)?;
    let kind = if args.binary.is_empty() {
        PacketType::Ack
    } else {
        PacketType::BinaryAck
    };
    Ok(finish(
        header(kind, nsp, args.binary.len(), Some(id)),
        &json,
        args.binary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 10;

    #[test]
    fn decodes_connect_in_all_its_forms() {
        let p = decode("0", MAX).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (PacketType::Connect, "/", None)
        );
        let p = decode(r#"0{"token":"123"}"#, MAX).unwrap();
        assert_eq!(p.data, Some(json!({"token":"123"})));
        let p = decode("0/custom,", MAX).unwrap();
        assert_eq!(p.nsp, "/custom");
        let p = decode("0/custom", MAX).unwrap();
        assert_eq!(p.nsp, "/custom");
        let p = decode(r#"0/custom,{"token":"abc"}"#, MAX).unwrap();
        assert_eq!(
            (p.nsp.as_str(), p.data),
            ("/custom", Some(json!({"token":"abc"})))
        );
        assert_eq!(decode("0[1]", MAX), Err(ParseError::InvalidPayload));
    }

    #[test]
    fn decodes_events_acks_and_binary_headers() {
        let p = decode(r#"2["message",1,"2",{"3":[true]}]"#, MAX).unwrap();
        assert_eq!(p.kind, PacketType::Event);
        assert_eq!(p.id, None);
        let p = decode(r#"2456["message-with-ack",1]"#, MAX).unwrap();
        assert_eq!(p.id, Some(456));
        let p = decode(r#"2/custom,7["e"]"#, MAX).unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/custom", Some(7)));
        let p = decode(
            r#"52-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            MAX,
        )
        .unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (PacketType::BinaryEvent, 2, Some(789))
        );
        let p = decode("3456[1]", MAX).unwrap();
        assert_eq!((p.kind, p.id), (PacketType::Ack, Some(456)));
        let p = decode("1/custom,", MAX).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str()),
            (PacketType::Disconnect, "/custom")
        );
    }

    #[test]
    fn rejects_what_the_reference_parser_rejects() {
        assert_eq!(decode("abc", MAX), Err(ParseError::UnknownType));
        assert_eq!(decode("", MAX), Err(ParseError::UnknownType));
        assert_eq!(decode("7", MAX), Err(ParseError::UnknownType));
        assert_eq!(decode("2{}", MAX), Err(ParseError::InvalidPayload));
        assert_eq!(decode("2[]", MAX), Err(ParseError::InvalidPayload));
        assert_eq!(decode("2[1]", MAX), Err(ParseError::InvalidPayload));
        assert_eq!(decode("2", MAX), Err(ParseError::InvalidPayload));
        assert_eq!(decode(r#"2abc["m"]"#, MAX), Err(ParseError::InvalidJson));
        assert_eq!(
            decode(r#"299999999999999999999999["m"]"#, MAX),
            Err(ParseError::InvalidAckId)
        );
        assert_eq!(decode("3[1]", MAX), Err(ParseError::InvalidPayload));
        assert_eq!(
            decode(r#"5["m"]"#, MAX),
            Err(ParseError::InvalidAttachments)
        );
        assert_eq!(
            decode(r#"511-["m"]"#, MAX),
            Err(ParseError::TooManyAttachments)
        );
        assert_eq!(
            decode(r#"4{"message":"x"}"#, MAX),
            Err(ParseError::InvalidPayload)
        );
        assert_eq!(decode(r#"1{}"#, MAX), Err(ParseError::InvalidPayload));
        assert_eq!(decode("2[\"m\"", MAX), Err(ParseError::InvalidJson));
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        use rand::Rng as _;
        let mut rng = rand::thread_rng();
        let alphabet = [
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "-",
            "/",
            ",",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "é",
            "€",
            "9",
            "a",
            ":",
            "nsp",
            "_placeholder",
            "99999999999999999999",
        ];
        for _ in 0..20_000 {
            let len = rng.gen_range(0..10);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let _ = decode(&s, MAX);
        }
        assert!(decode("2é", MAX).is_err());
        assert!(decode("é", MAX).is_err());
        assert_eq!(
            decode("2/é,[\"x\"]", MAX).map(|p| p.nsp),
            Ok("/é".to_owned())
        );
    }

    #[test]
    fn encodes_like_the_reference_server() {
        assert_eq!(&*encode_connect("/", "abc").text, r#"40{"sid":"abc"}"#);
        assert_eq!(
            &*encode_connect("/custom", "abc").text,
            r#"40/custom,{"sid":"abc"}"#
        );
        assert_eq!(
            &*encode_connect_error("/random", "Invalid namespace", None).text,
            r#"44/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(&*encode_disconnect("/custom").text, "41/custom,");
        assert_eq!(
            &*encode_event("/", "auth", &json!({}), None).unwrap().text,
            r#"42["auth",{}]"#
        );
        let args = Args::new().value(json!(1)).value(json!("2"));
        assert_eq!(
            &*encode_ack("/", 456, args).unwrap().text,
            r#"43456[1,"2"]"#
        );
    }

    #[test]
    fn binary_arguments_become_placeholders_and_attachments() {
        let args = Args::new()
            .value(json!("x"))
            .push_binary(Bytes::from_static(&[1, 2, 3]))
            .push_binary(Bytes::from_static(&[4]));
        assert_eq!(
            args.binary_of(&args.values[1]),
            Some(&Bytes::from_static(&[1, 2, 3]))
        );
        assert_eq!(args.binary_of(&args.values[0]), None);
        let p = encode_event_args("/custom", "m", args, Some(3)).unwrap();
        assert_eq!(
            &*p.text,
            r#"452-/custom,3["m","x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        let frames: Vec<_> = p.frames().collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2], Frame::Binary(Bytes::from_static(&[4])));
        let ack = encode_ack("/", 789, Args::new().push_binary(Bytes::from_static(&[9]))).unwrap();
        assert_eq!(&*ack.text, r#"461-789[{"_placeholder":true,"num":0}]"#);
    }
}
