//! The HTTP summarizer end to end, one provider's text API at a time,
//! against a one-request local server ([`super::test_server`]): what is
//! sent (URL, auth header, body), what is parsed, and every failure mapped
//! to a `Provider` error that never shows the key.

use std::time::Duration;

use super::test_server::{Canned, serve_one};
use super::{HttpSummarizer, Summarizer, SummaryError, TextApi, TranscriptLine, summarizer_for};
use crate::{Provider, TlsRoots};

/// A Gemini summarizer on the bundled roots (the tests talk plain HTTP;
/// the roots must not depend on the host's store).
fn gemini(key: &str) -> Result<HttpSummarizer, SummaryError> {
    HttpSummarizer::with_roots(TextApi::Gemini, key, TlsRoots::Bundled)
}

/// An OpenAI summarizer on the bundled roots.
fn openai(key: &str) -> Result<HttpSummarizer, SummaryError> {
    HttpSummarizer::with_roots(TextApi::OpenAi, key, TlsRoots::Bundled)
}

#[tokio::test]
async fn summarizer_for_builds_each_provider_with_endpoint_and_model() {
    let line = [TranscriptLine {
        caller: true,
        text: "hello".into(),
    }];
    let (base, req) = serve_one(Canned::json(
        200,
        r#"{"candidates":[{"content":{"parts":[{"text":"g"}]}}]}"#,
    ))
    .await;
    let s = summarizer_for(
        Provider::Gemini,
        Some(&base),
        Some("gm"),
        "k".into(),
        TlsRoots::Bundled,
    )
    .unwrap();
    assert_eq!(s.summarize(&line).await.unwrap().text, "g");
    assert_eq!(req.await.unwrap().path, "/v1beta/models/gm:generateContent");

    let (base, req) = serve_one(Canned::json(
        200,
        r#"{"choices":[{"message":{"content":"o"}}]}"#,
    ))
    .await;
    let s = summarizer_for(
        Provider::OpenAi,
        Some(&base),
        Some("om"),
        "k".into(),
        TlsRoots::Bundled,
    )
    .unwrap();
    assert_eq!(s.summarize(&line).await.unwrap().text, "o");
    assert_eq!(req.await.unwrap().json()["model"], "om");
}

/// Summarizes through `s` at an `https://` endpoint that reads the first
/// bytes and hangs up: they are a TLS handshake record, and the failed
/// handshake is a Provider error.
async fn starts_a_tls_handshake(s: HttpSummarizer) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 3];
        sock.read_exact(&mut first).await.unwrap();
        first
        // Dropping the socket fails the handshake.
    });
    let s = s
        .with_endpoint(format!("https://{addr}"))
        .with_timeout(Duration::from_secs(10));
    let line = [TranscriptLine {
        caller: true,
        text: "hello".into(),
    }];
    let err = s.summarize(&line).await.unwrap_err();
    assert!(matches!(err, SummaryError::Provider(_)), "{err:?}");
    let first = server.await.unwrap();
    assert_eq!(first[0], 0x16, "TLS handshake record");
    assert_eq!(first[1], 0x03, "TLS major version");
}

/// An `https://` endpoint really goes through rustls (aws-lc-rs provider, no
/// process-wide default needed), on the bundled roots.
#[tokio::test]
async fn https_endpoint_starts_a_tls_handshake() {
    starts_a_tls_handshake(openai("k").unwrap()).await;
}

/// The default roots are the system trust store, and TLS works on them
/// (this host has one: the CI machine's ca-certificates).
#[tokio::test]
async fn default_roots_are_the_system_store_and_start_a_tls_handshake() {
    starts_a_tls_handshake(HttpSummarizer::new(TextApi::OpenAi, "k").unwrap()).await;
}

#[test]
fn defaults_are_the_public_endpoints() {
    let g = gemini("k").unwrap();
    assert_eq!(g.model(), "gemini-2.5-flash");
    assert_eq!(g.api(), TextApi::Gemini);
    assert_eq!(
        TextApi::Gemini.default_endpoint(),
        "https://generativelanguage.googleapis.com"
    );
    let o = openai("k").unwrap();
    assert_eq!(o.model(), "gpt-4o-mini");
    assert_eq!(TextApi::OpenAi.default_endpoint(), "https://api.openai.com");
}

