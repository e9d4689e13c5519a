//! `/openapi.json` against the router: every API route in the router's
//! own table is described, and every described operation is routed (a
//! request to it reaches a handler: neither the fallback's 404 nor 405).
//! A new route under `/api/` fails here until its handler carries a
//! `#[utoipa::path]` and is listed in `openapi::ApiDoc`.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::{Callee, rig};

/// The paths the description must cover: the API and the probes. The
/// console's pages and `/carrier/...` are left out on purpose (see
/// `openapi`'s module doc).
fn in_scope(path: &str) -> bool {
    path.starts_with("/api/")
        || path == "/api"
        || ["/livez", "/readyz", "/metrics", "/openapi.json"].contains(&path)
}

/// The paths of the router's own route table. axum has no public route
/// listing, but a `Router`'s `Debug` prints its table (matchit's
/// path-to-route map); the paths are its quoted strings that start with
/// `/`. The known routes asserted below make this fail loudly, not pass
/// vacuously, should that output change.
fn routed_paths(app: &axum::Router) -> BTreeSet<String> {
    let table = format!("{app:?}");
    table
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

/// `(path, methods)` of the description.
fn described(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect()
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0b5a1d8e-0000-4000-8000-000000000000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_is_described_and_every_description_is_routed() {
    let r = rig(Callee::Ring, |_| {}).await;
    let a = r.req(Method::GET, "/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let described = described(&doc);

    let routed: BTreeSet<String> = routed_paths(&r.app)
        .into_iter()
        .filter(|p| in_scope(p))
        .collect();
    for known in [
        "/api/sessions",
        "/api/calls/{id}",
        "/livez",
        "/openapi.json",
    ] {
        assert!(routed.contains(known), "{known} not found in {routed:?}");
    }
    let missing: Vec<_> = routed
        .iter()
        .filter(|p| !described.contains_key(*p))
        .collect();
    assert!(missing.is_empty(), "routed but not described: {missing:?}");

    let all = ["get", "post", "put", "patch", "delete"];
    for (path, methods) in &described {
        assert!(routed.contains(path), "described but not routed: {path}");
        for m in all {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let a = r.req(method, &concrete(path), Some(&r.admin)).await;
            let fallback = a.status == StatusCode::NOT_FOUND
                && a.json()["error"].as_str() == Some("no such endpoint");
            if methods.contains(m) {
                assert!(
                    a.status != StatusCode::METHOD_NOT_ALLOWED && !fallback,
                    "{m} {path} is described but not routed ({})",
                    a.status
                );
            } else {
                assert_eq!(
                    a.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is routed but not described"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_carries_the_wire_types_and_the_bearer_scheme() {
    let r = rig(Callee::Ring, |_| {}).await;
    let doc = r.req(Method::GET, "/openapi.json", None).await.json();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "CallRequest",
        "CallStatus",
        "SessionView",
        "ErrorBody",
        "Health",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    // Field docs come from the wire types' doc comments.
    assert!(
        schemas["CallRequest"]["properties"]["to"]["description"]
            .as_str()
            .unwrap()
            .contains("E.164")
    );
    // The audio/text token split (schema v14) is described.
    for k in ["input_audio_tokens", "output_text_tokens"] {
        assert!(
            schemas["SessionView"]["properties"][k]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{k} undescribed"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let list = &doc["paths"]["/api/sessions"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["number", "since", "until", "cursor"] {
        assert!(params.contains(&p), "{p} not in {params:?}");
    }
}
