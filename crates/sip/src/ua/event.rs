//! What the user-agent core tells the application ([`Event`]) and the
//! inputs it takes besides datagrams ([`Originate`], [`Register`]), with
//! the typed outcome of an outbound call ([`Outcome`]).

use crate::auth::Credentials;
use crate::dialog::DialogId;
use crate::header::NameAddr;
use crate::ids::CallId;
use crate::status::StatusCode;
use crate::uri::Uri;
use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

/// The core's handle for one call, inbound or outbound, for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// The core's handle for one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(pub u64);

/// A new inbound call: answer it with [`crate::ua::UserAgent::answer`],
/// ring with `ring`, or refuse with `reject`.
#[derive(Clone)]
pub struct IncomingCall {
    /// The call's handle.
    pub call: CallRef,
    /// The SIP Call-ID (the session manager's deduplication key).
    pub call_id: CallId,
    /// The dialog this call makes once answered.
    pub dialog: DialogId,
    /// The caller.
    pub from: NameAddr,
    /// The callee as addressed.
    pub to: NameAddr,
    /// The SDP offer (empty for an offerless INVITE).
    pub offer: Bytes,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The transport it came over.
    pub transport: crate::transport::Transport,
    /// The INVITE's `X-` extension headers (name as written, value), in
    /// order, at most [`MAX_EXTENSION_HEADERS`]: the application keeps
    /// the ones it is configured to.
    pub extension_headers: Vec<(Bytes, Bytes)>,
}

/// Most `X-` headers of an INVITE handed to the application
/// ([`IncomingCall::extension_headers`]) or written into one
/// ([`Originate::extra_headers`]).
pub const MAX_EXTENSION_HEADERS: usize = 32;

/// Whether `name` is an `X-` extension header name: `X-` and at least one
/// more character, every one an RFC 3261 token character (so a name can
/// never carry a `:`, a space or a line break into the message).
///
/// ```
/// use callbridge_sip::ua::is_extension_header;
/// assert!(is_extension_header(b"X-Customer-Id"));
/// assert!(!is_extension_header(b"X-"));
/// assert!(!is_extension_header(b"Contact"));
/// assert!(!is_extension_header(b"X-A: b"));
/// assert!(!is_extension_header(b"X-A\r\nVia"));
/// ```
pub fn is_extension_header(name: &[u8]) -> bool {
    name.len() > 2
        && name[..2].eq_ignore_ascii_case(b"x-")
        && name.iter().all(|&c| crate::parse::lex::is_token_char(c))
}

/// The `X-` headers of `headers`, at most [`MAX_EXTENSION_HEADERS`].
pub fn extension_headers(headers: &crate::header::Headers) -> Vec<(Bytes, Bytes)> {
    headers
        .iter()
        .filter_map(|h| match h.name() {
            crate::header::HeaderName::Other(n) if is_extension_header(n) => {
                Some((n.clone(), h.value().clone()))
            }
            _ => None,
        })
        .take(MAX_EXTENSION_HEADERS)
        .collect()
}

impl fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // From and To carry phone numbers: never in logs.
        f.debug_struct("IncomingCall")
            .field("call", &self.call)
            .field("call_id", &self.call_id)
            .field("from", &"<redacted>")
            .field("to", &"<redacted>")
            .field("offer_len", &self.offer.len())
            .field("source", &self.source)
            .finish()
    }
}

/// How an outbound call ended before or at its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// 486 Busy Here or 600 Busy Everywhere.
    Busy,
    /// Nobody answered before the ring timeout (we cancelled), or 408.
    NoAnswer,
    /// 603 Decline.
    Rejected,
    /// 480 Temporarily Unavailable or 503 Service Unavailable.
    Unavailable,
    /// We hung up before the answer (CANCEL).
    Cancelled,
    /// No response at all (Timer B).
    Unreachable,
    /// 401/407 we could not answer, or our credentials were refused.
    AuthFailed,
    /// Any other final response.
    Failed(StatusCode),
}

