//! Identifiers and the closed vocabularies of the store: newtypes for ids,
//! redacting wrappers for personal data (phone numbers, names), and the
//! enums for direction, media transport, session state, speaker, role, lead
//! status, campaign status, end reason, attempt outcome and event kind. Each
//! enum is stored as its lower-case kebab name (`as_str`), which is also its
//! `Display`.
//!
//! A leaf module: the fallible constructors and parsers of these types
//! (which return the crate's [`Error`](crate::Error), whose variants name
//! some of these types) are in `validate.rs`.

use std::fmt;

use callbridge_redact::mask;

/// A call session's id: a UUID, the same id the agent uses in logs and
/// recording file names. Stored as the hyphenated lower-case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A fresh random (v4) id.
    pub fn new_v4() -> Self {
        SessionId(uuid::Uuid::new_v4())
    }
    /// Wraps an existing UUID.
    pub fn from_uuid(u: uuid::Uuid) -> Self {
        SessionId(u)
    }
    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

macro_rules! int_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// A campaign's row id.
    CampaignId
);
int_id!(
    /// A lead's row id.
    LeadId
);
int_id!(
    /// A user's row id.
    UserId
);

/// A phone number in E.164 form (`+` then 7 to 15 digits, the first not 0).
/// `Debug` and `Display` redact it (`+44*******21`); [`PhoneNumber::as_str`]
/// gives the real value for dialling and storage.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The E.164 string, unredacted.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a number read back from the database (already validated).
    pub(crate) fn from_db(s: String) -> Self {
        PhoneNumber(s)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(")?;
        mask(f, &self.0, 3, 2)?;
        f.write_str(")")
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask(f, &self.0, 3, 2)
    }
}

/// A call party as signalled (the user part of a SIP URI: an E.164 number,
/// an extension, `anonymous`...). At most [`Party::MAX_LEN`] bytes.
/// Redacted in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Party(String);

impl Party {
    /// Longest accepted party string, in bytes.
    pub const MAX_LEN: usize = 256;

    /// The unredacted value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn from_db(s: String) -> Self {
        Party(s)
    }
}

impl fmt::Debug for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Party(")?;
        mask(f, &self.0, 0, 2)?;
        f.write_str(")")
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask(f, &self.0, 0, 2)
    }
}

/// A person's name. At most [`PersonName::MAX_LEN`] bytes. `Debug` and
/// `Display` show only its length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

impl PersonName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 512;

    /// The unredacted name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn from_db(s: String) -> Self {
        PersonName(s)
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName(<{} chars>)", self.0.chars().count())
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<name, {} chars>", self.0.chars().count())
    }
}

/// Free text that may hold personal data (a transcript turn, a call
/// summary). `Debug` and `Display` show only its length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps text.
    pub fn new(s: impl Into<String>) -> Self {
        Sensitive(s.into())
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Unwraps the text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sensitive(<{} chars>)", self.0.chars().count())
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<text, {} chars>", self.0.chars().count())
    }
}

/// Declares a closed vocabulary stored as text.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
            /// The field named in a decoding error.
            pub(crate) const FIELD: &'static str = $field;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

    };
}

text_enum!(
    /// Which side started the call.
    Direction, "direction" {
        /// The caller dialled us.
        Inbound => "inbound",
        /// We dialled out.
        Outbound => "outbound",
        /// Not known (a session rebuilt from an orphan recording).
        Unknown => "unknown",
    }
);

text_enum!(
    /// How the call's media reached us: the companion of [`Direction`] on
    /// a session row (`inbound` over `twilio`, `outbound` over `sip`).
    ///
    /// ```
    /// use callbridge_crm_store::Transport;
    /// assert_eq!("twilio".parse::<Transport>().unwrap(), Transport::Twilio);
    /// assert_eq!(Transport::Sip.to_string(), "sip");
    /// assert!("Twilio".parse::<Transport>().is_err());
    /// ```
    #[non_exhaustive]
    Transport, "transport" {
        /// SIP signalling with RTP media (a trunk, gateway or PBX).
        Sip => "sip",
        /// Twilio Media Streams over a WebSocket.
        Twilio => "twilio",
        /// The Vonage Voice API WebSocket.
        Vonage => "vonage",
        /// Not known (a session rebuilt from an orphan recording).
        Unknown => "unknown",
    }
);

