//! Fuzz the SIP stream framer (TCP/TLS): never panic; the first byte of the
//! input picks a chunk size, and splitting the rest into reads of that size
//! must give the same frames as one read; every frame is within the limit;
//! the framer never holds more than its capacity; whatever is framed goes
//! through the message parser without panicking.
#![no_main]

use bytes::Bytes;
use callbridge_sip::stream::{Frame, StreamError, StreamFramer};
use callbridge_sip::{Limits, Message};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> (Vec<Frame>, Option<StreamError>) {
    let limits = Limits::default();
    let mut f = StreamFramer::new(limits);
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        if let Err(e) = f.push(c) {
            return (out, Some(e));
        }
        loop {
            match f.poll() {
                Ok(Some(fr)) => {
                    if let Frame::Message(m) = &fr {
                        assert!(m.len() <= limits.max_message_len);
                    }
                    out.push(fr);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(f.buffered() <= f.capacity());
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let (whole, whole_err) = run(rest, rest.len().max(1));
    let (split, split_err) = run(rest, chunk);
    // A broken stream may break earlier when split (a line limit crossed
    // before its end arrives); the frames before the break agree.
    let n = whole.len().min(split.len());
    assert_eq!(whole[..n], split[..n]);
    if whole_err.is_none() && split_err.is_none() {
        assert_eq!(whole, split);
    }
    for fr in whole {
        if let Frame::Message(m) = fr {
            let _ = Message::parse_with(Bytes::clone(&m), &Limits::default());
        }
    }
});
