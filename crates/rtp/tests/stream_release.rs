//! Opening and closing 1,000 media streams leaks neither ports, file
//! descriptors nor the media clock's thread. Alone in its test binary so
//! that no other test opens files (or streams) while they are counted.

use std::time::{Duration, Instant};

use callbridge_rtp::clock::clock_threads;
use callbridge_rtp::g711::Law;
use callbridge_rtp::ports::{PortPool, PortPoolConfig};
use callbridge_rtp::stream::{MediaConfig, MediaStream};
use callbridge_rtp::{SeqNo, Ssrc};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn thousand_streams_open_and_close_without_leaking_ports_fds_or_the_clock_thread() {
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
    for i in 0..1000u32 {
        let remote = Some("127.0.0.1:9".parse().unwrap());
        let cfg = MediaConfig::new(Law::MuLaw, remote, Ssrc(i), SeqNo(0), 0);
        let s = MediaStream::open(&pool, cfg).unwrap();
        if i % 2 == 0 {
            s.close().await;
        } else {
            // Dropping aborts the task; yield so the runtime drops it.
            drop(s);
            tokio::task::yield_now().await;
        }
    }
    // Let aborted tasks finish dropping.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.available(), ports_before);
    assert_eq!(open_fds(), fds_before);
    // The clock forgets a stopped stream at its next deadline and its
    // thread leaves with the last one (a period later; 10 s is generous).
    let deadline = Instant::now() + Duration::from_secs(10);
    while clock_threads() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        clock_threads(),
        0,
        "the media clock thread outlived its streams"
    );
}