// Gemini `generateContent`.

fn gemini_transcript() -> Vec<TranscriptLine> {
    vec![
        TranscriptLine {
            caller: true,
            text: "I'd like to move my appointment to Friday.".into(),
        },
        TranscriptLine {
            caller: false,
            text: "Done, Friday at 10.".into(),
        },
    ]
}

const GEMINI_OK: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
    {"text":"Caller moved the appointment "},{"text":"to Friday 10:00."}]},
    "finishReason":"STOP"}],
    "usageMetadata":{"promptTokenCount":412,"candidatesTokenCount":38,"totalTokenCount":450,
    "promptTokensDetails":[{"modality":"TEXT","tokenCount":412}],
    "candidatesTokensDetails":[{"modality":"TEXT","tokenCount":38}]},
    "modelVersion":"gemini-test"}"#;

#[tokio::test]
async fn success_posts_generate_content_with_header_key_and_parses_parts() {
    let (base, req) = serve_one(Canned::json(200, GEMINI_OK)).await;
    let s = gemini("g-secret-key")
        .unwrap()
        .with_endpoint(&base)
        .with_model("models/gemini-test");
    let summary = s.summarize(&gemini_transcript()).await.unwrap();
    assert_eq!(
        summary.text,
        "Caller moved the appointment to Friday 10:00."
    );
    assert_eq!(summary.provider, "gemini");
    let u = summary.usage.expect("generateContent reports its usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (412, 38, 450)
    );

    let req = req.await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1beta/models/gemini-test:generateContent");
    assert!(!req.path.contains("key"), "key must not be in the URL");
    assert_eq!(req.header("x-goog-api-key"), Some("g-secret-key"));
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    let system = body
        .pointer("/system_instruction/parts/0/text")
        .and_then(|t| t.as_str())
        .unwrap();
    assert!(system.contains("summar"), "{system}");
    assert_eq!(
        body.pointer("/contents/0/parts/0/text")
            .and_then(|t| t.as_str()),
        Some("Caller: I'd like to move my appointment to Friday.\nAgent: Done, Friday at 10.\n")
    );
    assert_eq!(
        body.pointer("/contents/0/role").and_then(|t| t.as_str()),
        Some("user")
    );
}

#[tokio::test]
async fn http_401_is_a_provider_error_with_status_and_without_the_key() {
    let body = r#"{"error":{"code":401,"message":"API key g-secret-key not valid","status":"UNAUTHENTICATED"}}"#;
    let (base, _req) = serve_one(Canned::json(401, body)).await;
    let s = gemini("g-secret-key").unwrap().with_endpoint(&base);
    let err = s.summarize(&gemini_transcript()).await.unwrap_err();
    let SummaryError::Provider(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains("not valid"), "{msg}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{s:?}")] {
        assert!(!shown.contains("g-secret-key"), "{shown}");
    }
}

#[tokio::test]
async fn gemini_malformed_body_is_a_provider_error() {
    let (base, _req) = serve_one(Canned::json(200, "{not json")).await;
    let s = gemini("k").unwrap().with_endpoint(&base);
    let err = s.summarize(&gemini_transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Provider(ref m) if m.contains("JSON")),
        "{err}"
    );
}

#[tokio::test]
async fn answer_without_text_reports_the_block_reason() {
    let body = r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
    let (base, _req) = serve_one(Canned::json(200, body)).await;
    let s = gemini("k").unwrap().with_endpoint(&base);
    let err = s.summarize(&gemini_transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Provider(ref m) if m.contains("SAFETY")),
        "{err}"
    );
}

#[tokio::test]
async fn gemini_empty_transcript_is_empty_without_a_request() {
    // An endpoint nothing listens on: a request would fail as Provider.
    let s = gemini("k").unwrap().with_endpoint("http://127.0.0.1:9");
    assert_eq!(s.summarize(&[]).await, Err(SummaryError::Empty));
}