impl Outcome {
    /// The outcome of a final non-2xx response.
    pub fn from_status(status: StatusCode) -> Outcome {
        match status.as_u16() {
            486 | 600 => Outcome::Busy,
            408 => Outcome::NoAnswer,
            603 => Outcome::Rejected,
            480 | 503 => Outcome::Unavailable,
            487 => Outcome::Cancelled,
            401 | 407 => Outcome::AuthFailed,
            _ => Outcome::Failed(status),
        }
    }
}

/// Why an established (or answered) call's SIP dialog ended, as the SIP
/// core saw it. This is the dialog's view only: the application decides
/// why the *call* ended (callbridge-session maps each variant, with an
/// exhaustive match, to an input of its call machine), so the enum is
/// exhaustive on purpose: a new variant must not compile downstream until
/// it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// The peer cancelled before we answered (we sent 487).
    RemoteCancel,
    /// We hung up (our BYE was answered or timed out).
    LocalHangup,
    /// Our 2xx was never ACKed (RFC 3261 section 13.3.1.4). Reported the
    /// moment the core gives up (64*T1 after the 2xx), together with the
    /// BYE it sends; that BYE's own outcome is not reported again.
    AckTimeout,
    /// The application neither answered nor rejected within
    /// [`crate::ua::Config::answer_timeout`]: the core sent 480.
    Unanswered,
    /// Our 2xx carried the offer (an INVITE or re-INVITE without SDP) and
    /// the ACK brought no usable answer: the core sent BYE after the ACK
    /// (RFC 3261 section 13.3.1.4, RFC 3264 section 6).
    BadAnswerInAck,
    /// The session timer ran out (RFC 4028 section 10): the peer did not
    /// refresh in time, or our refreshes failed. The core sent BYE.
    SessionExpired,
}

/// Registration progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationState {
    /// The registrar accepted us for this many seconds.
    Registered {
        /// Granted expiry.
        expires: u32,
    },
    /// The binding was removed ([`crate::ua::UserAgent::unregister`]).
    Unregistered,
    /// The registrar refused (or never answered: 408); retried later
    /// (an unregistration is not retried).
    Failed {
        /// The final status (408 for a timeout).
        status: StatusCode,
    },
}

