//! SRTP and SRTCP (RFC 3711) of one call, sans-IO: [`SrtpSession`]
//! protects what we send and unprotects what we receive, with its own
//! replay windows and rollover counters, and nothing of the IO.
//!
//! # Why `rtc-srtp`
//!
//! The cryptography is not written here. The candidates were libsrtp2
//! (the reference, through bindings: a C library and `bindgen` in the
//! build, the bindings crates thinly kept, and its AES-GCM only when built
//! against OpenSSL), `webrtc-srtp` (pure Rust but tied to the async
//! webrtc stack and tokio), and `rtc-srtp`, webrtc-rs's sans-IO rebuild
//! of the same code (2026, actively released with the rest of the `rtc`
//! crates). `rtc-srtp` was chosen: it is sans-IO like this crate, it has
//! the three suites SDES trunks use (AES_CM_128_HMAC_SHA1_80 and _32,
//! AEAD_AES_128_GCM) with SRTCP, rollover counters and replay windows, and
//! it runs on a crypto provider we pass in: aws-lc-rs, the workspace's one
//! crypto stack (HMAC-SHA1 and AES-GCM; no ring in the build). One
//! exception: `rtc-crypto` keeps AES counter mode (the AES_CM keystream
//! and key derivation) on RustCrypto's `aes` and `ctr` for every provider.
//! Its cost:
//! each protect and unprotect allocates the output packet (a `BytesMut`);
//! the API here writes into buffers the caller owns, so a library that
//! works in place can replace it without touching the callers. The
//! `srtp_*` benches in `benches/` measure a 20 ms frame's cost.
//!
//! # Bounds
//!
//! The library keeps a replay window and a rollover counter per SSRC it
//! is shown, and creates that state before it checks the authentication
//! tag: unauthenticated packets with made-up SSRCs would grow it without
//! end. So a packet whose SSRC has not yet authenticated is first checked
//! by a throw-away *probe* context, rebuilt after [`PROBE_FAILURES`]
//! failures; only a packet that authenticates there reaches the real
//! context, and at most [`MAX_REMOTE_SSRCS`] SSRCs ever do.
//!
//! # Keys
//!
//! [`SrtpKey`] holds a master key and salt, wiped when dropped
//! (`zeroize`), and its `Debug` prints the suite only. The derived session
//! keys live inside the library's contexts (aws-lc-rs key objects, which
//! AWS-LC cleanses when freed).
//!
//! ```
//! use callbridge_rtp::srtp::{SrtpKey, SrtpKeys, SrtpSession, SrtpSuite};
//!
//! let suite = SrtpSuite::AesCm128HmacSha1_80;
//! let ours = SrtpKey::new(suite, &[7u8; 30]).unwrap();
//! let theirs = SrtpKey::new(suite, &[9u8; 30]).unwrap();
//! let mut alice = SrtpSession::new(&SrtpKeys::new(ours.clone(), theirs.clone()).unwrap()).unwrap();
//! let mut bob = SrtpSession::new(&SrtpKeys::new(theirs, ours).unwrap()).unwrap();
//!
//! let mut packet = [0u8; 200];
//! packet[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42]);
//! packet[12..172].fill(0xff);
//! let len = alice.protect_rtp(&mut packet, 172).unwrap();
//! assert_eq!(len, 182);
//! let mut clear = [0u8; 200];
//! let n = bob.unprotect_rtp(&packet[..len], &mut clear).unwrap();
//! assert_eq!(&clear[12..n], &[0xff; 160][..]);
//! ```

use std::fmt;

use rtc_srtp::context::Context;
use rtc_srtp::crypto::providers::AwsLcRsCrypto;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use zeroize::Zeroizing;

/// Largest packet protected or unprotected: the media engine's datagram.
pub const MAX_SRTP_PACKET: usize = 1500;

/// Bytes protecting may add to an RTP packet (the largest tag) or to an
/// RTCP packet (the SRTCP index and the tag).
pub const MAX_OVERHEAD: usize = 4 + 16;

/// Packets remembered by each replay window (RFC 3711 section 3.3.2: at
/// least 64).
pub const REPLAY_WINDOW: usize = 128;

/// Unauthenticated packets the probe context takes before it is rebuilt
/// (see the module docs).
pub const PROBE_FAILURES: u32 = 64;

/// Remote SSRCs one session keeps state for; packets from more are
/// dropped ([`SrtpError::TooManySsrcs`]).
pub const MAX_REMOTE_SSRCS: usize = 8;