text_enum!(
    /// A call session's lifecycle state.
    ///
    /// ```text
    /// created -> ringing -> answered -> active --+--> ended
    ///    |          |           |                 +--> failed
    ///    +----------+-----------+---(forward only)-+--> interrupted (by recover)
    /// ```
    /// Live states only move forward (skipping is allowed); `ended`,
    /// `failed` and `interrupted` are terminal.
    SessionState, "state" {
        /// Row written, nothing signalled yet.
        Created => "created",
        /// INVITE sent or received, not answered.
        Ringing => "ringing",
        /// 200 OK exchanged.
        Answered => "answered",
        /// Media and model are flowing.
        Active => "active",
        /// Ended normally (see the end reason).
        Ended => "ended",
        /// Never connected or broke (see the end reason).
        Failed => "failed",
        /// Its process died; marked by [`Store::recover`](crate::Store::recover).
        Interrupted => "interrupted",
    }
);

impl SessionState {
    /// True for `ended`, `failed` and `interrupted`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Ended | SessionState::Failed | SessionState::Interrupted
        )
    }

    fn rank(self) -> u8 {
        match self {
            SessionState::Created => 0,
            SessionState::Ringing => 1,
            SessionState::Answered => 2,
            SessionState::Active => 3,
            SessionState::Ended | SessionState::Failed | SessionState::Interrupted => 4,
        }
    }

    /// Whether the state machine allows `self -> to`: live states move
    /// strictly forward (or to a terminal state); terminal states never move.
    pub fn can_transition_to(self, to: SessionState) -> bool {
        !self.is_terminal() && to.rank() > self.rank()
    }
}

text_enum!(
    /// Who spoke a transcript turn.
    Speaker, "speaker" {
        /// The person on the phone.
        Caller => "caller",
        /// The voice model.
        Agent => "agent",
    }
);

text_enum!(
    /// A user's role.
    Role, "role" {
        /// Everything, including users.
        Admin => "admin",
        /// Runs calls and campaigns.
        AgentOperator => "agent-operator",
        /// Reads only.
        Viewer => "viewer",
    }
);

text_enum!(
    /// Where a lead is in its campaign.
    LeadStatus, "lead_status" {
        /// Never tried.
        Pending => "pending",
        /// Claimed by a dialer; a call is (or was, if it crashed) under way.
        InProgress => "in-progress",
        /// Tried; due again at its next attempt time.
        Retry => "retry",
        /// Reached; finished.
        Done => "done",
        /// Out of attempts.
        Failed => "failed",
        /// Must not be called (on the DNC list or asked not to be called).
        DoNotCall => "do-not-call",
    }
);

text_enum!(
    /// A campaign's status; only `active` campaigns hand out leads.
    CampaignStatus, "campaign_status" {
        /// Being set up.
        Draft => "draft",
        /// Dialling.
        Active => "active",
        /// Stopped for now.
        Paused => "paused",
        /// Finished.
        Done => "done",
    }
);

text_enum!(
    /// Why a call ended: exactly one per session. The store's vocabulary:
    /// every reason the agent's call machine ends a call with (its
    /// `EndReason` converts one to one, in callbridge-session), plus the
    /// ones only the store sets ([`EndReason::ProcessDied`],
    /// [`EndReason::OrphanRecording`]). The kebab-case names are stored and
    /// shown in the API: they never change.
    #[non_exhaustive]
    EndReason, "end_reason" {
        /// The caller hung up (BYE from the caller).
        CallerHangup => "caller-hangup",
        /// The agent hung up (model's end_call tool or goodbye).
        AgentHangup => "agent-hangup",
        /// Nobody spoke for too long.
        NoSpeechTimeout => "no-speech-timeout",
        /// The maximum call duration was reached.
        MaxDuration => "max-duration",
        /// RTP stopped arriving.
        RtpTimeout => "rtp-timeout",
        /// The model connection failed.
        ModelFailure => "model-failure",
        /// The process shut down gracefully.
        Shutdown => "shutdown",
        /// The far end answered the INVITE with a final error (see the SIP status).
        Rejected => "rejected",
        /// The INVITE was cancelled before an answer.
        Cancelled => "cancelled",
        /// The callee was busy (486/600).
        Busy => "busy",
        /// Nobody answered in time.
        NoAnswer => "no-answer",
        /// An internal error.
        Error => "error",
        /// The process died mid-call (set by [`Store::recover`](crate::Store::recover)).
        ProcessDied => "process-died",
        /// Rebuilt from a recording file with no session row.
        OrphanRecording => "orphan-recording",
        /// The call was handed off with a SIP REFER that the peer accepted.
        Transferred => "transferred",
        /// Our 200 OK to the caller's INVITE was never ACKed (RFC 3261
        /// section 13.3.1.4): the agent gave up after 64*T1 and sent BYE.
        AckTimeout => "ack-timeout",
        /// Answering-machine detection heard a machine and the policy
        /// was to hang up (issue 19).
        AnsweringMachine => "answering-machine",
        /// Answering-machine detection heard a machine and the agent
        /// left its voicemail message, played to its end (issue 19).
        VoicemailLeft => "voicemail-left",
        /// Answering-machine detection heard special information tones:
        /// the number is unreachable (issue 19).
        Unreachable => "unreachable",
    }
);

