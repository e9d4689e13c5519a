//! End-to-end: trunk registration with a registrar named by its domain
//! (issue 20, RFC 3263 section 4.3 with RFC 3261 section 10) on the real
//! `agent` binary, against a DNS stub on loopback: the first SRV target
//! answers 503 and the second registers us; after the zone changes, the
//! next refresh is located again and goes to the new first target.

mod support_agent;

use std::time::Duration;

use support_agent::dns::{DnsStub, RawRegistrar, a, srv_short};
use support_agent::{Agent, Opts};

#[test]
fn register_fails_over_after_a_503_and_each_refresh_follows_the_zone() {
    let refuser = RawRegistrar::start(503);
    let second = RawRegistrar::start(200);
    let third = RawRegistrar::start(200);
    let zone = |first: (u16, &RawRegistrar), then: (u16, &RawRegistrar)| {
        vec![
            srv_short(
                "_sip._udp.trunk.test.",
                first.0,
                first.1.addr.port(),
                "a.trunk.test.",
            ),
            srv_short(
                "_sip._udp.trunk.test.",
                then.0,
                then.1.addr.port(),
                "b.trunk.test.",
            ),
            a("a.trunk.test."),
            a("b.trunk.test."),
        ]
    };
    let dns = DnsStub::start(zone((10, &refuser), (20, &second)));
    // A registrar named by its domain, a short expiry: a refresh (and a
    // new location) every 2 s.
    let agent = Agent::start(Opts {
        sip_extra: format!(
            "dns_servers = [\"{}\"]\n\n[sip.trunk]\nregistrar = \"sip:trunk.test\"\n\
             username = \"cb-trunk\"\nregister_expires = \"4s\"\n",
            dns.addr
        ),
        env: vec![("CALLBRIDGE_SIP_TRUNK_PASSWORD".into(), "pw".into())],
        ..Opts::default()
    });
    let registered = || agent.metrics().value("callbridge_trunk_registrations") == Some(1.0);
    agent.wait_for(
        "registered via the second SRV target after the first's 503",
        Duration::from_secs(15),
        || (registered() && second.registers() >= 1).then_some(()),
    );
    assert!(refuser.registers() >= 1, "the first target was tried first");
    assert_eq!(third.registers(), 0);
    // The zone changes: the next refresh is located again and goes to
    // the new first target.
    dns.set(zone((5, &third), (20, &second)));
    agent.wait_for(
        "a refresh to the new first target",
        Duration::from_secs(15),
        || (third.registers() >= 1).then_some(()),
    );
    let (refused, seconds) = (refuser.registers(), second.registers());
    agent.wait_for(
        "more refreshes to the new first target",
        Duration::from_secs(15),
        || (third.registers() >= 2).then_some(()),
    );
    assert!(registered(), "still registered");
    assert_eq!(refuser.registers(), refused, "the old zone is not used");
    assert_eq!(second.registers(), seconds, "no failover from a 200");
}
