//! Client delegations mapped to the line's tools, sans-IO.
//!
//! The contract (`docs/providers/gpt-live.md`, *Tools and delegation*):
//! under client delegation the session object takes no tool declarations
//! (`ClientDelegationParam` has only `type: "client"`, openai-python
//! `types/live/client_delegation_param.py`), and
//! `session.delegation.created` carries metadata only, "not the task
//! text" (`delegation_created_event.py`: `delegation.{id, target, type}`,
//! `offset_ms`). The task is in the conversation: "use transcript events
//! and application state to prepare the backend request"
//! (developers.openai.com `/api/docs/guides/live-delegation`, *client
//! delegation*). The result goes back as `session.commentary.append`
//! (speakable, "a result the model should communicate") or
//! `session.thinking.append` (silent), each `{content ≤ 500 tokens,
//! delegation_id}` (`commentary_append_event_param.py`,
//! `thinking_append_event_param.py`); `response.item.create` is refused
//! outside Responses delegation.
//!
//! So the bridge maps a delegation to a tool by its transcript, with no
//! language model of its own: the session's instructions list the tools
//! by name and ask the model to name the one it delegates
//! ([`tasks_instructions`]); the caller's and the model's words since the
//! previous delegation ([`TaskText`]) must name exactly one tool
//! (`lookup_order` or "lookup order", case and punctuation aside).
//! Its arguments come from the same text, by the schema: a `task`
//! property gets the text itself, an `enum` property (e.g.
//! `transfer_call`'s `target`) the one value the text names, a required
//! integer the first number in the text; any other required argument
//! cannot be given, and the delegation is declined with that reason.

use serde_json::{Map, Value};

use crate::tools::ToolSpec;

/// Most characters of transcript kept as a delegation's task text.
pub(crate) const MAX_TASK_TEXT: usize = 1000;
/// Most characters of a result sent in one append (the contract's limit
/// is 500 tokens; 1,500 characters stays under it for any text).
pub(crate) const MAX_RESULT_TEXT: usize = 1500;

/// The transcript since the last delegation (both sides), bounded to its
/// last [`MAX_TASK_TEXT`] characters.
#[derive(Debug, Default)]
pub(crate) struct TaskText {
    text: String,
    /// Whether the last piece was the caller's.
    caller: bool,
}

impl TaskText {
    /// Appends a transcript piece (a delta, as it came: pieces of one
    /// side join as they are, a change of side adds a space).
    pub(crate) fn push(&mut self, piece: &str, caller: bool) {
        if caller != self.caller && !self.text.ends_with(char::is_whitespace) {
            self.text.push(' ');
        }
        self.caller = caller;
        self.text.push_str(piece);
        let len = self.text.chars().count();
        if len > MAX_TASK_TEXT {
            let cut = self
                .text
                .char_indices()
                .nth(len - MAX_TASK_TEXT)
                .map_or(0, |(i, _)| i);
            self.text.drain(..cut);
        }
    }

    /// Takes the text (the next delegation starts afresh).
    pub(crate) fn take(&mut self) -> String {
        std::mem::take(&mut self.text).trim().to_owned()
    }
}

/// What a delegation becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mapping {
    /// Run this tool with these arguments.
    Call {
        /// The tool.
        name: String,
        /// Its arguments (an object).
        args: Value,
    },
    /// Not run; why (told to the model).
    Decline(String),
}

/// Lower case, words of letters and digits separated by one space,
/// padded with a space at both ends (so `" x "` matches whole words).
fn words(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&w.to_lowercase());
        out.push(' ');
    }
    out
}

fn names(text_words: &str, name: &str) -> bool {
    let phrase = words(name);
    !phrase.trim().is_empty() && text_words.contains(&phrase)
}

/// Maps a delegation whose task text is `text` to one of `specs`.
pub(crate) fn map(text: &str, specs: &[ToolSpec]) -> Mapping {
    let tw = words(text);
    let hits: Vec<&ToolSpec> = specs.iter().filter(|s| names(&tw, &s.name)).collect();
    let spec = match hits.as_slice() {
        [] => return Mapping::Decline("the task names none of this line's tools".into()),
        [one] => *one,
        many => {
            let list: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
            return Mapping::Decline(format!(
                "the task names several tools ({}); name one",
                list.join(", ")
            ));
        }
    };
    match args_for(spec, text, &tw) {
        Ok(args) => Mapping::Call {
            name: spec.name.clone(),
            args,
        },
        Err(why) => Mapping::Decline(why),
    }
}

fn args_for(spec: &ToolSpec, text: &str, tw: &str) -> Result<Value, String> {
    let empty = Map::new();
    let props = spec
        .parameters
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = spec
        .parameters
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut args = Map::new();
    for (key, schema) in props {
        let needed = required.contains(&key.as_str());
        if let Some(v) = arg_from_text(key, schema, text, tw, needed)? {
            args.insert(key.clone(), v);
        } else if needed {
            return Err(format!(
                "{} needs the argument {key}, which a delegation cannot give",
                spec.name
            ));
        }
    }
    Ok(Value::Object(args))
}

fn arg_from_text(
    key: &str,
    schema: &Value,
    text: &str,
    tw: &str,
    needed: bool,
) -> Result<Option<Value>, String> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let named: Vec<&str> = values
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| names(tw, v))
            .collect();
        return match named.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(Value::String((*one).to_owned()))),
            _ => Err(format!("the task names several values of {key}")),
        };
    }
    let kind = schema.get("type").and_then(Value::as_str);
    if key == "task" && matches!(kind, None | Some("string")) {
        return Ok(Some(Value::String(text.to_owned())));
    }
    if needed && matches!(kind, Some("integer" | "number")) {
        let number = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse::<u64>().ok());
        return Ok(number.map(Value::from));
    }
    Ok(None)
}

