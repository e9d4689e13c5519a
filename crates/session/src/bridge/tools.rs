//! The model's calls of the operator's HTTP tools ([`crate::http_tool`])
//! and of the built-in `collect_digits`, in the call task.
//!
//! An HTTP tool runs in a task of its own: the call goes on (media, the
//! model) while it runs, and the task reports back through the call's
//! mailbox ([`ToolMsg`]): `Slow` once the tool has taken `filler_after`
//! and every second after (the caller hears the filler), `Done` with its
//! outcome, which the model gets as the tool's result. A call the model
//! withdrew (interrupted) is forgotten; its late answer is dropped.
//!
//! `collect_digits(max_digits, timeout_s, then_tool?)` takes the caller's
//! DTMF digits instead of the model: up to `max_digits`, `#` ends early,
//! `timeout_s` bounds the wait. The digits go to the model as the tool's
//! result, or as the argument `digits` of the HTTP tool `then_tool`, whose
//! answer the model gets instead. Digits never reach the transcript, a log
//! line or a stored event: events say `••••`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callbridge_crm_store::EventKind;
use callbridge_llm_bridge::{ToolCall, ToolCallId, ToolResult, ToolSpec};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::warn;

use super::Call;
use super::msg::{CallMsg, ToolMsg};
use crate::http_tool::request::{self, ToolCallContext, ToolOutcome};
use crate::http_tool::{Filler, HttpTool, MAX_STORED_RESULT, filler, truncated};

/// The built-in tool's name.
pub const COLLECT_DIGITS: &str = "collect_digits";
/// What events keep instead of digits.
pub const REDACTED: &str = "••••";
/// Most digits one `collect_digits` takes.
pub const MAX_DIGITS: u64 = 32;

/// The declaration of `collect_digits`.
pub fn collect_digits_spec() -> ToolSpec {
    ToolSpec {
        name: COLLECT_DIGITS.into(),
        description: "Collect digits the caller types on the keypad (a PIN, an account \
            number): up to max_digits (1 to 32), '#' ends early, timeout_s (1 to 60, \
            default 10) bounds the wait. Ask the caller to type them first. Returns \
            the digits, or passes them to the tool named then_tool (as its argument \
            digits) and returns its answer."
            .into(),
        // Only the keywords every provider's schema subset takes (Gemini's
        // has no minimum/maximum): the ranges are in the description and
        // checked by `start_collect`.
        parameters: json!({
            "type": "object",
            "properties": {
                "max_digits": {"type": "integer", "description": "How many digits at most (1 to 32)."},
                "timeout_s": {"type": "integer", "description": "Seconds to wait (1 to 60)."},
                "then_tool": {"type": "string", "description": "A tool to pass the digits to."}
            },
            "required": ["max_digits"]
        }),
    }
}

/// What a call's tools need from the manager.
pub(crate) struct ToolsCtx {
    /// The call as tool requests describe it.
    pub context: ToolCallContext,
    /// The call's own mailbox, for its tool tasks.
    pub self_tx: mpsc::Sender<CallMsg>,
}

impl ToolsCtx {
    /// The tools' view of a call about to start: the caller, called party,
    /// direction, profile and kept SIP headers its templates were given,
    /// and the call's own mailbox.
    pub(crate) fn new(
        id: callbridge_crm_store::SessionId,
        ctx: &crate::profile::template::TemplateContext,
        self_tx: mpsc::Sender<CallMsg>,
    ) -> ToolsCtx {
        ToolsCtx {
            context: ToolCallContext {
                session_id: id.to_string(),
                direction: ctx.direction,
                caller: ctx.caller.clone(),
                called: ctx.called.clone(),
                profile: ctx.profile.clone(),
                headers: ctx.sip.clone(),
            },
            self_tx,
        }
    }
}

/// A running HTTP tool request.
struct Pending {
    tool: Arc<HttpTool>,
    /// Its arguments carry collected digits: never stored.
    secret_args: bool,
    filler_started: bool,
}

/// A running `collect_digits`.
struct Collect {
    id: ToolCallId,
    max: usize,
    digits: String,
    then: Option<Arc<HttpTool>>,
}

/// A call's tool state.
pub(super) struct Tools {
    ctx: ToolsCtx,
    pending: HashMap<ToolCallId, Pending>,
    collecting: Option<Collect>,
}

impl Tools {
    pub(super) fn new(ctx: ToolsCtx) -> Tools {
        Tools {
            ctx,
            pending: HashMap::new(),
            collecting: None,
        }
    }
}

