//! Every threshold of stage A as a setting, with its default and where the
//! default comes from.
//!
//! | field | default | origin |
//! |---|---|---|
//! | `human_max_greeting` | 1.5 s | issue 19; Asterisk `amd.conf` `greeting = 1500` |
//! | `human_silence` | 800 ms | issue 19; Asterisk `after_greeting_silence = 800` |
//! | `human_quick_greeting` | 600 ms | corpus-tuned: a word or two ("Hello?", "Yes?": 0.2-0.6 s in the corpus); the shortest recorded greeting, "Leave a message.", lasts 0.64 s and more |
//! | `human_quick_silence` | 600 ms | corpus-tuned: issue 19's p50 of 1.2 s from the first word, less the median answer's 0.6 s; above the 300-600 ms pauses between a greeting's sentences |
//! | `human_verdict_by` | 1.9 s | issue 19's p95 of 2 s to a human verdict, less 100 ms (five frames) of margin |
//! | `no_speech` | 4.5 s | issue 19 (Jambonz `noSpeechTimeoutMs` 5 s; Asterisk `initial_silence` 2.5 s) |
//! | `machine_speech` | 2.5 s | issue 19 |
//! | `machine_utterances` | 3 | issue 19; Asterisk `maximum_number_of_words = 2` (the third word is a machine) |
//! | `utterance_gap` | 300 ms | corpus-tuned; Asterisk's `between_words_silence = 50` ms splits words, this splits phrases |
//! | `min_utterance` | 100 ms | Asterisk `min_word_length = 100` |
//! | `greeting_end_silence` | 2 s | issue 19; Jambonz `greetingCompletionTimeoutMs` 2 s |
//! | `undecided_silence` | 2 s | as `greeting_end_silence`: the wait for a beep after a greeting of neither kind |
//! | `after_beep` | 1 s | issue 19; Jambonz (greeting complete 1 s after a beep) |
//! | `decision_timeout` | 8 s | issue 19 (Jambonz `decisionTimeoutMs` 15 s; Asterisk `total_analysis_time` 5 s) |
//! | `greeting_timeout` | 20 s | Jambonz `toneTimeoutMs` 20 s |
//! | `speech_min_dbfs` | -45 dBFS | corpus-tuned: quiet speech on a G.711 line, above mu-law idle noise |
//! | `speech_snr_db` | 9 dB | corpus-tuned: above the tracked noise floor |
//! | `speech_zcr_max` | 0.5 | corpus-tuned: above it a frame is hiss, not voice |
//! | `beep_min_hz`, `beep_max_hz` | 350, 2,000 Hz | issue 19 |
//! | `beep_min_duration` | 200 ms | issue 19 |
//! | `beep_min_dbfs` | -30 dBFS | issue 19 |
//! | `tone_purity` | 0.7 | corpus-tuned: the share of a frame's energy in one Goertzel bin (a pure tone off-bin by half a bin: 0.81) |
//! | `sit` | on | ITU-T E.180 / Telcordia GR-1162 special information tones |
//!
//! Levels are dBFS against a full-scale sine (a sine of amplitude 32,767 is
//! 0 dBFS; its RMS is 3 dB lower).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::frame::{BANK_MAX_HZ, BANK_MIN_HZ};

