//! SRTP's cost per 20 ms G.711 frame, for instruction counts: protects
//! (or unprotects) `N` RTP packets of a 160-byte PCMU payload (172 bytes
//! with the header) with one suite. The packets are built (and, for
//! `unprotect`, protected) outside the measured function, so callgrind's
//! `--toggle-collect` counts the SRTP work alone (docs/PERFORMANCE.md):
//!
//! ```sh
//! cargo build --release -p callbridge-rtp --example srtp_frame
//! for mode in protect unprotect; do for suite in 80 32 gcm; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/srtp.cg \
//!     --toggle-collect='srtp_frame::run' \
//!     target/release/examples/srtp_frame $mode $suite 10000 2>&1 | grep Collected
//! done; done   # Collected / N = instructions per frame
//! ```

use callbridge_rtp::srtp::{MAX_SRTP_PACKET, SrtpKey, SrtpKeys, SrtpSession, SrtpSuite};
use callbridge_rtp::{PayloadType, RtpHeader, SeqNo, Ssrc};

/// What is measured: protect (or unprotect) each packet in turn.
#[inline(never)]
fn run(session: &mut SrtpSession, packets: &mut [(Vec<u8>, usize)], protect: bool) -> usize {
    let mut out = [0u8; MAX_SRTP_PACKET];
    let mut total = 0;
    for (buf, len) in packets.iter_mut() {
        let n = if protect {
            session.protect_rtp(buf, *len)
        } else {
            session.unprotect_rtp(&buf[..*len], &mut out)
        };
        total += n.unwrap_or(0);
    }
    std::hint::black_box(&out);
    total
}

fn main() {
    let mut args = std::env::args().skip(1);
    let protect = args.next().as_deref() != Some("unprotect");
    let suite = match args.next().as_deref() {
        Some("32") => SrtpSuite::AesCm128HmacSha1_32,
        Some("gcm") => SrtpSuite::AeadAes128Gcm,
        _ => SrtpSuite::AesCm128HmacSha1_80,
    };
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let key = |b: u8| SrtpKey::new(suite, &vec![b; suite.master_len()]).expect("a valid key");
    let session = |a: u8, b: u8| {
        SrtpSession::new(&SrtpKeys::new(key(a), key(b)).expect("valid keys")).expect("a session")
    };
    let (mut tx, mut rx) = (session(1, 2), session(2, 1));
    let mut packets: Vec<(Vec<u8>, usize)> = (0..n)
        .map(|k| {
            let mut buf = vec![0u8; MAX_SRTP_PACKET];
            let h = RtpHeader {
                marker: k == 0,
                payload_type: PayloadType::PCMU,
                seq: SeqNo(k as u16),
                timestamp: k.wrapping_mul(160),
                ssrc: Ssrc(77),
            };
            let len = h
                .write_to(&[0x55; 160], &mut buf)
                .expect("room for 172 bytes");
            (buf, len)
        })
        .collect();
    let total = if protect {
        run(&mut tx, &mut packets, true)
    } else {
        for (buf, len) in &mut packets {
            *len = tx.protect_rtp(buf, *len).expect("protected");
        }
        run(&mut rx, &mut packets, false)
    };
    println!(
        "{} {suite:?}: {n} packets, {total} bytes out",
        if protect { "protect" } else { "unprotect" }
    );
}