/// Something the application must know or act on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A new inbound call (boxed: it is much larger than the others).
    IncomingCall(Box<IncomingCall>),
    /// Our 2xx to an inbound INVITE was ACKed: media may flow both ways.
    Confirmed {
        /// The call.
        call: CallRef,
    },
    /// A provisional response to our INVITE (180, 183).
    Progress {
        /// The call.
        call: CallRef,
        /// The status.
        status: StatusCode,
    },
    /// Our outbound INVITE went on to the next target of its location
    /// (RFC 3263 section 4.3): the call's signalling peer is now `target`
    /// (what an RTP latch keyed to the signalling IP must follow).
    FailedOver {
        /// The call.
        call: CallRef,
        /// The server the INVITE went to now.
        target: SocketAddr,
    },
    /// Our outbound call was answered (and ACKed).
    Answered {
        /// The call.
        call: CallRef,
        /// The dialog.
        dialog: DialogId,
        /// The SDP answer.
        answer: Bytes,
    },
    /// An outbound call ended without an answer.
    Failed {
        /// The call.
        call: CallRef,
        /// How.
        outcome: Outcome,
    },
    /// A call that was answered (or offered to us) ended.
    Ended {
        /// The call.
        call: CallRef,
        /// Why.
        reason: EndReason,
    },
    /// The peer sent a re-INVITE or an UPDATE with an offer; answer it
    /// with `answer` (hold and resume per RFC 3264 section 8.4). A
    /// re-INVITE or UPDATE without an offer never comes here: the core
    /// answers it itself with our current SDP.
    Reinvite {
        /// The call.
        call: CallRef,
        /// The new offer.
        offer: Bytes,
        /// Whether the offer puts us on hold (sendonly, inactive, 0.0.0.0).
        hold: bool,
    },
    /// The ACK of our 2xx that carried an offer (an INVITE or re-INVITE
    /// without SDP) brought the answer: apply it (the media goes to the
    /// address it names). For an inbound call it comes just before
    /// [`Event::Confirmed`].
    AnswerInAck {
        /// The call.
        call: CallRef,
        /// The SDP answer (checked against our offer by the core).
        answer: Bytes,
    },
    /// The peer accepted our re-INVITE ([`crate::ua::UserAgent::reinvite`]).
    ReinviteAnswered {
        /// The call.
        call: CallRef,
        /// The SDP answer.
        answer: Bytes,
    },
    /// The peer refused our re-INVITE (491: try again later); the call
    /// goes on with the previous session.
    ReinviteFailed {
        /// The call.
        call: CallRef,
        /// The final status (408 when it timed out).
        status: StatusCode,
    },
    /// A DTMF digit from an INFO with `application/dtmf-relay`.
    Dtmf {
        /// The call.
        call: CallRef,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// Duration in milliseconds (0 when not given).
        duration_ms: u32,
    },
    /// The transfer asked for with [`crate::ua::UserAgent::refer`]
    /// succeeded: a NOTIFY reported a 2xx for the transferee's INVITE to
    /// the target (RFC 3515 section 2.4.5). Reported once per REFER.
    TransferAccepted {
        /// The call that was transferred.
        call: CallRef,
    },
    /// The transfer failed: the final status of the REFER (e.g. 403), the
    /// one a NOTIFY reported for the transferee's INVITE (e.g. 503), or 408
    /// when no outcome came (REFER timeout,
    /// [`crate::ua::Config::transfer_timeout`], subscription ended without
    /// a final status). The call goes on.
    TransferFailed {
        /// The call.
        call: CallRef,
        /// Why.
        status: StatusCode,
    },
    /// A registration with a located registrar
    /// ([`crate::ua::UserAgent::register_located`]) starts a new round
    /// (refresh or retry): locate the registrar again (RFC 3263) and answer
    /// with [`crate::ua::UserAgent::registration_located`].
    LocateRegistrar {
        /// The registration.
        id: RegistrationId,
    },
    /// A registration changed state.
    Registration {
        /// The registration.
        id: RegistrationId,
        /// Its state.
        state: RegistrationState,
    },
}

/// An outbound call to place.
#[derive(Clone)]
pub struct Originate {
    /// The Request-URI (and To), e.g. `sip:+15551234@trunk.example`. It
    /// also picks the transport (RFC 3263 section 4.1): `sips:` goes over
    /// TLS, `;transport=tcp` over TCP, anything else over UDP.
    pub to: Uri,
    /// Our identity (From); the core adds the tag.
    pub from: NameAddr,
    /// The address the INVITE goes to (the trunk or the callee).
    pub target: SocketAddr,
    /// The SDP offer.
    pub offer: Bytes,
    /// Credentials for 401/407 challenges.
    pub credentials: Option<Credentials>,
    /// `X-` headers to add to the INVITE (name, value), at most
    /// [`MAX_EXTENSION_HEADERS`]. The core writes only entries whose name
    /// is an `X-` name and whose name and value hold no control
    /// character (no CR or LF: nothing can be injected); it drops the
    /// others.
    pub extra_headers: Vec<(Bytes, Bytes)>,
}

impl fmt::Debug for Originate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Originate")
            .field("to", &"<redacted>")
            .field("target", &self.target)
            .field("offer_len", &self.offer.len())
            .finish()
    }
}

/// A registration to keep alive (RFC 3261 section 10).
#[derive(Debug, Clone)]
pub struct Register {
    /// The registrar's URI (the REGISTER Request-URI), e.g. `sip:trunk.example`;
    /// it picks the transport like [`Originate::to`].
    pub registrar: Uri,
    /// Where REGISTER is sent (not used by
    /// [`crate::ua::UserAgent::register_located`]).
    pub target: SocketAddr,
    /// The address of record (To and From).
    pub aor: NameAddr,
    /// Requested expiry in seconds.
    pub expires: u32,
    /// Credentials for 401/407 challenges.
    pub credentials: Option<Credentials>,
}