impl Call {
    /// The model called a tool that is not a built-in telephony one.
    pub(super) async fn on_tool_call(&mut self, call: ToolCall) {
        if call.name == COLLECT_DIGITS && self.profile.collect_digits {
            self.start_collect(call).await;
            return;
        }
        let tool = self
            .profile
            .http_tools
            .iter()
            .find(|t| t.name() == call.name)
            .cloned();
        let Some(tool) = tool else {
            self.event(
                EventKind::ToolCall,
                json!({"tool": call.name, "result": "unknown"}),
            );
            self.tool_result(call.id, ToolResult::Err("no such tool".into()))
                .await;
            return;
        };
        let stored = stored_args(&call.args);
        self.run_http_tool(call.id, tool, call.args, stored, false)
            .await;
    }

    /// Checks the arguments, then starts the request in a task of its own.
    async fn run_http_tool(
        &mut self,
        id: ToolCallId,
        tool: Arc<HttpTool>,
        args: Value,
        stored: Value,
        secret_args: bool,
    ) {
        if let Err(errors) = tool.check_args(&args) {
            self.event(
                EventKind::ToolCall,
                json!({"tool": tool.name(), "arguments": stored, "result": "invalid-arguments",
                       "errors": if secret_args { json!([REDACTED]) } else { json!(errors) }}),
            );
            let told = if secret_args {
                "invalid arguments".to_owned()
            } else {
                format!("invalid arguments: {}", errors.join("; "))
            };
            self.tool_result(id, ToolResult::Err(told)).await;
            return;
        }
        self.event(
            EventKind::ToolCall,
            json!({"tool": tool.name(), "arguments": stored, "result": "called"}),
        );
        self.tools.pending.insert(
            id.clone(),
            Pending {
                tool: Arc::clone(&tool),
                secret_args,
                filler_started: false,
            },
        );
        let tx = self.tools.ctx.self_tx.clone();
        let ctx = self.tools.ctx.context.clone();
        let client = self.shared.http.clone();
        tokio::spawn(async move {
            let now = jiff::Timestamp::now().as_second();
            let req = request::call(&client, &tool, &ctx, &args, now);
            tokio::pin!(req);
            let mut next = tokio::time::Instant::now() + tool.filler_after;
            let outcome = loop {
                tokio::select! {
                    o = &mut req => break o,
                    () = tokio::time::sleep_until(next) => {
                        let slow = CallMsg::Tool(ToolMsg::Slow { id: id.clone() });
                        if tx.send(slow).await.is_err() {
                            return;
                        }
                        next += Duration::from_millis(u64::from(filler::BEAT_MS));
                    }
                }
            };
            let _ = tx.send(CallMsg::Tool(ToolMsg::Done { id, outcome })).await;
        });
    }

    /// A tool task's report.
    pub(super) async fn on_tool_msg(&mut self, msg: ToolMsg) {
        match msg {
            ToolMsg::Slow { id } => self.filler(&id).await,
            ToolMsg::Done { id, outcome } => {
                let Some(p) = self.tools.pending.remove(&id) else {
                    return;
                };
                let mut detail = outcome.for_event();
                if let Some(m) = detail.as_object_mut() {
                    m.insert("tool".into(), json!(p.tool.name()));
                    if p.secret_args {
                        // A tool given digits may echo them.
                        m.insert("answer".into(), json!(REDACTED));
                    }
                }
                self.event(EventKind::ToolCall, detail);
                if let ToolOutcome::Failed(why) = &outcome {
                    warn!(tool = p.tool.name(), reason = %why, "tool failed; the model is told");
                }
                self.tool_result(id, outcome.for_model()).await;
            }
            ToolMsg::DigitsTimeout { id } => {
                if self.tools.collecting.as_ref().is_some_and(|c| c.id == id) {
                    self.finish_collect("timeout").await;
                }
            }
        }
    }

    /// The model withdrew these calls: their answers are dropped.
    pub(super) fn on_tools_cancelled(&mut self, ids: &[ToolCallId]) {
        for id in ids {
            self.tools.pending.remove(id);
            if self.tools.collecting.as_ref().is_some_and(|c| &c.id == id) {
                self.tools.collecting = None;
            }
        }
    }

