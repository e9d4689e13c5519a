//! A dial request from the model that the operator's list refuses
//! ([`crate::dial_targets`]): the model is told, the refusal is stored as
//! an event of the call, and nothing is dialled. The call goes on.

use callbridge_crm_store::EventKind;
use callbridge_llm_bridge::{ToolCallId, ToolResult};
use serde_json::json;
use tracing::warn;

use super::Call;
use crate::dial_targets::{DialRefused, masked};

impl Call {
    /// Refuses the `transfer_call` `id` that asked for `requested`.
    pub(super) async fn refuse_transfer(
        &mut self,
        id: ToolCallId,
        requested: &str,
        why: DialRefused,
    ) {
        let shown = masked(requested);
        warn!(requested = %shown, reason = why.as_str(), "transfer refused: not in transfer.targets");
        let names = self.profile.transfer_targets.names().join(", ");
        let told = if names.is_empty() {
            "refused: transfers are not available on this line".to_owned()
        } else {
            format!("refused: {why}. The allowed transfer targets are: {names}")
        };
        let mut model_told = false;
        if let Some(m) = &mut self.model {
            model_told = m.send_tool_result(id, ToolResult::Err(told)).await.is_ok();
        }
        self.event(
            EventKind::ToolCall,
            json!({
                "tool": "transfer_call",
                "result": "refused",
                "reason": why.as_str(),
                "requested": shown,
                "model_told": model_told,
            }),
        );
    }
}