/// What the session's instructions add under client delegation when the
/// line has tools: their names and what they do, and the ask to name the
/// one delegated. `None` without tools.
pub(crate) fn tasks_instructions(specs: &[ToolSpec]) -> Option<String> {
    if specs.is_empty() {
        return None;
    }
    let mut s = String::from(
        "Tasks this phone line can carry out when you delegate them (say the task's \
         name, with its words, to the caller as you delegate it, e.g. \"let me run \
         lookup order\"):",
    );
    for spec in specs {
        s.push_str(&format!(
            "\n- {}: {}",
            spec.name.replace('_', " "),
            spec.description
        ));
    }
    Some(s)
}

/// `text` cut to [`MAX_RESULT_TEXT`] characters; never empty.
pub(crate) fn result_text(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(the task returned nothing)".to_owned();
    }
    match t.char_indices().nth(MAX_RESULT_TEXT) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: format!("does {name}"),
            parameters,
        }
    }

    fn line() -> Vec<ToolSpec> {
        let mut v = vec![
            spec(
                "lookup_order",
                json!({"type": "object", "properties": {"task": {"type": "string"}},
                       "required": ["task"]}),
            ),
            spec(
                "book_slot",
                json!({"type": "object", "properties": {"day": {"type": "string"}},
                       "required": ["day"]}),
            ),
            spec(
                "collect_digits",
                json!({"type": "object", "properties": {"max_digits": {"type": "integer"},
                       "then_tool": {"type": "string"}}, "required": ["max_digits"]}),
            ),
        ];
        v.extend(crate::tools::builtin_specs(
            crate::BuiltinTools::default(),
            &[
                crate::TransferChoice {
                    name: "sales".into(),
                    number_prefix: None,
                },
                crate::TransferChoice {
                    name: "support".into(),
                    number_prefix: None,
                },
            ],
        ));
        v
    }

    #[test]
    fn a_task_naming_one_tool_runs_it_with_the_text_as_its_task() {
        let text = "Where is my order 42? Let me run Lookup-Order for you.";
        assert_eq!(
            map(text, &line()),
            Mapping::Call {
                name: "lookup_order".into(),
                args: json!({"task": text}),
            }
        );
        assert_eq!(
            map("okay, lookup_order now", &line()),
            Mapping::Call {
                name: "lookup_order".into(),
                args: json!({"task": "okay, lookup_order now"}),
            }
        );
    }

    #[test]
    fn builtins_get_their_arguments_from_the_text() {
        assert_eq!(
            map("I'll transfer call you to Sales now", &line()),
            Mapping::Call {
                name: "transfer_call".into(),
                args: json!({"target": "sales"}),
            }
        );
        assert_eq!(
            map("please type your 4 digit pin, collect digits", &line()),
            Mapping::Call {
                name: "collect_digits".into(),
                args: json!({"max_digits": 4}),
            }
        );
        assert_eq!(
            map("goodbye, end call", &line()),
            Mapping::Call {
                name: "end_call".into(),
                args: json!({}),
            }
        );
    }

    #[test]
    fn no_tool_several_tools_or_missing_arguments_are_declined_with_a_reason() {
        let Mapping::Decline(why) = map("what is the weather", &line()) else {
            panic!("mapped")
        };
        assert!(why.contains("none"), "{why}");
        let Mapping::Decline(why) = map("lookup order, then end call", &line()) else {
            panic!("mapped")
        };
        assert!(
            why.contains("lookup_order") && why.contains("end_call"),
            "{why}"
        );
        let Mapping::Decline(why) = map("book slot on monday", &line()) else {
            panic!("mapped")
        };
        assert!(why.contains("day"), "{why}");
        let Mapping::Decline(why) = map("transfer call to sales or support", &line()) else {
            panic!("mapped")
        };
        assert!(why.contains("target"), "{why}");
        // A part of a word is not a name: "endcall" / "lookup orders".
        assert!(matches!(map("lookup orders", &line()), Mapping::Decline(_)));
        assert!(matches!(map("", &[]), Mapping::Decline(_)));
    }

    #[test]
    fn task_text_keeps_the_last_characters_and_results_are_bounded() {
        let mut t = TaskText::default();
        t.push(&"a".repeat(MAX_TASK_TEXT), false);
        t.push("look", true);
        t.push("up or", true);
        t.push("der", true);
        let s = t.take();
        assert!(s.ends_with("a lookup order"), "{s}");
        assert!(s.chars().count() <= MAX_TASK_TEXT);
        assert_eq!(t.take(), "");
        assert_eq!(result_text(" "), "(the task returned nothing)");
        let long = "é".repeat(MAX_RESULT_TEXT + 10);
        assert_eq!(result_text(&long).chars().count(), MAX_RESULT_TEXT + 1);
    }

    #[test]
    fn the_instructions_list_the_tools_by_their_spoken_names() {
        let s = tasks_instructions(&line()).unwrap();
        assert!(s.contains("- lookup order: does lookup_order"), "{s}");
        assert!(s.contains("- transfer call:"), "{s}");
        assert_eq!(tasks_instructions(&[]), None);
    }
}
