//! Built-in telephony tools (`end_call`, `transfer_call`) declared to the
//! model next to the user's tools, the mapping of their calls to typed
//! events, and caller DTMF digits turned into text for the model
//! (protocols.md §5: Gemini Live has no DTMF concept). Owns the tool
//! declarations a [`crate::SessionConfig`] carries: [`ToolSpec`],
//! [`BuiltinTools`] and [`TransferChoice`].

use serde_json::{Value, json};

use crate::error::Error;
use crate::event::{ModelEvent, ToolCall};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Function name (`[a-zA-Z0-9_]`, at most 64 characters).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an `object` schema; lower-case types,
    /// each provider converts as it needs).
    pub parameters: serde_json::Value,
}

/// Which built-in telephony tools are declared to the model next to the
/// user's tools. Both surface as typed events
/// ([`crate::ModelEvent::EndCall`], [`crate::ModelEvent::TransferCall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinTools {
    /// `end_call(reason?)`: the conversation is over; the agent finishes its
    /// farewell, then hangs up.
    pub end_call: bool,
    /// `transfer_call(target, number?, reason?)`: hand the caller to one of
    /// [`crate::SessionConfig::transfer_targets`]. Declared only when that list is
    /// not empty.
    pub transfer_call: bool,
}

/// One transfer target the model may choose, as it sees it: the operator's
/// name for it and, for a target that covers a range of numbers, the
/// range's prefix (the model then also names the number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferChoice {
    /// The name the model passes as `target` (e.g. `sales`).
    pub name: String,
    /// For a range of numbers: its E.164 prefix (e.g. `+4420`).
    pub number_prefix: Option<String>,
}

impl Default for BuiltinTools {
    fn default() -> Self {
        BuiltinTools {
            end_call: true,
            transfer_call: true,
        }
    }
}

/// Name of the built-in hang-up tool.
pub const END_CALL: &str = "end_call";
/// Name of the built-in transfer tool.
pub const TRANSFER_CALL: &str = "transfer_call";

/// Whether `name` is a built-in tool's name.
pub fn is_builtin(name: &str) -> bool {
    name == END_CALL || name == TRANSFER_CALL
}

/// The declarations of the enabled built-in tools. `transfer_call` is
/// declared only when there are `targets` to transfer to: its `target` is
/// an enum of their names (the model cannot name anything else through
/// the schema), with a `number` argument when a target covers a range of
/// numbers.
pub fn builtin_specs(enabled: BuiltinTools, targets: &[TransferChoice]) -> Vec<ToolSpec> {
    let mut v = Vec::with_capacity(2);
    if enabled.end_call {
        v.push(ToolSpec {
            name: END_CALL.into(),
            description: "End the phone call. Call this only after you have said goodbye \
                          and the conversation is over."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "reason": {"type": "string", "description": "Why the call ends."}}}),
        });
    }
    if enabled.transfer_call && !targets.is_empty() {
        v.push(transfer_spec(targets));
    }
    v
}

fn transfer_spec(targets: &[TransferChoice]) -> ToolSpec {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let ranges: Vec<String> = targets
        .iter()
        .filter_map(|t| {
            t.number_prefix
                .as_ref()
                .map(|p| format!("{} (numbers starting {p})", t.name))
        })
        .collect();
    let mut properties = json!({
        "target": {"type": "string", "enum": names,
            "description": "Which of the allowed transfer targets to transfer to."},
        "reason": {"type": "string", "description": "Why the caller is transferred."}});
    if !ranges.is_empty()
        && let Some(p) = properties.as_object_mut()
    {
        p.insert(
            "number".into(),
            json!({"type": "string", "description": format!(
                "Only for a target that covers a range of numbers: the full number \
                 to dial, in E.164 form. Ranges: {}.", ranges.join(", "))}),
        );
    }
    ToolSpec {
        name: TRANSFER_CALL.into(),
        description: "Transfer the caller to one of the allowed transfer targets. \
                      Tell the caller you are transferring them first. No other \
                      destination can be reached."
            .into(),
        parameters: json!({"type": "object", "properties": properties, "required": ["target"]}),
    }
}

/// User tools followed by the enabled built-ins (see [`builtin_specs`]).
pub fn all_specs(
    user: &[ToolSpec],
    enabled: BuiltinTools,
    targets: &[TransferChoice],
) -> Vec<ToolSpec> {
    let mut v = user.to_vec();
    v.extend(builtin_specs(enabled, targets));
    v
}

