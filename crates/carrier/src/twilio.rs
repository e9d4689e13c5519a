//! Twilio Media Streams, bidirectional (`<Connect><Stream>`): the messages
//! Twilio sends (`connected`, `start`, `media`, `mark`, `dtmf`, `stop`;
//! all JSON text), the ones we send (`media`, `mark`, `clear`), and the
//! TwiML that points a call at our socket.
//!
//! Audio is G.711 µ-law (ITU-T G.711) at 8 kHz, mono, base64 (RFC 4648
//! section 4) without a header: 160 bytes per 20 ms. Parsing borrows from
//! the message text; the writers append to a `String` the caller owns and
//! reuses, so the 20 ms path allocates nothing once the buffer has grown.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::{Carrier, CarrierError, MAX_MESSAGE};

/// The most custom parameters kept from `start` (the rest are dropped).
pub const MAX_PARAMETERS: usize = 16;
/// The longest parameter name or value kept.
pub const MAX_PARAMETER_LEN: usize = 256;
/// The largest decoded media payload accepted (1 s of µ-law).
pub const MAX_PAYLOAD: usize = 8000;

/// One message from Twilio, borrowing from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound<'a> {
    /// `connected`: the socket is up (before `start`).
    Connected,
    /// `start`: the stream's metadata.
    Start(Start),
    /// `media`: caller audio.
    Media {
        /// Milliseconds since the stream started, if given.
        timestamp_ms: Option<u64>,
        /// base64 µ-law (decode with [`decode_payload`]).
        payload: Cow<'a, str>,
    },
    /// `mark`: the audio queued before the named mark has been played (or
    /// discarded by a `clear`).
    Mark {
        /// The mark's name, as we sent it.
        name: Cow<'a, str>,
    },
    /// `dtmf`: the caller pressed a key.
    Dtmf {
        /// The key.
        digit: char,
    },
    /// `stop`: the stream ended (the caller hung up or the call moved on).
    Stop,
    /// An event this bridge does not use (ignored).
    Other,
}

/// The `start` message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The stream (`MZ...`), echoed in every message we send.
    pub stream_sid: String,
    /// The call (`CA...`), for the REST hangup.
    pub call_sid: String,
    /// The account (`AC...`), for the REST hangup.
    pub account_sid: String,
    /// `<Parameter>` values from our TwiML (bounded by [`MAX_PARAMETERS`]).
    pub parameters: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default, rename = "streamSid")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    start: Option<RawStart<'a>>,
    #[serde(borrow, default)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow, default)]
    mark: Option<RawMark<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<RawDtmf<'a>>,
}

#[derive(Deserialize)]
struct RawStart<'a> {
    #[serde(borrow, default, rename = "streamSid")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "callSid")]
    call_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "accountSid")]
    account_sid: Option<Cow<'a, str>>,
    #[serde(default, rename = "customParameters")]
    custom_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(borrow, default, rename = "mediaFormat")]
    media_format: Option<RawFormat<'a>>,
}

#[derive(Deserialize)]
struct RawFormat<'a> {
    #[serde(borrow, default)]
    encoding: Option<Cow<'a, str>>,
    #[serde(default, rename = "sampleRate")]
    sample_rate: Option<u32>,
    #[serde(default)]
    channels: Option<u32>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow, default)]
    timestamp: Option<StrOrNum<'a>>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow, default)]
    track: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrNum<'a> {
    Num(u64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow)]
    digit: Cow<'a, str>,
}

fn malformed(what: &'static str) -> CarrierError {
    CarrierError::Malformed {
        carrier: Carrier::Twilio,
        what,
    }
}

