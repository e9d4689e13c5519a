//! What the tests run beside the agent: a mock Gemini Live server (the
//! llm-mock Gemini server, on its own tokio runtime) and an RTP tap, a UDP
//! listener that records what the agent sends to the caller's SDP address.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbridge_llm_mock::MockStats;
use callbridge_llm_mock::gemini::{GeminiScript, MockGemini};
use callbridge_rtp::g711::Law;
use callbridge_rtp::{PayloadType, RtpHeader, RtpPacket, SeqNo, Ssrc};

/// A mock Gemini Live server in the test process; stopped when dropped.
pub struct MockModel {
    mock: Option<MockGemini>,
    rt: Option<tokio::runtime::Runtime>,
}

impl MockModel {
    /// Starts a mock where every connection follows `script`.
    pub fn start(script: GeminiScript) -> MockModel {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mock = rt.block_on(MockGemini::start(script)).unwrap();
        MockModel {
            mock: Some(mock),
            rt: Some(rt),
        }
    }

    /// The endpoint for `model.endpoint`.
    pub fn url(&self) -> String {
        self.mock.as_ref().unwrap().url()
    }

    /// The server's counters.
    pub fn stats(&self) -> MockStats {
        self.mock.as_ref().unwrap().stats()
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        if let (Some(mock), Some(rt)) = (self.mock.take(), self.rt.take()) {
            let _ = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), mock.shutdown()).await
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// One packet the tap saw.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    /// When it arrived.
    pub at: Instant,
    /// Its payload type.
    pub pt: PayloadType,
    /// The RMS of its decoded G.711 payload (0 for other payloads).
    pub rms: f64,
}

/// A UDP listener on 127.0.0.1 that records RTP until stopped or its
/// deadline passes.
pub struct RtpTap {
    /// Its port (put it in the SDP offer).
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Heard>>>,
}

impl RtpTap {
    /// Starts listening for at most `limit`.
    pub fn start(limit: Duration) -> RtpTap {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            let mut heard = Vec::new();
            let mut buf = [0u8; 2048];
            let mut pcm = [0i16; 2048];
            while Instant::now() < deadline
                && !flag.load(Ordering::Relaxed)
                && heard.len() < 100_000
            {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(&buf[..n])) else {
                    continue;
                };
                let law = match p.payload_type() {
                    PayloadType::PCMU => Some(Law::MuLaw),
                    PayloadType::PCMA => Some(Law::ALaw),
                    _ => None,
                };
                let rms = match law {
                    Some(law) if law.decode(p.payload(), &mut pcm).is_ok() => {
                        let x = &pcm[..p.payload().len()];
                        let e: f64 = x.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
                        (e / x.len().max(1) as f64).sqrt()
                    }
                    _ => 0.0,
                };
                heard.push(Heard {
                    at: Instant::now(),
                    pt: p.payload_type(),
                    rms,
                });
            }
            heard
        });
        RtpTap {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns what it heard.
    pub fn finish(mut self) -> Vec<Heard> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for RtpTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One 20 ms PCMU packet (160 bytes of `byte`) with sequence number `seq`
/// and the matching timestamp.
pub fn pcmu_packet(seq: u16, ssrc: u32, byte: u8) -> Vec<u8> {
    let h = RtpHeader {
        marker: false,
        payload_type: PayloadType::PCMU,
        seq: SeqNo(seq),
        timestamp: u32::from(seq).wrapping_mul(160),
        ssrc: Ssrc(ssrc),
    };
    let mut out = vec![0u8; RtpHeader::encoded_len(160)];
    h.write_to(&[byte; 160], &mut out).unwrap();
    out
}

/// Receives every datagram waiting on the non-blocking `sock` and pushes
/// the mu-law payload RMS of each RTP packet (0.0 for one that does not
/// decode). Datagrams from `sock`'s own address are skipped: a test that
/// sprays a port range holding its own port would count its own packets.
pub fn drain_rms(sock: &UdpSocket, into: &mut Vec<f64>) {
    let mut buf = [0u8; 2048];
    let mut pcm = [0i16; 2048];
    let me = sock.local_addr().ok();
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        if Some(from) == me {
            continue;
        }
        let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(&buf[..n])) else {
            continue;
        };
        let len = p.payload().len().min(pcm.len());
        let rms = if Law::MuLaw
            .decode(&p.payload()[..len], &mut pcm[..len])
            .is_ok()
        {
            let e: f64 = pcm[..len].iter().map(|&s| f64::from(s).powi(2)).sum();
            (e / len.max(1) as f64).sqrt()
        } else {
            0.0
        };
        into.push(rms);
    }
}

/// A mock GPT-Live server in the test process; stopped when dropped.
pub struct MockLive {
    mock: Option<callbridge_llm_mock::gpt_live::MockGptLive>,
    rt: Option<tokio::runtime::Runtime>,
}

impl MockLive {
    /// Starts a mock where every connection follows `script`.
    pub fn start(script: callbridge_llm_mock::gpt_live::GptLiveScript) -> MockLive {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mock = rt
            .block_on(callbridge_llm_mock::gpt_live::MockGptLive::start(script))
            .unwrap();
        MockLive {
            mock: Some(mock),
            rt: Some(rt),
        }
    }

    /// The endpoint for `model.endpoint`.
    pub fn url(&self) -> String {
        self.mock.as_ref().unwrap().url()
    }

    /// The server's counters.
    pub fn stats(&self) -> MockStats {
        self.mock.as_ref().unwrap().stats()
    }

    /// What the agent sent it.
    pub fn log(&self) -> callbridge_llm_mock::gpt_live::GptLiveLog {
        self.mock.as_ref().unwrap().log()
    }
}

impl Drop for MockLive {
    fn drop(&mut self) {
        if let (Some(mock), Some(rt)) = (self.mock.take(), self.rt.take()) {
            let _ = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), mock.shutdown()).await
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
