//! Loading tools, checking arguments, and requests against a local
//! server: signed, answered, failed, slow.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::request::{ToolCallContext, ToolOutcome, call};
use super::*;

fn spec(name: &str, url: &str) -> HttpToolSpec {
    HttpToolSpec {
        name: name.into(),
        description: "Looks an order up.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"order": {"type": "string", "pattern": "^[0-9]+$"}},
            "required": ["order"]
        }),
        url: url.into(),
        ..HttpToolSpec::default()
    }
}

fn env(var: &str) -> Option<String> {
    (var == "TOOL_SECRET").then(|| "s3cret".to_owned())
}

fn client() -> reqwest::Client {
    let tls = callbridge_tls::TlsRoots::Bundled.client_config().unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap()
}

#[test]
fn every_bad_tool_field_is_named() {
    let bad = [
        HttpToolSpec {
            parameters: json!({"type": "object", "properties": {"a": {"type": "no-such-type"}}}),
            timeout: Some("2m".into()),
            secret_env: Some("UNSET_VAR".into()),
            ..spec("a", "ftp://x")
        },
        HttpToolSpec {
            filler_after_ms: Some(5),
            filler_prompt: Some("One moment.".into()),
            filler_file: Some("hold.wav".into()),
            ..spec("end_call", "http://127.0.0.1:1/")
        },
    ];
    let e = HttpTools::load(&bad, &env, Path::new("/nonexistent")).unwrap_err();
    let fields: Vec<(usize, &str)> = e.iter().map(|e| (e.index, e.field)).collect();
    assert_eq!(
        fields,
        vec![
            (0, "parameters"),
            (0, "url"),
            (0, "timeout"),
            (0, "secret_env"),
            (1, "name"),
            (1, "filler_after_ms"),
            (1, "filler_file"),
        ],
        "{e:#?}"
    );
}

#[test]
fn arguments_are_checked_against_the_schema() {
    let tools = HttpTools::load(
        &[spec("lookup", "http://127.0.0.1:1/")],
        &env,
        Path::new("."),
    )
    .unwrap();
    let t = tools.get("lookup").unwrap();
    assert!(t.check_args(&json!({"order": "42"})).is_ok());
    let e = t.check_args(&json!({"order": "x1"})).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(t.check_args(&json!({})).is_err());
}

/// A server that answers each request with `status`, `content_type` and
/// `body` after `delay`, and hands back what it received.
async fn server(
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
) -> (String, tokio::task::JoinHandle<Option<(String, Vec<u8>)>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tool", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body_start, len) = loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                break (head, end + 4, len);
            }
        };
        while buf.len() < body_start + len {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        tokio::time::sleep(delay).await;
        let res = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(res.as_bytes()).await;
        Some((head, buf[body_start..].to_vec()))
    });
    (url, task)
}

fn ctx() -> ToolCallContext {
    ToolCallContext {
        session_id: "s-1".into(),
        direction: "inbound",
        caller: "+15550001111".into(),
        called: "+15550002222".into(),
        profile: "sales".into(),
        headers: BTreeMap::from([("X-Customer-Id".to_owned(), "C-42".to_owned())]),
    }
}

#[tokio::test]
async fn a_signed_request_carries_the_call_and_its_json_answer_goes_to_the_model() {
    let (url, srv) = server(
        200,
        "application/json",
        r#"{"status":"shipped"}"#.into(),
        Duration::ZERO,
    )
    .await;
    let tools = HttpTools::load(
        &[HttpToolSpec {
            secret_env: Some("TOOL_SECRET".into()),
            ..spec("lookup", &url)
        }],
        &env,
        Path::new("."),
    )
    .unwrap();
    let t = tools.get("lookup").unwrap();
    let out = call(&client(), t, &ctx(), &json!({"order": "42"}), 1_700_000_000).await;
    assert_eq!(
        out,
        ToolOutcome::Answered {
            result: json!({"status": "shipped"}),
            truncated: false
        }
    );
    let (head, body) = srv.await.unwrap().unwrap();
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-callbridge-signature: "))
        .expect("signature header");
    assert!(crate::signing::verify(b"s3cret", sig, &body, 1_700_000_010, 300).is_ok());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["tool"], "lookup");
    assert_eq!(v["arguments"], json!({"order": "42"}));
    assert_eq!(v["call"]["profile"], "sales");
    assert_eq!(v["call"]["headers"]["X-Customer-Id"], "C-42");
}

#[tokio::test]
async fn errors_and_timeouts_are_told_to_the_model_and_long_answers_are_cut() {
    let (url, _srv) = server(
        503,
        "text/plain",
        "down for maintenance".into(),
        Duration::ZERO,
    )
    .await;
    let tools = HttpTools::load(&[spec("lookup", &url)], &env, Path::new(".")).unwrap();
    let out = call(
        &client(),
        tools.get("lookup").unwrap(),
        &ctx(),
        &json!({"order": "1"}),
        0,
    )
    .await;
    assert_eq!(
        out,
        ToolOutcome::Failed("the tool answered HTTP 503: down for maintenance".into())
    );

    let (url, _srv) = server(200, "text/plain", "late".into(), Duration::from_secs(3)).await;
    let tools = HttpTools::load(
        &[HttpToolSpec {
            timeout: Some("300ms".into()),
            ..spec("lookup", &url)
        }],
        &env,
        Path::new("."),
    )
    .unwrap();
    let out = call(
        &client(),
        tools.get("lookup").unwrap(),
        &ctx(),
        &json!({"order": "1"}),
        0,
    )
    .await;
    assert_eq!(
        out,
        ToolOutcome::Failed("the tool did not answer within 300 ms".into())
    );

    let (url, _srv) = server(
        200,
        "text/plain",
        "x".repeat(MAX_RESULT + 10),
        Duration::ZERO,
    )
    .await;
    let tools = HttpTools::load(&[spec("lookup", &url)], &env, Path::new(".")).unwrap();
    let out = call(
        &client(),
        tools.get("lookup").unwrap(),
        &ctx(),
        &json!({"order": "1"}),
        0,
    )
    .await;
    match &out {
        ToolOutcome::Answered { result, truncated } => {
            assert!(*truncated);
            assert!(result["text"].as_str().unwrap().ends_with("[truncated]"));
        }
        other => panic!("{other:?}"),
    }
    let stored = out.for_event();
    assert!(stored["answer"].as_str().unwrap().len() <= MAX_STORED_RESULT + 20);

    // Nobody listening.
    let tools = HttpTools::load(
        &[spec("lookup", "http://127.0.0.1:9/")],
        &env,
        Path::new("."),
    )
    .unwrap();
    let out = call(
        &client(),
        tools.get("lookup").unwrap(),
        &ctx(),
        &json!({"order": "1"}),
        0,
    )
    .await;
    assert!(matches!(out, ToolOutcome::Failed(_)), "{out:?}");
}
