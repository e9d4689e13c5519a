//! The Vonage Voice API WebSocket: the first text frame (the call's
//! metadata: `content-type` and the NCCO's `headers`), binary audio frames
//! of 16-bit signed little-endian linear PCM ("L16", RFC 3551 section 4.5.11
//! but little-endian as Vonage sends it), mono, 20 ms each (640 bytes at
//! 16 kHz, 320 at 8 kHz), text events (`websocket:dtmf`,
//! `websocket:notify`, `websocket:cleared`), what we send back (`clear`,
//! `notify`), and the NCCO whose `connect` action points the call at us.
//!
//! The `notify`/`clear` field layout follows Pipecat's serializer and a
//! third-party AsyncAPI description (marked unconfirmed in the protocol
//! notes): a `notify` carries our payload `{"mark": N}` and comes back as
//! `websocket:notify` with the same payload once the audio before it has
//! played.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{Carrier, CarrierError, MAX_MESSAGE};

/// Most NCCO header bytes Vonage carries (keys and values, as JSON).
pub const MAX_HEADERS_JSON: usize = 512;
/// Most metadata keys kept from the first frame.
pub const MAX_METADATA: usize = 16;
/// Longest metadata key or value kept.
pub const MAX_METADATA_LEN: usize = 256;

/// The L16 rate of a Vonage socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L16Rate {
    /// 8 kHz: 320-byte frames.
    Narrow,
    /// 16 kHz: 640-byte frames.
    Wide,
}

impl L16Rate {
    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            L16Rate::Narrow => 8000,
            L16Rate::Wide => 16_000,
        }
    }

    /// Bytes in one 20 ms frame.
    pub fn frame_bytes(self) -> usize {
        self.samples() * 2
    }

    /// Samples in one 20 ms frame.
    pub fn samples(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// The NCCO `content-type`.
    pub fn content_type(self) -> &'static str {
        match self {
            L16Rate::Narrow => "audio/l16;rate=8000",
            L16Rate::Wide => "audio/l16;rate=16000",
        }
    }

    fn from_content_type(ct: &str) -> Option<L16Rate> {
        let ct: String = ct.chars().filter(|c| !c.is_whitespace()).collect();
        match ct.to_ascii_lowercase().as_str() {
            "audio/l16;rate=8000" => Some(L16Rate::Narrow),
            "audio/l16;rate=16000" => Some(L16Rate::Wide),
            _ => None,
        }
    }
}

/// The first frame's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The audio rate.
    pub rate: L16Rate,
    /// The NCCO `headers` (string values only, bounded).
    pub headers: Vec<(String, String)>,
}

impl Metadata {
    /// The value of header `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A text event from Vonage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// `websocket:connected`: the first frame.
    Connected(Metadata),
    /// `websocket:dtmf`: a key press.
    Dtmf {
        /// The key.
        digit: char,
        /// How long it was held, if given (ms).
        duration_ms: Option<u32>,
    },
    /// `websocket:notify`: the audio queued before our `notify` with this
    /// mark has played.
    Notify {
        /// Our mark, if the payload carried one.
        mark: Option<u64>,
    },
    /// `websocket:cleared`: our `clear` was applied.
    Cleared,
    /// Any other event (ignored).
    Other(Cow<'a, str>),
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow)]
    digit: Cow<'a, str>,
    #[serde(default)]
    duration: Option<u32>,
}

fn malformed(what: &'static str) -> CarrierError {
    CarrierError::Malformed {
        carrier: Carrier::Vonage,
        what,
    }
}

fn digit(s: &str) -> Result<char, CarrierError> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D') => {
            Ok(c)
        }
        _ => Err(malformed("dtmf digit")),
    }
}

