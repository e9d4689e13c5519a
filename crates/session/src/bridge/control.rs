//! An operator's live control of the call (`msg::Control`): new
//! instructions for the model, a message for it to say now, a transfer to
//! a configured target, and the call's mixed audio for a listener.

use bytes::Bytes;
use callbridge_crm_store::EventKind;
use callbridge_llm_bridge::Error as ModelError;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::info;

use super::Call;
use super::msg::{Control, ControlError};
use crate::lifecycle::{Input, ModelInput, Phase, TransferTarget};

/// Mixed audio frames kept for a listener that falls behind (1 s).
const LISTEN_FRAMES: usize = 50;

/// What the model is told for `Control::Say`: a user turn asking for the
/// words (every provider takes a text turn; none has a "speak this"
/// primitive of its own).
fn say_prompt(text: &str) -> String {
    format!(
        "[Operator] Say the following to the caller now, in your own voice, \
         word for word, then carry on with the conversation: {text}"
    )
}

impl Call {
    pub(super) async fn on_control(&mut self, c: Control) {
        match c {
            Control::Instructions { text, reply } => {
                let r = self.update_instructions(text).await;
                let _ = reply.send(r);
            }
            Control::Say { text, reply } => {
                let r = self.say(text).await;
                let _ = reply.send(r);
            }
            Control::Transfer { name, reply } => {
                let r = self.operator_transfer(&name);
                let _ = reply.send(r);
            }
            Control::Listen { reply } => {
                let tx = self
                    .listen
                    .get_or_insert_with(|| broadcast::Sender::new(LISTEN_FRAMES));
                let _ = reply.send(Ok(tx.subscribe()));
            }
        }
    }

    async fn update_instructions(&mut self, text: String) -> Result<(), ControlError> {
        let m = self.model.as_mut().ok_or(ControlError::NoModel)?;
        match m.update_instructions(text).await {
            Ok(()) => {
                info!("model instructions updated by an operator");
                self.event(EventKind::Note, json!({"instructions_updated": true}));
                Ok(())
            }
            Err(ModelError::InstructionsUpdateUnsupported { provider }) => {
                Err(ControlError::InstructionsUnsupported {
                    provider: provider.to_string(),
                })
            }
            Err(_) => Err(ControlError::Model),
        }
    }

    async fn say(&mut self, text: String) -> Result<(), ControlError> {
        if self.machine.phase() != Phase::Active {
            return Err(ControlError::NotNow(self.machine.phase().as_str()));
        }
        let m = self.model.as_mut().ok_or(ControlError::NoModel)?;
        m.send_text(say_prompt(&text))
            .await
            .map_err(|_| ControlError::Model)?;
        info!("operator message sent to the model");
        self.event(EventKind::Note, json!({"operator_say": true}));
        Ok(())
    }

    fn operator_transfer(&mut self, name: &str) -> Result<(), ControlError> {
        // Only a configured entry, by its name: the same list (the call's
        // profile's) and the same check as the model's `transfer_call`.
        let allowed = self
            .profile
            .transfer_targets
            .check(name, None)
            .ok()
            .filter(|a| a.name.eq_ignore_ascii_case(name.trim()))
            .ok_or(ControlError::TargetNotAllowed)?;
        let target = TransferTarget::new(&allowed.target).ok_or(ControlError::TargetNotAllowed)?;
        if self.machine.phase() != Phase::Active {
            return Err(ControlError::NotNow(self.machine.phase().as_str()));
        }
        self.event(
            EventKind::ToolCall,
            json!({"tool": "transfer_call", "target": allowed.name, "by": "operator"}),
        );
        self.inputs
            .push_back(Input::Model(ModelInput::TransferCall { target }));
        Ok(())
    }

    /// Sends one tick's mixed audio to the listeners, if any.
    pub(super) fn feed_listeners(&mut self, caller: &[i16; 160], agent: &[i16; 160]) {
        let Some(tx) = &self.listen else { return };
        if tx.receiver_count() == 0 {
            return;
        }
        let mut buf = Vec::with_capacity(320);
        for (a, b) in caller.iter().zip(agent) {
            buf.extend_from_slice(&a.saturating_add(*b).to_le_bytes());
        }
        let _ = tx.send(Bytes::from(buf));
    }
}
