//! The call's model usage (issue 22): the provider's usage reports summed
//! per call, counted in `callbridge_model_tokens_total` as they arrive,
//! and written on the session row when the call ends.
//!
//! Gemini (`usageMetadata`) and OpenAI (`response.done`) report the tokens
//! of each response: the call's figures are their sum (each response's
//! input counts the conversation it was given, as the provider bills it).
//! GPT-Live reports the session's audio so far (`session.usage.updated`,
//! a running total): the last report is the call's `audio_ms`. The other
//! providers report no audio time: their `audio_ms` is the caller audio
//! the bridge streamed to the model (20 ms per frame sent).
//!
//! A GPT-Live session that delegates to a Responses backend reports that
//! text model's tokens per delegated response: they are the call's only
//! tokens (the live session bills audio time), so they are its
//! `input_tokens` and `output_tokens` (no audio/text split), counted with
//! `purpose="delegation"`. The post-call summary's tokens are kept apart
//! (`summary_input_tokens`, `summary_output_tokens`; the manager writes
//! them): another API and model, billed after the call.

use std::time::Duration;

use callbridge_crm_store::{EventKind, SessionUpdate};
use callbridge_llm_bridge::Usage;
use serde_json::json;

use super::Call;
use crate::store_writer::StoreOp;

/// What the model reported for one call so far.
#[derive(Debug, Default)]
pub(super) struct CallUsage {
    /// The sum of the token reports; `None` before the first.
    tokens: Option<Usage>,
    /// The last cumulative audio report.
    audio: Option<Duration>,
    /// Caller frames (20 ms each) handed to the model.
    streamed_frames: u64,
}

impl CallUsage {
    /// Adds one token report.
    pub(super) fn on_tokens(&mut self, u: &Usage) {
        match &mut self.tokens {
            Some(sum) => sum.add(u),
            None => self.tokens = Some(*u),
        }
    }

    /// A cumulative audio report (the latest is the total; a smaller
    /// figure after a reconnect's new session does not lower it).
    pub(super) fn on_audio(&mut self, total: Duration) {
        self.audio = Some(self.audio.map_or(total, |a| a.max(total)));
    }

    /// One 20 ms caller frame handed to the model.
    pub(super) fn on_streamed(&mut self) {
        self.streamed_frames += 1;
    }

    /// The audio time of the row: the provider's figure, else what was
    /// streamed; `None` when neither.
    fn audio_ms(&self) -> Option<u64> {
        match self.audio {
            Some(a) => Some(u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            None => (self.streamed_frames > 0).then(|| self.streamed_frames.saturating_mul(20)),
        }
    }

    /// The row's figures, `None` when the model reported nothing and no
    /// audio was streamed.
    pub(super) fn row(&self) -> Option<callbridge_crm_store::Usage> {
        let audio_ms = self.audio_ms();
        if self.tokens.is_none() && audio_ms.is_none() {
            return None;
        }
        Some(callbridge_crm_store::Usage {
            input_tokens: self.tokens.map(|t| t.input_tokens),
            output_tokens: self.tokens.map(|t| t.output_tokens),
            audio_ms,
            // Provider-honest: only a split every report gave.
            split: self
                .tokens
                .and_then(|t| t.split)
                .map(|s| callbridge_crm_store::TokenSplit {
                    input_audio: s.input_audio,
                    input_text: s.input_text,
                    output_audio: s.output_audio,
                    output_text: s.output_text,
                }),
            ..Default::default()
        })
    }

    /// The event detail of the call's totals, with the audio/text split
    /// when every report had one.
    pub(super) fn detail(&self) -> Option<serde_json::Value> {
        let mut d = serde_json::Map::new();
        if let Some(t) = self.tokens {
            d.insert("input_tokens".into(), t.input_tokens.into());
            d.insert("output_tokens".into(), t.output_tokens.into());
            d.insert("total_tokens".into(), t.total_tokens.into());
            if let Some(s) = t.split {
                d.insert(
                    "split".into(),
                    json!({"input_audio": s.input_audio, "input_text": s.input_text,
                           "output_audio": s.output_audio, "output_text": s.output_text}),
                );
            }
        }
        if let Some(a) = self.audio_ms() {
            d.insert("audio_ms".into(), a.into());
        }
        (!d.is_empty()).then(|| json!({ "usage": d }))
    }
}

impl Call {
    /// A token report of the model (`purpose` `Call`) or of the text
    /// model it delegated to (`Delegation`): counted now, summed for the
    /// row.
    pub(super) fn on_model_usage(&mut self, u: &Usage, purpose: crate::metrics::TokenPurpose) {
        let provider = crate::metrics::provider_label(self.shared.model.provider());
        self.metrics
            .model_tokens(provider, purpose, u.input_tokens, u.output_tokens);
        self.usage.on_tokens(u);
    }