text_enum!(
    /// The outcome of one dial attempt of a lead.
    Outcome, "outcome" {
        /// The call connected and finished: the lead is done.
        Completed => "completed",
        /// Busy: retry after the campaign's busy delay.
        Busy => "busy",
        /// No answer: retry after the no-answer delay.
        NoAnswer => "no-answer",
        /// Failed to connect: retry after the failed delay.
        Failed => "failed",
        /// Reached voicemail: retry after the voicemail delay.
        Voicemail => "voicemail",
        /// The person asked not to be called again.
        DoNotCall => "do-not-call",
    }
);

// --- issue 19 (amd): the detection's verdict on the session row ---
text_enum!(
    /// The first verdict of answering-machine detection on an outbound
    /// call (issue 19), stored on the session row (schema v12). The names
    /// are the detection's own (`callbridge_amd::Verdict`, the
    /// `amd.verdict` event and the `callbridge_amd_verdicts_total` label),
    /// hence snake case.
    ///
    /// ```
    /// use callbridge_crm_store::AmdVerdict;
    /// assert_eq!("no_speech".parse::<AmdVerdict>().unwrap(), AmdVerdict::NoSpeech);
    /// assert!("machine_end_beep".parse::<AmdVerdict>().is_err());
    /// ```
    #[non_exhaustive]
    AmdVerdict, "amd_verdict" {
        /// A person answered.
        Human => "human",
        /// An answering machine or voicemail answered.
        Machine => "machine",
        /// Nobody said anything.
        NoSpeech => "no_speech",
        /// A special information tone: the number is unreachable.
        Unreachable => "unreachable",
        /// No decision in time.
        Unknown => "unknown",
    }
);

text_enum!(
    /// How a machine's greeting ended (after [`AmdVerdict::Machine`]):
    /// the detection's `machine_end_*` verdicts without the prefix.
    #[non_exhaustive]
    MachineEnd, "amd_machine_end" {
        /// A beep.
        Beep => "beep",
        /// Silence after the greeting.
        Silence => "silence",
        /// It had not ended by the greeting timeout.
        Timeout => "timeout",
    }
);
// --- end issue 19 (amd) ---

text_enum!(
    /// What a call event records.
    #[non_exhaustive]
    EventKind, "event_kind" {
        /// The session changed state (written by the store itself).
        StateChanged => "state-changed",
        /// A SIP message or transaction event.
        Sip => "sip",
        /// The model called a tool.
        ToolCall => "tool-call",
        /// A DTMF digit.
        Dtmf => "dtmf",
        /// The caller talked over the agent.
        BargeIn => "barge-in",
        /// A model connection event.
        Model => "model",
        /// The recording started, finished or failed.
        Recording => "recording",
        /// An error.
        Error => "error",
        /// Anything else worth keeping.
        Note => "note",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_debug_and_display_never_show_the_middle_digits() {
        let p = PhoneNumber::parse("+442079460021").unwrap();
        assert_eq!(format!("{p:?}"), "PhoneNumber(+44********21)");
        assert!(!format!("{p}").contains("2079460"));
    }

    #[test]
    fn name_debug_shows_only_length() {
        let n = PersonName::new("Ada Lovelace").unwrap();
        assert_eq!(format!("{n:?}"), "PersonName(<12 chars>)");
    }

    #[test]
    fn ended_session_never_moves_and_live_states_only_go_forward() {
        use SessionState::*;
        assert!(Created.can_transition_to(Active));
        assert!(Active.can_transition_to(Ended));
        assert!(!Active.can_transition_to(Ringing));
        assert!(!Ended.can_transition_to(Failed));
        assert!(!Interrupted.can_transition_to(Ended));
        assert!(!Ringing.can_transition_to(Ringing));
    }
}
