//! `[amd]`: answering-machine detection on the outbound calls that ask
//! for it (issue 19; `POST /api/calls` `amd`, the dialer's `--amd`). Each
//! key maps onto one setting of `callbridge_session::amd::AmdSettings`;
//! the thresholds not listed here keep the defaults documented, with
//! their origins, in `callbridge_amd::config`.
//!
//! | key | default | maps to | origin |
//! |---|---|---|---|
//! | `machine_policy` | `hangup` | `hangup` or `voicemail` | issue 19 |
//! | `voicemail_prompt` | - | the text the model is told to speak as the message | |
//! | `voicemail_file` | - | a WAV message (mono 16-bit PCM, 8 kHz, at most 30 s) | |
//! | `unknown` | `human` | what no decision in `decision_timeout` counts as | issue 19 |
//! | `language` | `en` | the phrase list of stage B | |
//! | `no_speech` | 4.5 s | `AmdConfig::no_speech` | issue 19 (Jambonz 5 s) |
//! | `decision_timeout` | 8 s | `AmdConfig::decision_timeout` | issue 19 |
//! | `human_max_greeting` | 1.5 s | `AmdConfig::human_max_greeting` | Asterisk `greeting` |
//! | `human_silence` | 800 ms | `AmdConfig::human_silence` | Asterisk `after_greeting_silence` |
//! | `human_quick_greeting` | 600 ms | `AmdConfig::human_quick_greeting` | corpus-tuned (a word or two) |
//! | `human_quick_silence` | 600 ms | `AmdConfig::human_quick_silence` | corpus-tuned (issue 19's p50) |
//! | `human_verdict_by` | 1.9 s | `AmdConfig::human_verdict_by` | issue 19's p95 of 2 s less 100 ms |
//! | `machine_speech` | 2.5 s | `AmdConfig::machine_speech` | issue 19 |
//! | `greeting_end_silence` | 2 s | `AmdConfig::greeting_end_silence` | Jambonz `greetingCompletionTimeoutMs` |
//! | `after_beep` | 1 s | `AmdConfig::after_beep` | Jambonz |
//! | `machine_words` | 9 | `WordConfig::machine_words` | Jambonz `thresholdWordCount` |
//! | `human_max_words` | 3 | `WordConfig::human_max_words` | issue 19 |
//!
//! `machine_policy = "voicemail"` needs exactly one of `voicemail_prompt`
//! and `voicemail_file`; the settings together must validate
//! (`human_max_greeting` below `machine_speech`, ...).

use std::path::Path;

use callbridge_session::amd::{AmdSettings, MachinePolicy, VoicemailMessage};

use super::check::Check;

/// The validated `[amd]` section (`None`: a key is bad, recorded in `c`).
pub fn read(c: &Check<'_>, base: &Path) -> Option<AmdSettings> {
    #[derive(Clone, Copy)]
    enum Policy {
        Hangup,
        Voicemail,
    }
    let policy = c.choice(
        "amd.machine_policy",
        &[("hangup", Policy::Hangup), ("voicemail", Policy::Voicemail)],
    );
    let prompt = c
        .optional("amd.voicemail_prompt")
        .map(|v| v.filter(|v| !v.trim().is_empty()));
    let file = c
        .optional("amd.voicemail_file")
        .map(|v| v.filter(|v| !v.trim().is_empty()));
    let unknown_is_human = c.choice("amd.unknown", &[("human", true), ("machine", false)]);
    let language = c.text("amd.language").and_then(|l| {
        let l = l.trim().to_owned();
        if l.is_empty() || !l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
            c.invalid(
                "amd.language",
                format!("{l:?}"),
                "a language tag like \"en\" or \"es-MX\"",
            )
        } else {
            Some(l)
        }
    });
    let mut s = AmdSettings::default();
    let durations = [
        ("amd.no_speech", &mut s.acoustic.no_speech),
        ("amd.decision_timeout", &mut s.acoustic.decision_timeout),
        ("amd.human_max_greeting", &mut s.acoustic.human_max_greeting),
        ("amd.human_silence", &mut s.acoustic.human_silence),
        (
            "amd.human_quick_greeting",
            &mut s.acoustic.human_quick_greeting,
        ),
        (
            "amd.human_quick_silence",
            &mut s.acoustic.human_quick_silence,
        ),
        ("amd.human_verdict_by", &mut s.acoustic.human_verdict_by),
        ("amd.machine_speech", &mut s.acoustic.machine_speech),
        (
            "amd.greeting_end_silence",
            &mut s.acoustic.greeting_end_silence,
        ),
        ("amd.after_beep", &mut s.acoustic.after_beep),
    ];
    let mut ok = true;
    for (key, field) in durations {
        match c.duration(key) {
            Some(d) => *field = d,
            None => ok = false,
        }
    }
    for (key, field) in [
        ("amd.machine_words", &mut s.words.machine_words),
        ("amd.human_max_words", &mut s.words.human_max_words),
    ] {
        match c.count(key, 1000).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => *field = n,
            None => ok = false,
        }
    }
    s.policy = match (policy?, prompt?, file?) {
        (Policy::Hangup, _, _) => MachinePolicy::Hangup,
        (Policy::Voicemail, Some(p), None) => MachinePolicy::Voicemail(VoicemailMessage::Prompt(p)),
        (Policy::Voicemail, None, Some(f)) => {
            MachinePolicy::Voicemail(VoicemailMessage::File(base.join(f.trim())))
        }
        (Policy::Voicemail, Some(_), Some(_)) => {
            return c.invalid(
                "amd.voicemail_file",
                "(set)",
                "not both amd.voicemail_prompt and amd.voicemail_file",
            );
        }
        (Policy::Voicemail, None, None) => {
            return c.invalid(
                "amd.machine_policy",
                "\"voicemail\"",
                "\"voicemail\" with amd.voicemail_prompt or amd.voicemail_file",
            );
        }
    };
    s.unknown_is_human = unknown_is_human?;
    s.language = language?;
    if !ok {
        return None;
    }
    match s.validate() {
        Ok(()) => Some(s),
        Err(e) => c.invalid(
            "amd",
            "(these settings)",
            &format!("consistent settings: {e}"),
        ),
    }
}
