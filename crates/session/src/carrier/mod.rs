//! The adapter that makes a carrier stream a call's media transport.
//!
//! The carrier protocols, signatures, tokens and REST hangups live in
//! `callbridge-carrier`; this module only joins one of its streams to a
//! call: [`audio`] converts the carrier's wire audio (Twilio µ-law, Vonage
//! L16 at 8 or 16 kHz) to and from the call's 20 ms frames of 8 kHz PCM,
//! and [`media`] is the thin tokio driver that runs a stream's sans-IO
//! core on the call's socket with a 20 ms tick.

pub mod audio;
pub mod media;

use callbridge_carrier::Carrier;
use callbridge_crm_store::Transport;

pub use media::{CarrierMedia, CarrierMediaEvent, CarrierStream, accept};

/// The session row's transport for `carrier`'s calls.
///
/// ```
/// use callbridge_carrier::Carrier;
/// use callbridge_crm_store::Transport;
/// use callbridge_session::carrier::transport;
/// assert_eq!(transport(Carrier::Twilio), Transport::Twilio);
/// assert_eq!(transport(Carrier::Vonage).as_str(), Carrier::Vonage.as_str());
/// ```
pub fn transport(carrier: Carrier) -> Transport {
    match carrier {
        Carrier::Twilio => Transport::Twilio,
        Carrier::Vonage => Transport::Vonage,
        // `Carrier` is non-exhaustive; a new carrier gets its own transport.
        _ => Transport::Twilio,
    }
}