fn str_arg(args: &Value, key: &str) -> Option<String> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Turns a tool call into the event to report: built-ins become
/// [`ModelEvent::EndCall`] / [`ModelEvent::TransferCall`] when enabled
/// (a `transfer_call` without a target stays a plain tool call, so the
/// caller can answer it with an error).
pub fn classify(call: ToolCall, enabled: BuiltinTools) -> ModelEvent {
    match call.name.as_str() {
        END_CALL if enabled.end_call => ModelEvent::EndCall {
            reason: str_arg(&call.args, "reason"),
            id: call.id,
        },
        TRANSFER_CALL if enabled.transfer_call => match str_arg(&call.args, "target") {
            Some(target) => ModelEvent::TransferCall {
                target,
                number: str_arg(&call.args, "number"),
                reason: str_arg(&call.args, "reason"),
                id: call.id,
            },
            None => ModelEvent::ToolCall(call),
        },
        _ => ModelEvent::ToolCall(call),
    }
}

/// The user-turn text that tells the model which keys the caller pressed.
/// Digits are `0-9 * # A-D` (RFC 4733 events 0-15).
///
/// ```
/// assert_eq!(
///     callbridge_llm_bridge::tools::dtmf_text("12#").unwrap(),
///     "[The caller pressed the phone keys: 1 2 #]"
/// );
/// ```
pub fn dtmf_text(digits: &str) -> Result<String, Error> {
    let mut s = String::from("[The caller pressed the phone keys:");
    let mut any = false;
    for c in digits.chars() {
        if !(c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')) {
            return Err(Error::InvalidDtmf(c));
        }
        s.push(' ');
        s.push(c);
        any = true;
    }
    if !any {
        return Err(Error::Config("no DTMF digits"));
    }
    s.push(']');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ToolCallId;

    fn call(name: &str, args: Value) -> ToolCall {
        ToolCall {
            id: ToolCallId("c1".into()),
            name: name.into(),
            args,
        }
    }

    #[test]
    fn end_call_and_transfer_become_typed_events() {
        let on = BuiltinTools::default();
        assert!(matches!(
            classify(call("end_call", json!({"reason": "done"})), on),
            ModelEvent::EndCall { reason: Some(r), .. } if r == "done"
        ));
        assert!(matches!(
            classify(call("transfer_call", json!({"target": "sales"})), on),
            ModelEvent::TransferCall { target, reason: None, .. } if target == "sales"
        ));
    }

    fn choice(name: &str, prefix: Option<&str>) -> TransferChoice {
        TransferChoice {
            name: name.into(),
            number_prefix: prefix.map(str::to_owned),
        }
    }

    #[test]
    fn transfer_call_is_not_declared_without_targets() {
        let names = |s: Vec<ToolSpec>| s.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(
            names(builtin_specs(BuiltinTools::default(), &[])),
            ["end_call"]
        );
        let off = BuiltinTools {
            end_call: true,
            transfer_call: false,
        };
        assert_eq!(
            names(builtin_specs(off, &[choice("sales", None)])),
            ["end_call"]
        );
    }

    #[test]
    fn transfer_call_offers_exactly_the_target_names() {
        let specs = builtin_specs(BuiltinTools::default(), &[choice("sales", None)]);
        let t = specs.iter().find(|t| t.name == TRANSFER_CALL).unwrap();
        assert_eq!(
            t.parameters["properties"]["target"]["enum"],
            json!(["sales"])
        );
        assert!(t.parameters["properties"].get("number").is_none());
        let specs = builtin_specs(
            BuiltinTools::default(),
            &[choice("sales", None), choice("london", Some("+4420"))],
        );
        let t = specs.iter().find(|t| t.name == TRANSFER_CALL).unwrap();
        assert_eq!(
            t.parameters["properties"]["target"]["enum"],
            json!(["sales", "london"])
        );
        let number = t.parameters["properties"]["number"]["description"]
            .as_str()
            .unwrap();
        assert!(
            number.contains("london (numbers starting +4420)"),
            "{number}"
        );
        assert!(matches!(
            classify(call("transfer_call", json!({"target": "london", "number": "+442071234567"})), BuiltinTools::default()),
            ModelEvent::TransferCall { number: Some(n), .. } if n == "+442071234567"
        ));
    }

    #[test]
    fn transfer_without_target_and_disabled_builtins_stay_tool_calls() {
        let on = BuiltinTools::default();
        assert!(matches!(
            classify(call("transfer_call", json!({})), on),
            ModelEvent::ToolCall(_)
        ));
        let off = BuiltinTools {
            end_call: false,
            transfer_call: false,
        };
        assert!(matches!(
            classify(call("end_call", json!({})), off),
            ModelEvent::ToolCall(_)
        ));
    }

    #[test]
    fn dtmf_rejects_non_keys() {
        assert!(matches!(dtmf_text("1x"), Err(Error::InvalidDtmf('x'))));
        assert!(dtmf_text("").is_err());
        assert_eq!(
            dtmf_text("*9D").unwrap(),
            "[The caller pressed the phone keys: * 9 D]"
        );
    }
}
