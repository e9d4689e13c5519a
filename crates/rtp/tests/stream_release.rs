//! Opening and closing 1,000 media streams leaks neither ports, file
//! descriptors nor the engine's threads. Alone in its test binary so that
//! no other test opens files (or streams) while they are counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_rtp::clock::SystemClock;
use callbridge_rtp::engine::{EngineConfig, MediaEngine};
use callbridge_rtp::g711::Law;
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaStream};
use callbridge_rtp::{SeqNo, Ssrc};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn thousand_streams_open_and_close_without_leaking_ports_fds_or_engine_threads() {
    if std::fs::read_dir("/proc/self/fd").is_err() {
        eprintln!("skipping: /proc/self/fd not available");
        return;
    }
    let pool = PortPool::new(PortPoolConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        range: 43000..=43199,
        rtcp: true,
    })
    .unwrap();
    let ports_before = pool.available();
    let fds_before = open_fds();
    let threads_before = threads();
    let engine = MediaEngine::new(EngineConfig::default(), Arc::new(SystemClock)).unwrap();
    for i in 0..1000u32 {
        let remote = Some("127.0.0.1:9".parse().unwrap());
        let cfg = MediaConfig::new(Law::MuLaw, remote, Ssrc(i), SeqNo(0), 0);
        let s = MediaStream::open(&engine, &pool, cfg).unwrap();
        if i % 2 == 0 {
            s.close().await;
        } else {
            // Dropping lets the engine go of it at its next pass.
            drop(s);
        }
    }
    // Dropped streams are let go of at the engine's next pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.available() < ports_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.available(), ports_before);
    drop(engine);
    assert_eq!(open_fds(), fds_before);
    assert_eq!(
        threads(),
        threads_before,
        "an engine thread outlived its engine"
    );
}
