//! Runs every file of the shared RFC 4475 corpus (`../shared/sip-torture/`)
//! when it exists: valid messages must parse, invalid ones must be rejected
//! (requests that can be answered get 400, or 505 for `badvers`).

use bytes::Bytes;
use callbridge_sip::{Branch, CallId, Disposition, HeaderName, Message, Method, StatusCode, Tag};
use std::path::PathBuf;

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CALLBRIDGE_SIP_TORTURE") {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return Some(dir);
        }
        println!(
            "CALLBRIDGE_SIP_TORTURE={} is not a directory",
            dir.display()
        );
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

/// The values RFC 4475 section 3.1.1 describes for the valid messages.
fn check_values(name: &str, m: &Message) {
    let h = m.headers();
    let req = || match m {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name}: expected a request"),
    };
    match name {
        "wsinv" => {
            assert_eq!(h.to_addr().unwrap().tag(), Some(Tag::from("1918181833n")));
            let from = h.from_addr().unwrap();
            assert_eq!(
                from.display_name().as_deref(),
                Some(&br#"J Rosenberg \""#[..])
            );
            assert_eq!(from.tag(), Some(Tag::from("98asjd8")));
            assert_eq!(h.max_forwards().unwrap(), Some(68));
            assert_eq!(h.cseq().unwrap().seq, 9);
            let vias: Vec<_> = h.vias().map(Result::unwrap).collect();
            assert_eq!(vias.len(), 3);
            assert_eq!(vias[1].branch(), Some(Branch::from("z9hG4bK9ikj8")));
            assert_eq!(vias[2].branch(), Some(Branch::from("z9hG4bK30239")));
            let contact = &h.contacts().unwrap()[0];
            assert_eq!(
                contact.display_name().as_deref(),
                Some(&br#"Quoted string """#[..])
            );
            assert_eq!(
                contact.params().get("newparam").flatten().as_deref(),
                Some(&b"newvalue"[..])
            );
            assert_eq!(h.routes().unwrap().len(), 1);
            assert_eq!(m.body().len(), 150);
        }
        "esc01" => {
            let uri = req().uri().as_sip().unwrap().clone();
            assert_eq!(
                uri.user_unescaped().as_deref(),
                Some(&b"sips:user@example.com"[..])
            );
            let to = h.to_addr().unwrap();
            assert_eq!(
                to.uri().as_sip().unwrap().user_unescaped().as_deref(),
                Some(&b"user"[..])
            );
            let from = h.from_addr().unwrap();
            assert_eq!(
                from.uri().as_sip().unwrap().user_unescaped().as_deref(),
                Some(&b"I have spaces"[..])
            );
            let contact = &h.contacts().unwrap()[0];
            assert_eq!(
                contact.uri().as_sip().unwrap().user_unescaped().as_deref(),
                Some(&b"caller"[..])
            );
        }
        "escnull" => {
            let to = h.to_addr().unwrap();
            assert_eq!(
                to.uri().as_sip().unwrap().user_unescaped().as_deref(),
                Some(&b"null-\0-null"[..])
            );
            assert_eq!(h.contacts().unwrap().len(), 2);
        }
        "esc02" => {
            assert_eq!(req().method(), &Method::from_token(b"RE%47IST%45R"));
            // C%6Fntact is an unknown header, not a Contact.
            assert_eq!(h.contacts().unwrap().len(), 2);
            assert!(h.get(&HeaderName::from_bytes(b"C%6Fntact")).is_some());
        }
        "intmeth" => {
            assert_eq!(
                req().method().as_bytes(),
                b"!interesting-Method0123456789_*+`.%indeed'~"
            );
            assert_eq!(
                h.call_id().unwrap(),
                CallId::from(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#)
            );
            assert_eq!(h.max_forwards().unwrap(), Some(255));
        }
        "lwsdisp" => {
            assert_eq!(
                h.from_addr().unwrap().display_name().as_deref(),
                Some(&b"caller"[..])
            );
        }
        "dblreq" => {
            assert_eq!(req().method(), &Method::Register);
            assert!(m.body().is_empty());
        }
        "semiuri" => {
            let uri = req().uri().as_sip().unwrap().clone();
            assert_eq!(
                uri.user().map(|u| &u[..]),
                Some(&b"user;par=u%40example.net"[..])
            );
            assert!(uri.params().is_empty());
            assert_eq!(h.values(&HeaderName::Accept).count(), 6);
        }
        "transports" => {
            let t: Vec<_> = h.vias().map(|v| v.unwrap().transport().clone()).collect();
            assert_eq!(
                t,
                ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"].map(|s| Bytes::from_static(s.as_bytes()))
            );
        }
        "mpart01" => {
            assert_eq!(m.body().len(), 553);
            assert!(
                h.content_type()
                    .unwrap()
                    .unwrap()
                    .kind()
                    .eq_ignore_ascii_case(b"multipart")
            );
        }
        "unreason" => {
            let Message::Response(r) = m else {
                panic!("response")
            };
            assert_eq!(r.status(), StatusCode::OK);
            assert!(std::str::from_utf8(r.reason()).is_ok());
            assert_eq!(m.body().len(), 154);
        }
        "noreason" => {
            let Message::Response(r) = m else {
                panic!("response")
            };
            assert_eq!(r.status(), StatusCode::TRYING);
            assert!(r.reason().is_empty());
        }
        "longreq" => {
            assert!(h.vias().count() > 30);
            assert!(
                h.to_addr()
                    .unwrap()
                    .display_name()
                    .is_some_and(|d| d.len() > 90)
            );
            assert_eq!(m.body().len(), 150);
        }
        _ => {}
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
            (Verdict::Valid, Ok(m)) => {
                check_values(&name, m);
                true
            }
            (Verdict::Valid, Err(_)) => false,
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
