//! One tool request: the signed POST, the bounded answer, and what the
//! model is told whatever happens.

use std::collections::BTreeMap;

use callbridge_llm_bridge::ToolResult;
use serde::Serialize;
use serde_json::{Value, json};

use super::{HttpTool, MAX_RESULT, MAX_STORED_RESULT, truncated};
use crate::signing::{SIGNATURE_HEADER, sign};

/// The call a request is about: the body's `call` object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolCallContext {
    /// The session id.
    pub session_id: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// The calling party.
    pub caller: String,
    /// The called party.
    pub called: String,
    /// The routing profile.
    pub profile: String,
    /// The SIP headers kept on the call.
    pub headers: BTreeMap<String, String>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// A 2xx answer: its JSON, or `{"text": ...}` for any other body.
    Answered {
        /// What the model gets.
        result: Value,
        /// Whether the body was cut to [`MAX_RESULT`].
        truncated: bool,
    },
    /// No usable answer (a status, a timeout, no connection).
    Failed(String),
}

impl ToolOutcome {
    /// What the model is told.
    pub fn for_model(&self) -> ToolResult {
        match self {
            ToolOutcome::Answered { result, .. } => ToolResult::Ok(result.clone()),
            ToolOutcome::Failed(why) => ToolResult::Err(why.clone()),
        }
    }

    /// What the session's event keeps: the outcome and at most
    /// [`MAX_STORED_RESULT`] bytes of the result.
    pub fn for_event(&self) -> Value {
        match self {
            ToolOutcome::Answered {
                result,
                truncated: cut,
            } => {
                let text = result.to_string();
                let (kept, cut_here) = truncated(&text, MAX_STORED_RESULT);
                json!({"result": "ok", "answer": kept, "truncated": *cut || cut_here})
            }
            ToolOutcome::Failed(why) => json!({"result": "failed", "reason": why}),
        }
    }
}

/// The request body.
pub fn body(ctx: &ToolCallContext, tool: &str, args: &Value) -> Vec<u8> {
    json!({"call": ctx, "tool": tool, "arguments": args})
        .to_string()
        .into_bytes()
}

/// POSTs the call to `tool`, signed when it has a secret, at
/// `unix_seconds`; never longer than the tool's timeout.
pub async fn call(
    client: &reqwest::Client,
    tool: &HttpTool,
    ctx: &ToolCallContext,
    args: &Value,
    unix_seconds: i64,
) -> ToolOutcome {
    let body = body(ctx, tool.name(), args);
    let mut req = client
        .post(tool.url.clone())
        .timeout(tool.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = &tool.secret {
        req = req.header(SIGNATURE_HEADER, sign(secret.expose(), unix_seconds, &body));
    }
    let work = async {
        let mut res = req.body(body).send().await?;
        let status = res.status();
        let json = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let mut bytes = Vec::new();
        let mut cut = false;
        while let Some(chunk) = res.chunk().await? {
            let room = (MAX_RESULT + 1).saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if bytes.len() > MAX_RESULT {
                cut = true;
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, json, bytes, cut))
    };
    // The request's own timeout covers the body too; this bound is a
    // backstop for a server that trickles.
    let r = tokio::time::timeout(tool.timeout, work).await;
    let (status, json, bytes, cut) = match r {
        Err(_) => return timed_out(tool),
        Ok(Err(e)) if e.is_timeout() => return timed_out(tool),
        Ok(Err(e)) if e.is_connect() => {
            return ToolOutcome::Failed("the tool's server could not be reached".into());
        }
        Ok(Err(_)) => return ToolOutcome::Failed("the tool's request failed".into()),
        Ok(Ok(v)) => v,
    };
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let (head, _) = truncated(text.trim(), 200);
        return ToolOutcome::Failed(format!(
            "the tool answered HTTP {}: {head}",
            status.as_u16()
        ));
    }
    if json
        && !cut
        && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
    {
        return ToolOutcome::Answered {
            result: v,
            truncated: false,
        };
    }
    let (text, cut_here) = truncated(&text, MAX_RESULT);
    ToolOutcome::Answered {
        result: json!({"text": text}),
        truncated: cut || cut_here,
    }
}

fn timed_out(tool: &HttpTool) -> ToolOutcome {
    ToolOutcome::Failed(format!(
        "the tool did not answer within {} ms",
        tool.timeout.as_millis()
    ))
}