/// The settings of the acoustic detector (stage A). Deserialized with unknown
/// fields refused and every field optional (the default below).
///
/// ```
/// use callbridge_amd::AmdConfig;
/// let cfg: AmdConfig = toml::from_str("human_silence = \"700ms\"\nbeep_min_dbfs = -35.0")?;
/// assert_eq!(cfg.human_silence, std::time::Duration::from_millis(700));
/// cfg.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdConfig {
    /// The longest greeting (first speech onset to its last voiced frame)
    /// that is a human when silence follows it.
    #[serde(with = "humantime_serde")]
    pub human_max_greeting: Duration,
    /// Silence after a short greeting that makes it a human.
    #[serde(with = "humantime_serde")]
    pub human_silence: Duration,
    /// The longest greeting of one utterance (a word or two: "Hello?")
    /// that `human_quick_silence` makes a human. Zero: no such rule.
    #[serde(with = "humantime_serde")]
    pub human_quick_greeting: Duration,
    /// Silence after a greeting of one utterance of at most
    /// `human_quick_greeting` that makes it a human (above
    /// `human_silence` it acts as `human_silence`).
    #[serde(with = "humantime_serde")]
    pub human_quick_silence: Duration,
    /// A greeting of at most `human_max_greeting` is a human once at
    /// least `human_quick_silence` followed it and this long passed since
    /// its first word, even before `human_silence` did: the silence a
    /// greeting waits for is `human_verdict_by` minus its length, between
    /// `human_quick_silence` and `human_silence`. Zero: no such rule (every
    /// greeting but a quick one waits `human_silence`).
    #[serde(with = "humantime_serde")]
    pub human_verdict_by: Duration,
    /// No speech from the answer for this long: `NoSpeech`.
    #[serde(with = "humantime_serde")]
    pub no_speech: Duration,
    /// A greeting longer than this without a `human_silence` gap: `Machine`.
    #[serde(with = "humantime_serde")]
    pub machine_speech: Duration,
    /// This many utterances before a `human_silence` gap: `Machine`.
    pub machine_utterances: u32,
    /// Silence that ends an utterance (shorter pauses are inside one).
    #[serde(with = "humantime_serde")]
    pub utterance_gap: Duration,
    /// Voiced runs shorter than this are clicks or noise, not utterances.
    #[serde(with = "humantime_serde")]
    pub min_utterance: Duration,
    /// After a `Machine` verdict, silence this long ends the greeting:
    /// `MachineEndSilence`.
    #[serde(with = "humantime_serde")]
    pub greeting_end_silence: Duration,
    /// After a greeting too long for a human and too short for a machine,
    /// silence this long (no beep, no more speech): `Unknown` at once,
    /// rather than at `decision_timeout`. At `decision_timeout` or more it
    /// never fires.
    #[serde(with = "humantime_serde")]
    pub undecided_silence: Duration,
    /// After a `Machine` verdict, `MachineEndBeep` this long after the end of
    /// the beep.
    #[serde(with = "humantime_serde")]
    pub after_beep: Duration,
    /// No first verdict by this time from the answer: `Unknown`.
    #[serde(with = "humantime_serde")]
    pub decision_timeout: Duration,
    /// After a `Machine` verdict, the greeting has not ended by this time
    /// from the answer: `MachineEndTimeout`.
    #[serde(with = "humantime_serde")]
    pub greeting_timeout: Duration,
    /// The lowest level of a voiced frame (dBFS).
    pub speech_min_dbfs: f32,
    /// How far above the tracked noise floor a voiced frame must be (dB).
    pub speech_snr_db: f32,
    /// The highest zero-crossing rate (per sample) of a voiced frame.
    pub speech_zcr_max: f32,
    /// The lowest frequency of a beep (Hz).
    pub beep_min_hz: f32,
    /// The highest frequency of a beep (Hz).
    pub beep_max_hz: f32,
    /// The shortest beep.
    #[serde(with = "humantime_serde")]
    pub beep_min_duration: Duration,
    /// The lowest level of a beep or SIT tone frame (dBFS).
    pub beep_min_dbfs: f32,
    /// The share of a frame's energy in its strongest Goertzel bin for the
    /// frame to be a tone (0 to 1).
    pub tone_purity: f32,
    /// Detect special information tones (`Unreachable`).
    pub sit: bool,
}

impl Default for AmdConfig {
    fn default() -> AmdConfig {
        AmdConfig {
            human_max_greeting: Duration::from_millis(1500),
            human_silence: Duration::from_millis(800),
            human_quick_greeting: Duration::from_millis(600),
            human_quick_silence: Duration::from_millis(600),
            human_verdict_by: Duration::from_millis(1900),
            no_speech: Duration::from_millis(4500),
            machine_speech: Duration::from_millis(2500),
            machine_utterances: 3,
            utterance_gap: Duration::from_millis(300),
            min_utterance: Duration::from_millis(100),
            greeting_end_silence: Duration::from_secs(2),
            undecided_silence: Duration::from_secs(2),
            after_beep: Duration::from_secs(1),
            decision_timeout: Duration::from_secs(8),
            greeting_timeout: Duration::from_secs(20),
            speech_min_dbfs: -45.0,
            speech_snr_db: 9.0,
            speech_zcr_max: 0.5,
            beep_min_hz: 350.0,
            beep_max_hz: 2000.0,
            beep_min_duration: Duration::from_millis(200),
            beep_min_dbfs: -30.0,
            tone_purity: 0.7,
            sit: true,
        }
    }
}