    /// What the caller hears while `id` runs.
    async fn filler(&mut self, id: &ToolCallId) {
        let busy = self.playback.is_busy();
        let Some(p) = self.tools.pending.get_mut(id) else {
            return;
        };
        if matches!(p.tool.filler, Filler::Prompt(_)) && busy {
            // The model is still speaking: no dead air yet. A prompt now
            // would be new input that interrupts it, and an interrupted
            // turn's pending calls are cancelled (Gemini, and the mock
            // after it): this very tool's answer would be dropped. The
            // next tick tries again.
            return;
        }
        let first = !p.filler_started;
        p.filler_started = true;
        let tool = Arc::clone(&p.tool);
        match &tool.filler {
            Filler::Tone => self.playback.announce(filler::comfort_tone()),
            Filler::Audio(clip) if first => self.playback.announce(clip.samples()),
            Filler::Prompt(text) if first => {
                if let Some(m) = &mut self.model {
                    let _ = m.send_text(text.clone()).await;
                }
            }
            Filler::Audio(_) | Filler::Prompt(_) => {}
        }
        if first {
            self.event(EventKind::Note, json!({"tool_filler": tool.name()}));
        }
    }

    async fn start_collect(&mut self, call: ToolCall) {
        let max = call
            .args
            .get("max_digits")
            .and_then(Value::as_u64)
            .filter(|n| (1..=MAX_DIGITS).contains(n));
        let timeout = call
            .args
            .get("timeout_s")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 60);
        let then = match call.args.get("then_tool").and_then(Value::as_str) {
            None => Ok(None),
            Some(n) => self
                .profile
                .http_tools
                .iter()
                .find(|t| t.name() == n)
                .cloned()
                .map(Some)
                .ok_or(format!("then_tool: no tool named {n}")),
        };
        let (max, then) = match (max, then) {
            (Some(m), Ok(t)) => (m, t),
            (None, _) => {
                self.collect_refused(call.id, "max_digits: an integer from 1 to 32".into())
                    .await;
                return;
            }
            (_, Err(why)) => {
                self.collect_refused(call.id, why).await;
                return;
            }
        };
        if self.tools.collecting.is_some() {
            self.collect_refused(call.id, "digits are already being collected".into())
                .await;
            return;
        }
        self.event(
            EventKind::ToolCall,
            json!({"tool": COLLECT_DIGITS, "result": "collecting", "max_digits": max,
                   "then_tool": then.as_ref().map(|t| t.name().to_owned())}),
        );
        self.tools.collecting = Some(Collect {
            id: call.id.clone(),
            // `max` is at most 32: it fits.
            max: usize::try_from(max).unwrap_or(32),
            digits: String::new(),
            then,
        });
        let tx = self.tools.ctx.self_tx.clone();
        let id = call.id;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(timeout)).await;
            let _ = tx.send(CallMsg::Tool(ToolMsg::DigitsTimeout { id })).await;
        });
    }

    async fn collect_refused(&mut self, id: ToolCallId, why: String) {
        self.event(
            EventKind::ToolCall,
            json!({"tool": COLLECT_DIGITS, "result": "refused", "reason": why}),
        );
        self.tool_result(id, ToolResult::Err(why)).await;
    }

    /// A caller's DTMF digit; true when `collect_digits` took it (the
    /// model does not get it as text then).
    pub(super) async fn collect_digit(&mut self, digit: char) -> bool {
        let Some(c) = &mut self.tools.collecting else {
            return false;
        };
        if digit == '#' {
            self.finish_collect("#").await;
            return true;
        }
        c.digits.push(digit);
        if c.digits.len() >= c.max {
            self.finish_collect("max_digits").await;
        }
        true
    }

    async fn finish_collect(&mut self, ended_by: &'static str) {
        let Some(c) = self.tools.collecting.take() else {
            return;
        };
        self.event(
            EventKind::ToolCall,
            json!({"tool": COLLECT_DIGITS, "result": "ok", "digits": REDACTED, "ended_by": ended_by}),
        );
        match c.then {
            None => {
                self.tool_result(
                    c.id,
                    ToolResult::Ok(json!({"digits": c.digits, "ended_by": ended_by})),
                )
                .await;
            }
            Some(tool) => {
                let args = json!({"digits": c.digits});
                self.run_http_tool(c.id, tool, args, json!({"digits": REDACTED}), true)
                    .await;
            }
        }
    }

    async fn tool_result(&mut self, id: ToolCallId, result: ToolResult) {
        if let Some(m) = &mut self.model {
            let _ = m.send_tool_result(id, result).await;
        }
    }
}

/// A tool's arguments as an event keeps them: at most
/// [`MAX_STORED_RESULT`] bytes of their JSON.
fn stored_args(args: &Value) -> Value {
    let text = args.to_string();
    let (kept, cut) = truncated(&text, MAX_STORED_RESULT);
    if cut { json!(kept) } else { args.clone() }
}