#[tokio::test]
async fn key_unusable_as_a_header_is_an_error_that_does_not_show_it() {
    let s = gemini("bad\nkey-part")
        .unwrap()
        .with_endpoint("http://127.0.0.1:9");
    let err = s.summarize(&gemini_transcript()).await.unwrap_err();
    assert!(matches!(err, SummaryError::Provider(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("key-part"), "{err:?}");
}

// OpenAI Chat Completions.

fn openai_transcript() -> Vec<TranscriptLine> {
    vec![
        TranscriptLine {
            caller: true,
            text: "My internet is down.".into(),
        },
        TranscriptLine {
            caller: false,
            text: "A technician will call you tomorrow.".into(),
        },
    ]
}

const OPENAI_OK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test",
    "choices":[{"index":0,"message":{"role":"assistant",
    "content":" Outage reported; technician callback tomorrow. ","refusal":null},
    "finish_reason":"stop"}],
    "usage":{"prompt_tokens":390,"completion_tokens":41,"total_tokens":431,
    "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
    "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}"#;

#[tokio::test]
async fn success_posts_chat_completion_with_bearer_key_and_parses_content() {
    let (base, req) = serve_one(Canned::json(200, OPENAI_OK)).await;
    let s = openai("sk-secret")
        .unwrap()
        .with_endpoint(format!("{base}/"))
        .with_model("gpt-test");
    let summary = s.summarize(&openai_transcript()).await.unwrap();
    assert_eq!(
        summary.text,
        "Outage reported; technician callback tomorrow."
    );
    assert_eq!(summary.provider, "openai");
    let u = summary.usage.expect("a chat completion reports its usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (390, 41, 431)
    );

    let req = req.await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer sk-secret"));
    let body = req.json();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("summar")
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(
        body["messages"][1]["content"],
        "Caller: My internet is down.\nAgent: A technician will call you tomorrow.\n"
    );
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn http_500_is_a_provider_error_with_status_and_without_the_key() {
    let (base, _req) = serve_one(Canned::json(500, "upstream broke for sk-secret")).await;
    let s = openai("sk-secret").unwrap().with_endpoint(&base);
    let err = s.summarize(&openai_transcript()).await.unwrap_err();
    let SummaryError::Provider(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("HTTP 500"), "{msg}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{s:?}")] {
        assert!(!shown.contains("sk-secret"), "{shown}");
    }
}

#[tokio::test]
async fn openai_malformed_body_is_a_provider_error() {
    let (base, _req) = serve_one(Canned::json(200, r#"{"choices":[]}"#)).await;
    let s = openai("k").unwrap().with_endpoint(&base);
    let err = s.summarize(&openai_transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Provider(ref m) if m.contains("no summary")),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let (base, _req) = serve_one(Canned::bytes(200, big.into_bytes())).await;
    let s = openai("k")
        .unwrap()
        .with_endpoint(&base)
        .with_max_response_bytes(1024);
    let err = s.summarize(&openai_transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Provider(ref m) if m.contains("larger than 1024")),
        "{err}"
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let (base, _req) = serve_one(Canned::silent()).await;
    let s = openai("k")
        .unwrap()
        .with_endpoint(&base)
        .with_timeout(Duration::from_millis(200));
    let err = s.summarize(&openai_transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Provider(ref m) if m.contains("timed out")),
        "{err}"
    );
}

#[tokio::test]
async fn long_transcript_is_sent_truncated_keeping_the_end() {
    let (base, req) = serve_one(Canned::json(200, OPENAI_OK)).await;
    let s = openai("k")
        .unwrap()
        .with_endpoint(&base)
        .with_max_transcript_bytes(300);
    let mut t: Vec<_> = (0..200)
        .map(|i| TranscriptLine {
            caller: true,
            text: format!("filler line {i}"),
        })
        .collect();
    t.push(TranscriptLine {
        caller: false,
        text: "Final answer.".into(),
    });
    s.summarize(&t).await.unwrap();
    let sent = req.await.unwrap().json()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sent.len() <= 300, "{}", sent.len());
    assert!(sent.ends_with("Agent: Final answer.\n"));
    assert!(!sent.contains("filler line 0\n"));
}

#[tokio::test]
async fn openai_empty_transcript_is_empty_without_a_request() {
    let s = openai("k").unwrap().with_endpoint("http://127.0.0.1:9");
    assert_eq!(s.summarize(&[]).await, Err(SummaryError::Empty));
}
