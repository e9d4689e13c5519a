//! Converts audio between s16le, ulaw, alaw and wav through the same G.711
//! and streaming resampler code a call uses (20 ms frames).
//!
//! ```text
//! cargo run --release -p callbridge-rtp --example transcode -- \
//!     --from wav --to ulaw < prompt.wav > prompt.ulaw
//! # the agent's side of a call recording, as a mono WAV
//! cargo run --release -p callbridge-rtp --example transcode -- \
//!     --from wav --to wav --channel agent < call.wav > agent.wav
//! ```
//!
//! `--help` prints the usage.
//!
//! Errors are printed as `transcode: ...` and exit with status 2.

fn main() {
    let code = callbridge_rtp::transcode::run_cli(
        std::env::args().skip(1),
        std::io::stdin().lock(),
        std::io::BufWriter::new(std::io::stdout().lock()),
        std::io::stderr().lock(),
    );
    std::process::exit(code);
}
