//! Stage B: what the callee's words say, from the model's input
//! transcription.
//!
//! - At least `machine_words` words (9, Jambonz's `thresholdWordCount`) in
//!   the callee's first turn, or one of the language's machine phrases
//!   ("leave a message", "not available", "after the tone", ...) anywhere
//!   in it: `Machine`, as soon as the text shows it.
//! - The turn ends with at most `human_max_words` words (3): `Human`.
//!
//! Text is compared normalized: lower case, apostrophes dropped (`can't`
//! and `cant` match), every other non-alphanumeric character a space, on
//! word boundaries. The callee's text is bounded ([`MAX_TEXT`]): a
//! transcript that long has decided long before.
//!
//! This is evidence, not the call's decision: the call weighs it with stage
//! A's [`crate::Detector`].
//!
//! ```
//! use callbridge_amd::{Verdict, WordConfig, WordEvidence};
//!
//! let cfg = WordConfig::default();
//! let mut w = WordEvidence::new(&cfg, "en-US")?;
//! assert_eq!(w.push_transcript("Hi, you've reached Sam. Please leave a"), None);
//! assert_eq!(w.push_transcript(" message."), Some(Verdict::Machine));
//! assert_eq!(w.matched_phrase(), Some("leave a message"));
//!
//! let mut w = WordEvidence::new(&cfg, "en")?;
//! assert_eq!(w.push_transcript("Hello?"), None);
//! assert_eq!(w.end_of_turn(), Some(Verdict::Human));
//! # Ok::<(), callbridge_amd::ConfigError>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::verdict::Verdict;

/// The longest callee text kept (bytes, normalized).
pub const MAX_TEXT: usize = 4096;

/// The settings of stage B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WordConfig {
    /// Words in the first turn that make it a machine (Jambonz: 9).
    pub machine_words: u32,
    /// At most this many words in a finished turn: a human (issue 19: 3).
    pub human_max_words: u32,
    /// Machine phrases per language (the primary subtag: `en`, `es`, ...).
    /// The defaults cover English, Spanish, German and French; a language
    /// with no list is judged by its word count alone.
    pub phrases: BTreeMap<String, Vec<String>>,
}

impl Default for WordConfig {
    fn default() -> WordConfig {
        let list = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut phrases = BTreeMap::new();
        phrases.insert(
            "en".to_owned(),
            list(&[
                "leave a message",
                "leave your message",
                "leave me a message",
                "leave us a message",
                "leave your name",
                "not available",
                "unavailable",
                "after the tone",
                "after the beep",
                "at the tone",
                "record your message",
                "can't take your call",
                "cannot take your call",
                "can't come to the phone",
                "voicemail",
                "voice mail",
                "mailbox",
                "messaging system",
            ]),
        );
        phrases.insert(
            "es".to_owned(),
            list(&[
                "deje su mensaje",
                "deje un mensaje",
                "dejar un mensaje",
                "no está disponible",
                "después del tono",
                "buzón de voz",
            ]),
        );
        phrases.insert(
            "de".to_owned(),
            list(&[
                "nach dem signalton",
                "nach dem ton",
                "hinterlassen sie",
                "nicht erreichbar",
                "mailbox",
                "anrufbeantworter",
            ]),
        );
        phrases.insert(
            "fr".to_owned(),
            list(&[
                "laissez un message",
                "laissez votre message",
                "après le bip",
                "après le signal",
                "messagerie",
                "n'est pas disponible",
            ]),
        );
        WordConfig {
            machine_words: 9,
            human_max_words: 3,
            phrases,
        }
    }
}

impl WordConfig {
    /// Checks the settings; [`WordEvidence::new`] calls it.
    ///
    /// # Errors
    /// The first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.human_max_words == 0 {
            return Err(ConfigError::Zero {
                field: "human_max_words",
            });
        }
        if self.human_max_words >= self.machine_words {
            return Err(ConfigError::Order {
                lower: "human_max_words",
                higher: "machine_words",
            });
        }
        if self
            .phrases
            .values()
            .flatten()
            .any(|p| normalize(p).is_empty())
        {
            return Err(ConfigError::OutOfRange {
                field: "phrases",
                range: "phrases with at least one word",
            });
        }
        Ok(())
    }
}

/// The words of one callee's first turn (see the module docs).
#[derive(Debug, Clone)]
pub struct WordEvidence {
    machine_words: u32,
    human_max_words: u32,
    /// The language's phrases, normalized, each with its configured form.
    phrases: Vec<(String, String)>,
    /// The raw text so far (deltas may split words).
    text: String,
    words: u32,
    matched: Option<usize>,
    verdict: Option<Verdict>,
}

impl WordEvidence {
    /// Word evidence for a callee speaking `language` (a BCP 47 tag; its
    /// primary subtag chooses the phrase list).
    ///
    /// # Errors
    /// [`ConfigError`] when `cfg` does not validate.
    pub fn new(cfg: &WordConfig, language: &str) -> Result<WordEvidence, ConfigError> {
        cfg.validate()?;
        let primary = language
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let phrases = cfg
            .phrases
            .get(&primary)
            .map(|list| list.iter().map(|p| (normalize(p), p.clone())).collect())
            .unwrap_or_default();
        Ok(WordEvidence {
            machine_words: cfg.machine_words,
            human_max_words: cfg.human_max_words,
            phrases,
            text: String::new(),
            words: 0,
            matched: None,
            verdict: None,
        })
    }

