//! RFC 3263 on loopback for the end-to-end tests (issue 20): a DNS stub
//! answering from a table a test may change, built with hickory-proto
//! (`sip.dns_servers` points the agent at it; no real DNS anywhere), and
//! raw UDP SIP peers that refuse INVITEs or answer REGISTERs with a
//! fixed status.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub type Zone = HashMap<(String, RecordType), Vec<Record>>;

pub fn zone(table: Vec<Record>) -> Zone {
    let mut by_key = Zone::new();
    for r in table {
        let key = (r.name.to_ascii().to_ascii_lowercase(), r.record_type());
        by_key.entry(key).or_default().push(r);
    }
    by_key
}

/// A DNS server on loopback UDP answering from a table (which a test may
/// replace: [`DnsStub::set`]), and counting the queries it got by (name,
/// type).
pub struct DnsStub {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, RecordType)>>>,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
}

impl DnsStub {
    pub fn start(table: Vec<Record>) -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (Arc::clone(&asked), Arc::clone(&stop));
        let zone = Arc::new(Mutex::new(zone(table)));
        let by_key = Arc::clone(&zone);
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                resp.metadata.authoritative = true;
                resp.metadata.recursion_desired = q.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.queries = q.queries.clone();
                for query in &q.queries {
                    let key = (
                        query.name().to_ascii().to_ascii_lowercase(),
                        query.query_type(),
                    );
                    log.lock().unwrap().push(key.clone());
                    match by_key.lock().unwrap().get(&key) {
                        Some(records) => {
                            resp.answers.extend(records.iter().cloned());
                        }
                        None => resp.metadata.response_code = ResponseCode::NXDomain,
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        DnsStub {
            addr,
            asked,
            zone,
            stop,
        }
    }

    /// Answer from `table` from now on.
    pub fn set(&self, table: Vec<Record>) {
        *self.zone.lock().unwrap() = zone(table);
    }

    pub fn asked(&self, name: &str, t: RecordType) -> bool {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .any(|(n, rt)| n == name && *rt == t)
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn name(n: &str) -> Name {
    Name::from_ascii(n).unwrap()
}

pub fn srv(owner: &str, priority: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, 10, port, name(target))),
    )
}

/// An SRV record with a TTL of one second (the resolver's cache lets a
/// change show by the next lookup a second later).
pub fn srv_short(owner: &str, priority: u16, port: u16, target: &str) -> Record {
    let mut r = srv(owner, priority, port, target);
    r.ttl = 1;
    r
}

pub fn a(owner: &str) -> Record {
    a_at(owner, Ipv4Addr::LOCALHOST)
}

pub fn a_at(owner: &str, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A::from(ip)))
}

pub fn naptr(owner: &str, order: u16, service: &str, replacement: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::NAPTR(NAPTR::new(
            order,
            10,
            b"s".to_vec().into_boxed_slice(),
            service.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(replacement),
        )),
    )
}

/// A UDP SIP peer that answers every INVITE with `code` (none: never
/// answers) and counts the INVITEs.
pub struct RawPeer {
    pub addr: SocketAddr,
    invites: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawPeer {
    pub fn start(code: Option<u16>) -> RawPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let invites = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&invites), Arc::clone(&stop));
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !text.starts_with("INVITE ") {
                    continue;
                }
                count.fetch_add(1, Ordering::Relaxed);
                if let Some(code) = code {
                    let _ = socket.send_to(response(&text, code).as_bytes(), from);
                }
            }
        });
        RawPeer {
            addr,
            invites,
            stop,
        }
    }

    pub fn invites(&self) -> usize {
        self.invites.load(Ordering::Relaxed)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A final response to the request `text`: its Via, From, To (with a
/// tag), Call-ID and CSeq.
pub fn response(text: &str, code: u16) -> String {
    let mut out = format!("SIP/2.0 {code} Refused by the test\r\n");
    for line in text.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"]
            .iter()
            .any(|h| lower.starts_with(h))
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            out.push_str(";tag=dnstest\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// A UDP registrar that answers every REGISTER with `code` (a 200
/// grants 4 seconds: a refresh every 2) and counts the REGISTERs.
pub struct RawRegistrar {
    pub addr: SocketAddr,
    registers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawRegistrar {
    pub fn start(code: u16) -> RawRegistrar {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let registers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&registers), Arc::clone(&stop));
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !text.starts_with("REGISTER ") {
                    continue;
                }
                count.fetch_add(1, Ordering::Relaxed);
                let mut resp = response(&text, code);
                if code == 200 {
                    resp = resp.replace("Content-Length: 0", "Expires: 4\r\nContent-Length: 0");
                }
                let _ = socket.send_to(resp.as_bytes(), from);
            }
        });
        RawRegistrar {
            addr,
            registers,
            stop,
        }
    }

    pub fn registers(&self) -> usize {
        self.registers.load(Ordering::Relaxed)
    }
}

impl Drop for RawRegistrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