/// Parses one text frame from Vonage.
///
/// # Errors
/// [`CarrierError::TooLarge`], [`CarrierError::Malformed`] (not a JSON
/// object with a string `event`), [`CarrierError::Unsupported`] (a
/// `content-type` other than L16 at 8 or 16 kHz).
///
/// ```
/// use callbridge_carrier::vonage::{Event, L16Rate, parse};
/// let e = parse(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"u1"}"#).unwrap();
/// let Event::Connected(m) = e else { panic!() };
/// assert_eq!(m.rate, L16Rate::Wide);
/// assert_eq!(m.header("uuid"), Some("u1"));
/// ```
pub fn parse(text: &str) -> Result<Event<'_>, CarrierError> {
    if text.len() > MAX_MESSAGE {
        return Err(CarrierError::TooLarge {
            carrier: Carrier::Vonage,
            len: text.len(),
        });
    }
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|_| malformed("not a JSON object"))?;
    let event = obj
        .get("event")
        .and_then(|e| e.as_str())
        .ok_or_else(|| malformed("no event"))?;
    Ok(match event {
        "websocket:connected" => {
            let ct = obj
                .get("content-type")
                .and_then(|v| v.as_str())
                .ok_or_else(|| malformed("no content-type"))?;
            let rate = L16Rate::from_content_type(ct).ok_or(CarrierError::Unsupported {
                carrier: Carrier::Vonage,
                what: "content-type other than audio/l16 at 8000 or 16000 Hz",
            })?;
            let headers = obj
                .iter()
                .filter(|(k, _)| k.as_str() != "event" && k.as_str() != "content-type")
                .filter_map(|(k, v)| {
                    let v = v.as_str()?;
                    (k.len() <= MAX_METADATA_LEN && v.len() <= MAX_METADATA_LEN)
                        .then(|| (k.clone(), v.to_owned()))
                })
                .take(MAX_METADATA)
                .collect();
            Event::Connected(Metadata { rate, headers })
        }
        "websocket:dtmf" => {
            // Both the flat shape and a nested `dtmf` object are seen.
            let src = obj.get("dtmf").unwrap_or(&serde_json::Value::Null);
            let d: RawDtmf<'_> = if src.is_object() {
                RawDtmf::deserialize(src).map_err(|_| malformed("dtmf"))?
            } else {
                serde_json::from_str(text).map_err(|_| malformed("dtmf"))?
            };
            Event::Dtmf {
                digit: digit(&d.digit)?,
                duration_ms: d.duration,
            }
        }
        "websocket:notify" => Event::Notify {
            mark: obj
                .get("payload")
                .and_then(|p| p.get("mark"))
                .and_then(|m| m.as_u64()),
        },
        "websocket:cleared" => Event::Cleared,
        other => Event::Other(Cow::Owned(other.to_owned())),
    })
}

/// Checks one binary frame and decodes it into `out` (at least
/// `rate.samples()` long).
///
/// # Errors
/// [`CarrierError::Protocol`] when the frame is not exactly 20 ms.
pub fn decode_frame(rate: L16Rate, frame: &[u8], out: &mut [i16]) -> Result<(), CarrierError> {
    if frame.len() != rate.frame_bytes() || out.len() < rate.samples() {
        return Err(CarrierError::Protocol {
            carrier: Carrier::Vonage,
            what: "audio frame is not one 20 ms L16 frame",
        });
    }
    for (o, b) in out.iter_mut().zip(frame.chunks_exact(2)) {
        *o = i16::from_le_bytes([b[0], b[1]]);
    }
    Ok(())
}

/// Encodes samples as L16 little-endian into `out` (twice as long).
pub fn encode_frame(pcm: &[i16], out: &mut [u8]) {
    for (o, s) in out.chunks_exact_mut(2).zip(pcm) {
        o.copy_from_slice(&s.to_le_bytes());
    }
}