/// Whether `s` is a plausible SID (letters and digits only, bounded), so
/// it can be written into JSON and URLs without escaping.
fn is_sid(s: &str) -> bool {
    !s.is_empty() && s.len() <= super::MAX_CALL_ID && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parses one text message from Twilio.
///
/// # Errors
/// [`CarrierError::TooLarge`] over [`MAX_MESSAGE`], [`CarrierError::Malformed`]
/// for JSON of the wrong shape, [`CarrierError::Unsupported`] for a `start`
/// whose media format is not µ-law 8 kHz mono.
///
/// ```
/// use callbridge_carrier::twilio::{Inbound, parse};
/// let m = parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m5"}}"#).unwrap();
/// assert!(matches!(m, Inbound::Mark { name } if name == "m5"));
/// ```
pub fn parse(text: &str) -> Result<Inbound<'_>, CarrierError> {
    if text.len() > MAX_MESSAGE {
        return Err(CarrierError::TooLarge {
            carrier: Carrier::Twilio,
            len: text.len(),
        });
    }
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|_| malformed("not a Twilio message"))?;
    Ok(match raw.event.as_ref() {
        "connected" => Inbound::Connected,
        "start" => Inbound::Start(start(raw.start, raw.stream_sid)?),
        "media" => {
            let m = raw.media.ok_or_else(|| malformed("media without media"))?;
            if m.track.as_deref().is_some_and(|t| t != "inbound") {
                return Ok(Inbound::Other);
            }
            let timestamp_ms = match m.timestamp {
                Some(StrOrNum::Num(n)) => Some(n),
                Some(StrOrNum::Str(s)) => {
                    Some(s.parse().map_err(|_| malformed("media timestamp"))?)
                }
                None => None,
            };
            Inbound::Media {
                timestamp_ms,
                payload: m.payload,
            }
        }
        "mark" => Inbound::Mark {
            name: raw.mark.ok_or_else(|| malformed("mark without mark"))?.name,
        },
        "dtmf" => {
            let d = raw.dtmf.ok_or_else(|| malformed("dtmf without dtmf"))?;
            let mut chars = d.digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D') => {
                    Inbound::Dtmf { digit: c }
                }
                _ => return Err(malformed("dtmf digit")),
            }
        }
        "stop" => Inbound::Stop,
        _ => Inbound::Other,
    })
}

fn start(
    raw: Option<RawStart<'_>>,
    outer_sid: Option<Cow<'_, str>>,
) -> Result<Start, CarrierError> {
    let s = raw.ok_or_else(|| malformed("start without start"))?;
    if let Some(f) = &s.media_format {
        let enc_ok = f.encoding.as_deref().is_none_or(|e| e == "audio/x-mulaw");
        if !enc_ok || f.sample_rate.is_some_and(|r| r != 8000) || f.channels.is_some_and(|c| c != 1)
        {
            return Err(CarrierError::Unsupported {
                carrier: Carrier::Twilio,
                what: "media format other than audio/x-mulaw 8000 Hz mono",
            });
        }
    }
    let stream_sid = s
        .stream_sid
        .or(outer_sid)
        .filter(|x| is_sid(x))
        .ok_or_else(|| malformed("start without a valid streamSid"))?;
    let call_sid = s
        .call_sid
        .filter(|x| is_sid(x))
        .ok_or_else(|| malformed("start without a valid callSid"))?;
    let account_sid = s
        .account_sid
        .filter(|x| is_sid(x))
        .ok_or_else(|| malformed("start without a valid accountSid"))?;
    let parameters = s
        .custom_parameters
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(v)
                if k.len() <= MAX_PARAMETER_LEN && v.len() <= MAX_PARAMETER_LEN =>
            {
                Some((k, v))
            }
            _ => None,
        })
        .take(MAX_PARAMETERS)
        .collect();
    Ok(Start {
        stream_sid: stream_sid.into_owned(),
        call_sid: call_sid.into_owned(),
        account_sid: account_sid.into_owned(),
        parameters,
    })
}

/// Decodes a `media` payload (base64 µ-law) into `out`; returns the
/// number of bytes.
///
/// # Errors
/// [`CarrierError::Malformed`] for bad base64, [`CarrierError::TooLarge`]
/// when it does not fit `out` (or exceeds [`MAX_PAYLOAD`]).
pub fn decode_payload(payload: &str, out: &mut [u8]) -> Result<usize, CarrierError> {
    let need = payload.len() / 4 * 3;
    if need > MAX_PAYLOAD + 3 || need > out.len() + 3 {
        return Err(CarrierError::TooLarge {
            carrier: Carrier::Twilio,
            len: need,
        });
    }
    B64.decode_slice(payload.as_bytes(), out)
        .map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => CarrierError::TooLarge {
                carrier: Carrier::Twilio,
                len: need,
            },
            base64::DecodeSliceError::DecodeError(_) => malformed("media payload is not base64"),
        })
}

/// Appends a `media` message carrying `mulaw` for stream `stream_sid`.
pub fn write_media(stream_sid: &str, mulaw: &[u8], out: &mut String) {
    out.push_str(r#"{"event":"media","streamSid":""#);
    out.push_str(stream_sid);
    out.push_str(r#"","media":{"payload":""#);
    B64.encode_string(mulaw, out);
    out.push_str(r#""}}"#);
}

/// Appends a `mark` message named `name` (plain ASCII letters and digits).
pub fn write_mark(stream_sid: &str, name: &str, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"{name}"}}}}"#
    );
}

