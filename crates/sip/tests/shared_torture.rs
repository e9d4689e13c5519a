//! Runs every file of the shared RFC 4475 corpus (`../shared/sip-torture/`)
//! when it exists: valid messages must parse, invalid ones must be rejected
//! (requests that can be answered get 400, or 505 for `badvers`).

use bytes::Bytes;
use callbridge_sip::{Disposition, Message, StatusCode};
use std::path::PathBuf;

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CALLBRIDGE_SIP_TORTURE") {
        return Some(PathBuf::from(dir));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // crates/sip -> workspace root -> its parent holds `shared/` for /work/main,
    // and worktrees at /work/wt/<name> need one level more.
    [
        manifest.join("../../../shared/sip-torture"),
        manifest.join("../../../../shared/sip-torture"),
    ]
    .into_iter()
    .find(|p| p.join("README.md").is_file())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Valid,
    Invalid,
    /// Parses, or is refused with a 400 answer: RFC 4475 section 3.3 asks
    /// for a 400 to `insuf` (missing headers), `mcl01` (two Content-Length
    /// values) and `multi01` (repeated single-value headers).
    ParsesOrRefused,
}

fn verdict(name: &str) -> Verdict {
    const VALID: &[&str] = &[
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
        "badbranch",
        "inv2543",
        "unkscm",
        "novelsc",
        "unksm2",
        "bext01",
        "invut",
        "regaut01",
        "bcast",
        "zeromf",
        "cparam01",
        "cparam02",
        "regescrt",
        "sdp01",
    ];
    const REFUSED: &[&str] = &["insuf", "mcl01", "multi01"];
    if VALID.contains(&name) {
        Verdict::Valid
    } else if REFUSED.contains(&name) {
        Verdict::ParsesOrRefused
    } else {
        Verdict::Invalid
    }
}

#[test]
fn every_shared_torture_file_gets_the_rfc_4475_verdict() {
    let Some(dir) = corpus_dir() else {
        println!("skipping: ../shared/sip-torture not found (set CALLBRIDGE_SIP_TORTURE)");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .dat files in {}", dir.display());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = Bytes::from(std::fs::read(path).unwrap());
        let result = Message::parse(bytes);
        let ok = match (verdict(&name), &result) {
            (Verdict::Valid, r) => r.is_ok(),
            (Verdict::Invalid, Ok(_)) => false,
            (Verdict::Invalid, Err(e)) => match e.disposition() {
                Disposition::Respond(s) if name == "badvers" => {
                    s == StatusCode::VERSION_NOT_SUPPORTED
                }
                Disposition::Respond(s) => s == StatusCode::BAD_REQUEST,
                Disposition::Drop => e.method().is_none(),
            },
            (Verdict::ParsesOrRefused, Ok(_)) => true,
            (Verdict::ParsesOrRefused, Err(e)) => {
                e.disposition() == Disposition::Respond(StatusCode::BAD_REQUEST)
            }
        };
        if !ok {
            failures.push(format!(
                "{name}: {:?} -> {:?}",
                verdict(&name),
                result.map(|_| "parsed")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "torture failures:\n{}",
        failures.join("\n")
    );
}