/// An SRTP crypto suite (RFC 4568 section 6.2, RFC 7714 section 14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-128 counter mode, an 80-bit
    /// HMAC-SHA1 tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: the same with a 32-bit tag on RTP (80
    /// bits on RTCP).
    AesCm128HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714): AES-128 GCM with a 128-bit tag.
    AeadAes128Gcm,
}

impl SrtpSuite {
    /// Every suite, in our preference order (what we offer first).
    pub const ALL: [SrtpSuite; 3] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
    ];

    /// The master key length in bytes.
    #[must_use]
    pub fn key_len(self) -> usize {
        16
    }

    /// The master salt length in bytes.
    #[must_use]
    pub fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 14,
            SrtpSuite::AeadAes128Gcm => 12,
        }
    }

    /// The length of an SDES key: the master key then the master salt.
    #[must_use]
    pub fn master_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Bytes protecting adds to an RTP packet.
    #[must_use]
    pub fn rtp_overhead(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm => 16,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }
}

/// Why SRTP could not be set up or a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// A master key of the wrong length for its suite.
    #[error("SRTP master key and salt must be {need} bytes, not {have}")]
    KeyLength {
        /// Bytes the suite needs.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The two directions' keys are of different suites.
    #[error("SRTP keys of different suites")]
    SuiteMismatch,
    /// The packet's authentication tag is wrong (or the packet was cut,
    /// or not SRTP at all): the peer's fault or an attacker's.
    #[error("SRTP authentication failed")]
    Auth,
    /// The packet was already received (replay window).
    #[error("SRTP packet replayed")]
    Replay,
    /// Too short to be an SRTP or SRTCP packet.
    #[error("SRTP packet too short")]
    TooShort,
    /// A packet from a new SSRC past [`MAX_REMOTE_SSRCS`].
    #[error("too many SRTP sources")]
    TooManySsrcs,
    /// The output buffer cannot take the result (caller misuse).
    #[error("SRTP buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// Our own packet could not be protected (not RTP, or 2^48 packets
    /// sent): our bug.
    #[error("SRTP protect failed: {0}")]
    Protect(&'static str),
}

/// An SRTP master key and salt of one suite (RFC 3711 section 8): wiped
/// from memory when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    suite: SrtpSuite,
    material: Zeroizing<Vec<u8>>,
}

impl SrtpKey {
    /// A key from `material`: the master key then the master salt, as SDES
    /// carries it ([`SrtpSuite::master_len`] bytes).
    pub fn new(suite: SrtpSuite, material: &[u8]) -> Result<SrtpKey, SrtpError> {
        if material.len() != suite.master_len() {
            return Err(SrtpError::KeyLength {
                need: suite.master_len(),
                have: material.len(),
            });
        }
        Ok(SrtpKey {
            suite,
            material: Zeroizing::new(material.to_vec()),
        })
    }

    /// The suite.
    #[must_use]
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The master key then the master salt (for SDES's `inline:`).
    #[must_use]
    pub fn material(&self) -> &[u8] {
        &self.material
    }

    fn context(&self) -> Result<Context, SrtpError> {
        let (key, salt) = self.material.split_at(self.suite.key_len());
        Context::new(
            key,
            salt,
            self.suite.profile(),
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
            &AwsLcRsCrypto,
        )
        .map_err(|_| SrtpError::KeyLength {
            need: self.suite.master_len(),
            have: self.material.len(),
        })
    }
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtpKey({:?}, <redacted>)", self.suite)
    }
}

/// The keys of one call: ours (what we send is protected with it) and the
/// peer's (what we receive is checked with it), of one suite.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SrtpKeys {
    local: SrtpKey,
    remote: SrtpKey,
}

impl SrtpKeys {
    /// Both directions' keys; they must be of the same suite.
    pub fn new(local: SrtpKey, remote: SrtpKey) -> Result<SrtpKeys, SrtpError> {
        if local.suite != remote.suite {
            return Err(SrtpError::SuiteMismatch);
        }
        Ok(SrtpKeys { local, remote })
    }

    /// The suite.
    #[must_use]
    pub fn suite(&self) -> SrtpSuite {
        self.local.suite
    }
}

/// SRTP and SRTCP of one call. See the module docs.
pub struct SrtpSession {
    suite: SrtpSuite,
    tx: Context,
    rx: Context,
    /// Checks packets of SSRCs not yet authenticated (see the module docs).
    probe: Context,
    probe_failures: u32,
    probe_rebuilds: u64,
    keys: SrtpKeys,
    /// SSRCs whose packets authenticated (RTP and RTCP share them).
    known: Vec<u32>,
}

impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("known_ssrcs", &self.known.len())
            .finish_non_exhaustive()
    }
}