    /// More of the callee's transcription (a delta or a whole piece);
    /// `Some(Machine)` the first time the text shows a machine.
    pub fn push_transcript(&mut self, text: &str) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        let room = MAX_TEXT.saturating_sub(self.text.len());
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&text[..cut]);
        let norm = normalize(&self.text);
        self.words =
            u32::try_from(norm.split(' ').filter(|w| !w.is_empty()).count()).unwrap_or(u32::MAX);
        let padded = format!(" {norm} ");
        self.matched = self
            .phrases
            .iter()
            .position(|(p, _)| padded.contains(&format!(" {p} ")));
        if self.matched.is_some() || self.words >= self.machine_words {
            self.verdict = Some(Verdict::Machine);
            return self.verdict;
        }
        None
    }

    /// The callee's turn ended: `Some(Human)` when it had words, at most
    /// `human_max_words` of them, and no verdict came before.
    pub fn end_of_turn(&mut self) -> Option<Verdict> {
        if self.verdict.is_none() && (1..=self.human_max_words).contains(&self.words) {
            self.verdict = Some(Verdict::Human);
            return self.verdict;
        }
        None
    }

    /// The verdict, once there is one.
    #[must_use]
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// Words heard so far.
    #[must_use]
    pub fn words(&self) -> u32 {
        self.words
    }

    /// The machine phrase heard, as configured.
    #[must_use]
    pub fn matched_phrase(&self) -> Option<&str> {
        self.matched
            .and_then(|i| self.phrases.get(i))
            .map(|(_, p)| p.as_str())
    }
}

/// Lower case, apostrophes dropped, other non-alphanumerics a space, single
/// spaces, trimmed.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        let c = if c.is_alphanumeric() { c } else { ' ' };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn en() -> WordEvidence {
        WordEvidence::new(&WordConfig::default(), "en").unwrap()
    }

    #[test]
    fn nine_words_are_a_machine_eight_are_not() {
        let mut w = en();
        assert_eq!(
            w.push_transcript("one two three four five six seven eight"),
            None
        );
        assert_eq!(w.words(), 8);
        assert_eq!(w.push_transcript(" nine"), Some(Verdict::Machine));
        assert_eq!(w.matched_phrase(), None);
        assert_eq!(w.end_of_turn(), None, "the verdict is final");
    }

    #[test]
    fn a_phrase_split_across_deltas_and_words_is_found() {
        let mut w = en();
        assert_eq!(w.push_transcript("Sorry, I'm not avail"), None);
        assert_eq!(w.push_transcript("able."), Some(Verdict::Machine));
        assert_eq!(w.matched_phrase(), Some("not available"));
    }

    #[test]
    fn phrases_match_whole_words_case_and_apostrophes_aside() {
        let mut w = en();
        assert_eq!(
            w.push_transcript("I CANT take your call"),
            Some(Verdict::Machine)
        );
        let mut w = en();
        // "mailboxes" is not "mailbox".
        assert_eq!(w.push_transcript("mailboxes"), None);
    }

    #[test]
    fn a_short_turn_is_a_human_and_an_empty_one_is_nothing() {
        let mut w = en();
        assert_eq!(w.push_transcript("Yes, speaking."), None);
        assert_eq!(w.end_of_turn(), Some(Verdict::Human));
        let mut w = en();
        assert_eq!(w.end_of_turn(), None);
        let mut w = en();
        w.push_transcript("Hello, who is calling please?");
        assert_eq!(w.end_of_turn(), None, "five words: neither");
    }

    #[test]
    fn the_language_chooses_the_phrases() {
        let cfg = WordConfig::default();
        let mut es = WordEvidence::new(&cfg, "es-MX").unwrap();
        assert_eq!(
            es.push_transcript("Por favor, deje su mensaje."),
            Some(Verdict::Machine)
        );
        let mut ja = WordEvidence::new(&cfg, "ja").unwrap();
        assert_eq!(ja.push_transcript("leave a message"), None);
    }

    #[test]
    fn configured_phrases_and_counts_apply() {
        let cfg = WordConfig {
            machine_words: 5,
            human_max_words: 1,
            phrases: BTreeMap::from([("en".to_owned(), vec!["press one".to_owned()])]),
        };
        let mut w = WordEvidence::new(&cfg, "en").unwrap();
        assert_eq!(w.push_transcript("Press one"), Some(Verdict::Machine));
        let mut w = WordEvidence::new(&cfg, "en").unwrap();
        w.push_transcript("Hello there");
        assert_eq!(w.end_of_turn(), None);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = WordConfig {
            human_max_words: 9,
            ..WordConfig::default()
        };
        assert!(WordEvidence::new(&bad, "en").is_err());
        let bad = WordConfig {
            phrases: BTreeMap::from([("en".to_owned(), vec!["  !".to_owned()])]),
            ..WordConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    proptest! {
        #[test]
        fn any_text_never_panics_and_stays_bounded(parts in proptest::collection::vec(".{0,300}", 0..40)) {
            let mut w = en();
            let mut seen = None;
            for p in &parts {
                if let Some(v) = w.push_transcript(p) {
                    prop_assert!(seen.is_none());
                    seen = Some(v);
                }
                prop_assert!(w.text.len() <= MAX_TEXT);
            }
            let end = w.end_of_turn();
            prop_assert!(seen.is_none() || end.is_none());
        }
    }
}