/// Appends a `clear` message (drops Twilio's queued audio; pending marks
/// come back).
pub fn write_clear(stream_sid: &str, out: &mut String) {
    let _ = write!(out, r#"{{"event":"clear","streamSid":"{stream_sid}"}}"#);
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// TwiML that connects the call to the Media Streams socket at `url`
/// (`wss://...`), passing `parameters` (they come back in
/// `start.customParameters`).
///
/// ```
/// let x = callbridge_carrier::twilio::connect_stream_twiml(
///     "wss://bridge.example/twilio/ws", &[("call", "a&b")]);
/// assert_eq!(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
///     <Stream url=\"wss://bridge.example/twilio/ws\"><Parameter name=\"call\" value=\"a&amp;b\"/>\
///     </Stream></Connect></Response>");
/// ```
pub fn connect_stream_twiml(url: &str, parameters: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url=""#);
    xml_escape(url, &mut out);
    out.push_str(r#"">"#);
    for (k, v) in parameters {
        out.push_str(r#"<Parameter name=""#);
        xml_escape(k, &mut out);
        out.push_str(r#"" value=""#);
        xml_escape(v, &mut out);
        out.push_str(r#""/>"#);
    }
    out.push_str("</Stream></Connect></Response>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",
        "start":{"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","accountSid":"AC123","callSid":"CA456",
        "tracks":["inbound"],"customParameters":{"session":"abc"},
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;

    #[test]
    fn start_yields_sids_and_parameters() {
        let Inbound::Start(s) = parse(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(s.stream_sid, "MZ18ad3ab5a668481ce02b83e7395059f0");
        assert_eq!(s.call_sid, "CA456");
        assert_eq!(s.account_sid, "AC123");
        assert_eq!(s.parameters, vec![("session".into(), "abc".into())]);
    }

    #[test]
    fn start_with_another_format_is_unsupported() {
        let t = START.replace("8000", "16000");
        assert!(matches!(parse(&t), Err(CarrierError::Unsupported { .. })));
    }

    #[test]
    fn start_with_a_sid_that_needs_escaping_is_malformed() {
        let t = START.replace("CA456", "CA\\\"x");
        assert!(matches!(parse(&t), Err(CarrierError::Malformed { .. })));
    }

    #[test]
    fn media_mark_dtmf_stop_and_connected_parse() {
        let m = parse(r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"//8="}}"#).unwrap();
        assert_eq!(
            m,
            Inbound::Media {
                timestamp_ms: Some(5),
                payload: "//8=".into()
            }
        );
        assert_eq!(
            parse(r##"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"#"}}"##)
                .unwrap(),
            Inbound::Dtmf { digit: '#' }
        );
        assert_eq!(
            parse(
                r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
            )
            .unwrap(),
            Inbound::Stop
        );
        assert_eq!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap(),
            Inbound::Connected
        );
        assert_eq!(parse(r#"{"event":"future"}"#).unwrap(), Inbound::Other);
        assert!(parse(r#"{"event":"dtmf","dtmf":{"digit":"55"}}"#).is_err());
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn outbound_messages_are_exact_json() {
        let mut s = String::new();
        write_media("MZ1", &[0xff, 0xff, 0x7f], &mut s);
        assert_eq!(
            s,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"//9/"}}"#
        );
        s.clear();
        write_mark("MZ1", "m160", &mut s);
        assert_eq!(
            s,
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m160"}}"#
        );
        s.clear();
        write_clear("MZ1", &mut s);
        assert_eq!(s, r#"{"event":"clear","streamSid":"MZ1"}"#);
    }

    #[test]
    fn payload_decodes_into_a_caller_buffer_and_bounds_hold() {
        let mut out = [0u8; 160];
        let mut text = String::new();
        B64.encode_string([0x55u8; 160], &mut text);
        assert_eq!(decode_payload(&text, &mut out).unwrap(), 160);
        assert!(out.iter().all(|&b| b == 0x55));
        let mut big = String::new();
        B64.encode_string([0u8; 300], &mut big);
        assert!(matches!(
            decode_payload(&big, &mut out),
            Err(CarrierError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_payload("!!!!", &mut out),
            Err(CarrierError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn media_written_is_media_parsed(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut s = String::new();
            write_media("MZabc", &bytes, &mut s);
            let Ok(Inbound::Media { payload, .. }) = parse(&s) else {
                panic!("not media: {s}");
            };
            let mut out = [0u8; 400];
            let n = decode_payload(&payload, &mut out).unwrap();
            prop_assert_eq!(&out[..n], &bytes[..]);
        }

        #[test]
        fn json_shaped_messages_never_panic(
            event in prop_oneof![Just("start"), Just("media"), Just("mark"), Just("dtmf"), Just("stop")],
            body in "[a-zA-Z0-9\":{},]{0,120}",
        ) {
            let _ = parse(&format!(r#"{{"event":"{event}","{event}":{body}}}"#));
        }
    }
}