/// Appends `{"action":"clear"}`.
pub fn write_clear(out: &mut String) {
    out.push_str(r#"{"action":"clear"}"#);
}

/// Appends a `notify` carrying mark `mark`.
pub fn write_notify(mark: u64, out: &mut String) {
    let _ = write!(out, r#"{{"action":"notify","payload":{{"mark":{mark}}}}}"#);
}

/// What a [`connect_ncco`] connects.
#[derive(Debug, Clone)]
pub struct ConnectNcco<'a> {
    /// Our WebSocket endpoint (`wss://...`).
    pub uri: &'a str,
    /// Our event webhook.
    pub event_url: &'a str,
    /// The audio rate.
    pub rate: L16Rate,
    /// Metadata for the first frame (at most [`MAX_HEADERS_JSON`] bytes).
    pub headers: &'a [(&'a str, &'a str)],
    /// Caller id to present, if any.
    pub from: Option<&'a str>,
}

/// An NCCO with one synchronous `connect` action to a WebSocket.
///
/// # Errors
/// [`CarrierError::TooLarge`] when the headers exceed [`MAX_HEADERS_JSON`].
///
/// ```
/// use callbridge_carrier::vonage::{ConnectNcco, L16Rate, connect_ncco};
/// let n = connect_ncco(&ConnectNcco {
///     uri: "wss://b.example/vonage/ws", event_url: "https://b.example/vonage/events",
///     rate: L16Rate::Wide, headers: &[("uuid", "u1")], from: None,
/// }).unwrap();
/// assert_eq!(n[0]["endpoint"][0]["content-type"], "audio/l16;rate=16000");
/// ```
pub fn connect_ncco(n: &ConnectNcco<'_>) -> Result<serde_json::Value, CarrierError> {
    let headers: serde_json::Map<String, serde_json::Value> = n
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let len = serde_json::Value::Object(headers.clone()).to_string().len();
    if len > MAX_HEADERS_JSON {
        return Err(CarrierError::TooLarge {
            carrier: Carrier::Vonage,
            len,
        });
    }
    let mut action = serde_json::json!({
        "action": "connect",
        "eventType": "synchronous",
        "eventUrl": [n.event_url],
        "endpoint": [{
            "type": "websocket",
            "uri": n.uri,
            "content-type": n.rate.content_type(),
            "headers": headers,
        }],
    });
    if let (Some(from), Some(obj)) = (n.from, action.as_object_mut()) {
        obj.insert("from".into(), from.into());
    }
    Ok(serde_json::Value::Array(vec![action]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_frame_gives_rate_and_headers() {
        let Event::Connected(m) = parse(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","uuid":"abc","n":5}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m.rate, L16Rate::Narrow);
        assert_eq!(m.headers, vec![("uuid".into(), "abc".into())]);
        assert!(matches!(
            parse(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=24000"}"#),
            Err(CarrierError::Unsupported { .. })
        ));
    }

    #[test]
    fn dtmf_notify_cleared_and_unknown_events_parse() {
        assert_eq!(
            parse(r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#).unwrap(),
            Event::Dtmf {
                digit: '5',
                duration_ms: Some(260)
            }
        );
        assert_eq!(
            parse(r#"{"event":"websocket:dtmf","dtmf":{"digit":"*"}}"#).unwrap(),
            Event::Dtmf {
                digit: '*',
                duration_ms: None
            }
        );
        assert_eq!(
            parse(r#"{"event":"websocket:notify","payload":{"mark":42}}"#).unwrap(),
            Event::Notify { mark: Some(42) }
        );
        assert_eq!(
            parse(r#"{"event":"websocket:cleared"}"#).unwrap(),
            Event::Cleared
        );
        assert!(matches!(
            parse(r#"{"event":"x"}"#).unwrap(),
            Event::Other(_)
        ));
        assert!(parse(r#"{"event":"websocket:dtmf","digit":"55"}"#).is_err());
        assert!(parse(r#"{"noevent":1}"#).is_err());
    }

    #[test]
    fn frames_must_be_exactly_20_ms() {
        let mut out = [0i16; 320];
        assert!(decode_frame(L16Rate::Wide, &[0u8; 640], &mut out).is_ok());
        assert!(decode_frame(L16Rate::Wide, &[0u8; 320], &mut out).is_err());
        assert!(decode_frame(L16Rate::Narrow, &[0u8; 320], &mut out).is_ok());
        let mut bytes = [0u8; 640];
        encode_frame(&[-2i16; 320], &mut bytes);
        assert_eq!(&bytes[..2], &[0xfe, 0xff]);
        decode_frame(L16Rate::Wide, &bytes, &mut out).unwrap();
        assert!(out.iter().all(|&s| s == -2));
    }

    #[test]
    fn outbound_control_messages_are_exact() {
        let mut s = String::new();
        write_clear(&mut s);
        write_notify(7, &mut s);
        assert_eq!(
            s,
            r#"{"action":"clear"}{"action":"notify","payload":{"mark":7}}"#
        );
    }

    #[test]
    fn ncco_has_the_documented_shape_and_bounds_headers() {
        let n = connect_ncco(&ConnectNcco {
            uri: "wss://b.example/vonage/ws?x=1",
            event_url: "https://b.example/vonage/events",
            rate: L16Rate::Wide,
            headers: &[("uuid", "u1")],
            from: Some("447700900000"),
        })
        .unwrap();
        assert_eq!(
            n,
            serde_json::json!([{"action":"connect","eventType":"synchronous",
                "eventUrl":["https://b.example/vonage/events"],"from":"447700900000",
                "endpoint":[{"type":"websocket","uri":"wss://b.example/vonage/ws?x=1",
                "content-type":"audio/l16;rate=16000","headers":{"uuid":"u1"}}]}])
        );
        let big = "v".repeat(600);
        assert!(
            connect_ncco(&ConnectNcco {
                uri: "wss://x",
                event_url: "https://x",
                rate: L16Rate::Wide,
                headers: &[("k", &big)],
                from: None,
            })
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse(&s);
        }

        #[test]
        fn event_shaped_text_never_panics(
            ev in prop_oneof![Just("websocket:connected"), Just("websocket:dtmf"), Just("websocket:notify")],
            rest in "[a-z0-9\":{},=/;-]{0,120}",
        ) {
            let _ = parse(&format!(r#"{{"event":"{ev}",{rest}}}"#));
        }

        #[test]
        fn l16_round_trips(pcm in proptest::collection::vec(any::<i16>(), 320)) {
            let mut b = [0u8; 640];
            encode_frame(&pcm, &mut b);
            let mut out = [0i16; 320];
            decode_frame(L16Rate::Wide, &b, &mut out).unwrap();
            prop_assert_eq!(&out[..], &pcm[..]);
        }
    }
}