/// Which packet kind a probe checks.
#[derive(Clone, Copy)]
enum Kind {
    Rtp,
    Rtcp,
}

impl SrtpSession {
    /// A session for `keys`.
    pub fn new(keys: &SrtpKeys) -> Result<SrtpSession, SrtpError> {
        Ok(SrtpSession {
            suite: keys.suite(),
            tx: keys.local.context()?,
            rx: keys.remote.context()?,
            probe: keys.remote.context()?,
            probe_failures: 0,
            probe_rebuilds: 0,
            keys: keys.clone(),
            known: Vec::new(),
        })
    }

    /// The suite.
    #[must_use]
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// How often the probe context was rebuilt (each time after
    /// [`PROBE_FAILURES`] unauthenticated packets of unknown SSRCs).
    #[must_use]
    pub fn probe_rebuilds(&self) -> u64 {
        self.probe_rebuilds
    }

    /// Protects the RTP packet in `buf[..len]` in place; returns the new
    /// length (`len` plus [`SrtpSuite::rtp_overhead`]).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let plain = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            need: len,
            have: buf.len(),
        })?;
        let out = self
            .tx
            .encrypt_rtp(plain)
            .map_err(|_| SrtpError::Protect("rtp"))?;
        copy_out(&out, buf)
    }

    /// Protects the RTCP compound packet in `buf[..len]` in place; returns
    /// the new length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let plain = buf.get(..len).ok_or(SrtpError::BufferTooSmall {
            need: len,
            have: buf.len(),
        })?;
        let out = self
            .tx
            .encrypt_rtcp(plain)
            .map_err(|_| SrtpError::Protect("rtcp"))?;
        copy_out(&out, buf)
    }

    /// Checks and decrypts the SRTP packet `data` into `out`; returns the
    /// RTP packet's length. A refused packet changes no state but the
    /// probe's.
    pub fn unprotect_rtp(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = match data.get(8..12) {
            Some(b) if data.len() >= 12 + self.suite.rtp_overhead() => {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
            _ => return Err(SrtpError::TooShort),
        };
        self.admit(ssrc, data, Kind::Rtp)?;
        let clear = self.rx.decrypt_rtp(data).map_err(classify)?;
        copy_out(&clear, out)
    }

    /// Checks and decrypts the SRTCP packet `data` into `out`; returns the
    /// RTCP compound packet's length.
    pub fn unprotect_rtcp(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = match data.get(4..8) {
            Some(b) if data.len() >= 8 + 4 + self.suite.rtp_overhead().max(10) => {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
            _ => return Err(SrtpError::TooShort),
        };
        self.admit(ssrc, data, Kind::Rtcp)?;
        let clear = self.rx.decrypt_rtcp(data).map_err(classify)?;
        copy_out(&clear, out)
    }

    /// Lets a packet of a known SSRC through; one of a new SSRC only when
    /// it authenticates in the probe context (see the module docs).
    fn admit(&mut self, ssrc: u32, data: &[u8], kind: Kind) -> Result<(), SrtpError> {
        if self.known.contains(&ssrc) {
            return Ok(());
        }
        if self.known.len() >= MAX_REMOTE_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        let checked = match kind {
            Kind::Rtp => self.probe.decrypt_rtp(data).map(drop),
            Kind::Rtcp => self.probe.decrypt_rtcp(data).map(drop),
        };
        match checked {
            Ok(()) => {
                self.known.push(ssrc);
                Ok(())
            }
            Err(e) => {
                self.probe_failures += 1;
                if self.probe_failures >= PROBE_FAILURES {
                    // Only the probe's per-SSRC state is lost: nothing
                    // that authenticated lives there.
                    self.probe = self.keys.remote.context()?;
                    self.probe_failures = 0;
                    self.probe_rebuilds += 1;
                }
                Err(classify(e))
            }
        }
    }
}

fn copy_out(packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
    let have = out.len();
    let dst = out
        .get_mut(..packet.len())
        .ok_or(SrtpError::BufferTooSmall {
            need: packet.len(),
            have,
        })?;
    dst.copy_from_slice(packet);
    Ok(packet.len())
}

/// The library's error as ours: replays apart, every other refusal of a
/// received packet is an authentication failure (a forged, cut or
/// garbled packet).
fn classify(e: rtc_shared::error::Error) -> SrtpError {
    use rtc_shared::error::Error as E;
    match e {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) => SrtpError::Replay,
        E::ErrTooShortRtp | E::ErrTooShortRtcp => SrtpError::TooShort,
        _ => SrtpError::Auth,
    }
}

#[cfg(test)]
mod tests;
