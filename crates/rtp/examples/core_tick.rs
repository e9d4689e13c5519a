//! Runs one call's `MediaCore` for `N` ticks (default 10,000) on a
//! simulated clock, each tick with one received packet and one frame to
//! play: the media core's work per 20 ms frame, both ways, without IO.
//! For instruction counts (docs/PERFORMANCE.md, issue 17):
//!
//! ```sh
//! cargo build --release -p callbridge-rtp --example core_tick
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/core.cg \
//!   target/release/examples/core_tick 10000
//! ```
//!
//! Instructions per frame = total / N (the setup is a few thousand).

use std::time::Instant;

use callbridge_rtp::g711::Law;
use callbridge_rtp::media::{MediaConfig, MediaCore, MediaEvent, TRANSMIT_BUFFER};
use callbridge_rtp::{PayloadType, RtpHeader, SeqNo, Ssrc};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let peer = "127.0.0.1:4000".parse().expect("a literal address");
    let cfg = MediaConfig::new(Law::MuLaw, Some(peer), Ssrc(1), SeqNo(0), 0);
    let t0 = Instant::now();
    let mut core = MediaCore::new(&cfg, t0, false);
    let mut packet = [0u8; 172];
    let mut out = [0u8; TRANSMIT_BUFFER];
    let mut heard = 0u64;
    for k in 0..n {
        let h = RtpHeader {
            marker: k == 0,
            payload_type: PayloadType::PCMU,
            seq: SeqNo(k as u16),
            timestamp: k.wrapping_mul(160),
            ssrc: Ssrc(77),
        };
        let len = h.write_to(&[0x80; 160], &mut packet).unwrap_or(0);
        let Some(now) = core.poll_timeout() else {
            break;
        };
        core.handle_datagram(now, &packet[..len], peer);
        core.play([1000; 160]);
        while let Some(t) = core.handle_tick(now, &mut out) {
            std::hint::black_box(&out[..t.len]);
        }
        while let Some(ev) = core.poll_event() {
            if let MediaEvent::Audio { pcm, .. } = ev {
                heard += u64::from(pcm[0] != 0);
            }
        }
    }
    println!(
        "{n} ticks, {heard} with caller audio, {:?}",
        core.stats().packets_out
    );
}
