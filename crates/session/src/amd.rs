//! Answering-machine detection on outbound calls (issue 19): the
//! settings a call runs its detection with. The detector itself is
//! `callbridge_amd` (stage A on the callee's 8 kHz audio, stage B on the
//! model's transcript of the callee); the call's side of it (holding the
//! model's audio until a verdict, the machine policy) is the bridge's
//! `amd_gate`.
//!
//! A call runs the detection only when asked
//! ([`OriginateRequest::amd`](crate::OriginateRequest::amd): the HTTP
//! API's `amd` field, the dialer's `--amd`).
//!
//! | setting | default | origin |
//! |---|---|---|
//! | `acoustic` | [`AmdConfig::default`] | issue 19; each threshold's origin is in `callbridge_amd::config` |
//! | `words` | [`WordConfig::default`] | Jambonz `thresholdWordCount` 9; issue 19 (3 words: a person) |
//! | `language` | `en` | the phrase list stage B uses |
//! | `unknown_is_human` | true | issue 19: no decision within 8 s is treated as a person |
//! | `policy` | [`MachinePolicy::Hangup`] | issue 19 |
//!
//! ```
//! use callbridge_session::amd::{AmdSettings, MachinePolicy, VoicemailMessage};
//! let s = AmdSettings {
//!     policy: MachinePolicy::Voicemail(VoicemailMessage::Prompt(
//!         "Say that Acme called about the appointment, then stop.".into(),
//!     )),
//!     ..AmdSettings::default()
//! };
//! s.validate()?;
//! # Ok::<(), callbridge_amd::ConfigError>(())
//! ```

use std::path::PathBuf;

pub use callbridge_amd::{AmdConfig, ConfigError, Verdict, WordConfig};

/// What the message left on a voicemail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoicemailMessage {
    /// Text sent to the model as a user turn: the model speaks the
    /// message (in its voice, on the session it already has).
    Prompt(String),
    /// A prepared recording (mono 16-bit PCM WAV at 8 kHz, at most 30 s,
    /// checked at [`crate::Manager::start`]), played as it is.
    File(PathBuf),
}

/// What a call does when a machine answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MachinePolicy {
    /// Hang up at once (end reason `answering-machine`).
    #[default]
    Hangup,
    /// Wait for the end of the greeting (its beep, or its silence), leave
    /// this message, then hang up (end reason `voicemail-left` once the
    /// message played to its end).
    Voicemail(VoicemailMessage),
}

/// How a call with detection on decides and what it does with the verdict
/// (see the module docs for the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct AmdSettings {
    /// Stage A's thresholds.
    pub acoustic: AmdConfig,
    /// Stage B's word counts and phrase lists.
    pub words: WordConfig,
    /// The callee's language (BCP 47): which phrase list stage B uses.
    pub language: String,
    /// No decision (`unknown`): go on as with a person (true), or hang up
    /// as with a machine (false).
    pub unknown_is_human: bool,
    /// What to do with a machine.
    pub policy: MachinePolicy,
}

impl Default for AmdSettings {
    fn default() -> AmdSettings {
        AmdSettings {
            acoustic: AmdConfig::default(),
            words: WordConfig::default(),
            language: "en".to_owned(),
            unknown_is_human: true,
            policy: MachinePolicy::Hangup,
        }
    }
}

impl AmdSettings {
    /// Checks both stages' settings.
    ///
    /// # Errors
    /// The first setting out of range or contradicting another.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.acoustic.validate()?;
        self.words.validate()
    }
}