    /// Writes the call's usage on its row, and its totals (with the
    /// audio/text split) as a `model` event, once at the call's end.
    pub(super) async fn store_usage(&mut self) {
        let usage = std::mem::take(&mut self.usage);
        if let Some(detail) = usage.detail() {
            self.event(EventKind::Model, detail);
        }
        if let Some(row) = usage.row() {
            let u = SessionUpdate {
                usage: Some(row),
                ..Default::default()
            };
            self.shared
                .store
                .send(StoreOp::Update(self.id, Box::new(u)))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbridge_llm_bridge::TokenSplit;

    fn report(i: u64, o: u64, split: Option<TokenSplit>) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
            total_tokens: i + o,
            split,
        }
    }

    #[test]
    fn nothing_reported_leaves_the_row_alone() {
        let u = CallUsage::default();
        assert_eq!(u.row(), None);
        assert_eq!(u.detail(), None);
    }

    #[test]
    fn token_reports_add_up_and_the_split_needs_every_report() {
        let s = TokenSplit {
            input_audio: 7,
            input_text: 3,
            output_audio: 4,
            output_text: 1,
        };
        let mut u = CallUsage::default();
        u.on_tokens(&report(10, 5, Some(s)));
        u.on_tokens(&report(20, 6, Some(s)));
        let row = u.row().unwrap();
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.audio_ms),
            (Some(30), Some(11), None)
        );
        assert_eq!(
            u.detail().unwrap()["usage"]["split"],
            json!({"input_audio": 14, "input_text": 6, "output_audio": 8, "output_text": 2})
        );
        assert_eq!(
            row.split,
            Some(callbridge_crm_store::TokenSplit {
                input_audio: 14,
                input_text: 6,
                output_audio: 8,
                output_text: 2,
            })
        );
        u.on_tokens(&report(1, 1, None));
        let d = u.detail().unwrap();
        assert_eq!(d["usage"]["input_tokens"], 31);
        assert!(d["usage"].get("split").is_none(), "{d}");
        // The row no longer claims a split it cannot know.
        assert_eq!(u.row().unwrap().split, None);
    }

    #[test]
    fn audio_reports_are_running_totals_not_increments() {
        let mut u = CallUsage::default();
        u.on_audio(Duration::from_millis(1500));
        u.on_audio(Duration::from_millis(4250));
        u.on_audio(Duration::from_millis(900));
        let row = u.row().unwrap();
        assert_eq!((row.input_tokens, row.audio_ms), (None, Some(4250)));
        // The provider's figure wins over what the bridge counted.
        u.on_streamed();
        assert_eq!(u.row().unwrap().audio_ms, Some(4250));
    }

    #[test]
    fn without_an_audio_report_audio_ms_is_what_was_streamed() {
        let mut u = CallUsage::default();
        for _ in 0..150 {
            u.on_streamed();
        }
        u.on_tokens(&report(10, 5, None));
        let row = u.row().unwrap();
        assert_eq!((row.input_tokens, row.audio_ms), (Some(10), Some(3000)));
        assert_eq!(u.detail().unwrap()["usage"]["audio_ms"], 3000);
    }
}