impl AmdConfig {
    /// Checks the settings are consistent; [`crate::Detector::new`] calls it.
    ///
    /// # Errors
    /// The first setting that is out of range or contradicts another.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("human_max_greeting", self.human_max_greeting),
            ("human_silence", self.human_silence),
            ("no_speech", self.no_speech),
            ("machine_speech", self.machine_speech),
            ("utterance_gap", self.utterance_gap),
            ("greeting_end_silence", self.greeting_end_silence),
            ("undecided_silence", self.undecided_silence),
            ("decision_timeout", self.decision_timeout),
            ("greeting_timeout", self.greeting_timeout),
            ("beep_min_duration", self.beep_min_duration),
        ];
        for (field, d) in positive {
            if d.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.human_max_greeting >= self.machine_speech {
            return Err(ConfigError::Order {
                lower: "human_max_greeting",
                higher: "machine_speech",
            });
        }
        if self.human_quick_greeting > self.human_max_greeting {
            return Err(ConfigError::Order {
                lower: "human_quick_greeting",
                higher: "human_max_greeting",
            });
        }
        if self.utterance_gap >= self.human_quick_silence {
            return Err(ConfigError::Order {
                lower: "utterance_gap",
                higher: "human_quick_silence",
            });
        }
        if self.utterance_gap >= self.human_silence {
            return Err(ConfigError::Order {
                lower: "utterance_gap",
                higher: "human_silence",
            });
        }
        if self.decision_timeout > self.greeting_timeout {
            return Err(ConfigError::Order {
                lower: "decision_timeout",
                higher: "greeting_timeout",
            });
        }
        if self.machine_utterances < 2 {
            return Err(ConfigError::OutOfRange {
                field: "machine_utterances",
                range: "2 or more",
            });
        }
        let finite_in = |v: f32, lo: f32, hi: f32| v.is_finite() && (lo..=hi).contains(&v);
        if !finite_in(self.beep_min_hz, BANK_MIN_HZ, BANK_MAX_HZ)
            || !finite_in(self.beep_max_hz, BANK_MIN_HZ, BANK_MAX_HZ)
        {
            return Err(ConfigError::OutOfRange {
                field: "beep_min_hz/beep_max_hz",
                range: "300 to 2500 Hz (the Goertzel bank)",
            });
        }
        if self.beep_min_hz >= self.beep_max_hz {
            return Err(ConfigError::Order {
                lower: "beep_min_hz",
                higher: "beep_max_hz",
            });
        }
        if !finite_in(self.speech_min_dbfs, -90.0, 0.0) {
            return Err(ConfigError::OutOfRange {
                field: "speech_min_dbfs",
                range: "-90 to 0 dBFS",
            });
        }
        if !finite_in(self.beep_min_dbfs, -90.0, 0.0) {
            return Err(ConfigError::OutOfRange {
                field: "beep_min_dbfs",
                range: "-90 to 0 dBFS",
            });
        }
        if !finite_in(self.speech_snr_db, 0.0, 60.0) {
            return Err(ConfigError::OutOfRange {
                field: "speech_snr_db",
                range: "0 to 60 dB",
            });
        }
        if !finite_in(self.speech_zcr_max, 0.0, 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "speech_zcr_max",
                range: "0 to 1 per sample",
            });
        }
        if !finite_in(self.tone_purity, 0.3, 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "tone_purity",
                range: "0.3 to 1",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_an_empty_file_gives_them() {
        let cfg = AmdConfig::default();
        cfg.validate().unwrap();
        let empty: AmdConfig = toml::from_str("").unwrap();
        assert_eq!(empty, cfg);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<AmdConfig>("human_silenc = \"1s\"").is_err());
    }

    #[test]
    fn durations_parse_as_humantime() {
        let cfg: AmdConfig = toml::from_str("no_speech = \"4s 500ms\"").unwrap();
        assert_eq!(cfg.no_speech, Duration::from_millis(4500));
    }

    #[test]
    fn contradictions_are_named() {
        let cfg = AmdConfig {
            human_max_greeting: Duration::from_secs(3),
            ..AmdConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Order {
                lower: "human_max_greeting",
                higher: "machine_speech"
            })
        );
        let cfg = AmdConfig {
            human_silence: Duration::ZERO,
            ..AmdConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Zero {
                field: "human_silence"
            })
        );
        let cfg = AmdConfig {
            beep_max_hz: 4000.0,
            ..AmdConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::OutOfRange { .. })
        ));
        let cfg = AmdConfig {
            human_quick_silence: Duration::from_millis(300),
            ..AmdConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Order {
                lower: "utterance_gap",
                higher: "human_quick_silence"
            })
        );
        let cfg = AmdConfig {
            tone_purity: f32::NAN,
            ..AmdConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::OutOfRange {
                field: "tone_purity",
                ..
            })
        ));
    }
}
