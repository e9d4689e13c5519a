//! G.711 mu-law and A-law (ITU-T G.711, as implemented by the ITU-T G.191
//! reference `g711.c`): encode and decode whole slices into caller-owned
//! buffers.
//!
//! Both directions are table lookups. The tables are computed at compile
//! time from the G.191 algorithm; the tests compare every one of the 65,536
//! inputs and 256 codes with tables produced independently by
//! `testdata/gen_g711_tables.py`. Negative inputs use the one's complement
//! as G.191 does, so `-1` encodes like `0` does apart from the sign (the Sun
//! `g711.c` used by sox and many VoIP stacks differs for 510 mu-law and 1,020
//! A-law inputs).
//!
//! The mu-law code of `x` depends only on `x >> 2`, the A-law code only on
//! `x >> 4`, so the encode tables have 16,384 and 4,096 entries and stay in
//! L1 cache.
//!
//! Hot paths use the slice functions ([`Law::encode`], [`ulaw_encode`], ...),
//! which write into buffers the caller owns; the one-sample functions
//! ([`linear_to_ulaw`], [`ulaw_to_linear`], ...) are the same tables for
//! code that converts sample by sample (iterator adapters).

use crate::error::Error;

/// mu-law encode table indexed by the 14-bit `(x >> 2) & 0x3fff`.
static ULAW_ENC: [u8; 1 << 14] = build_ulaw_enc();
/// A-law encode table indexed by the 12-bit `(x >> 4) & 0xfff`.
static ALAW_ENC: [u8; 1 << 12] = build_alaw_enc();
/// mu-law decode table.
static ULAW_DEC: [i16; 256] = build_ulaw_dec();
/// A-law decode table.
static ALAW_DEC: [i16; 256] = build_alaw_dec();

/// G.191 `ulaw_compress` for one sample.
const fn ulaw_compress(x: i16) -> u8 {
    let x = x as i32;
    let mut absno = if x < 0 { (!x) >> 2 } else { x >> 2 };
    absno += 33;
    if absno > 0x1fff {
        absno = 0x1fff;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high = 8 - segno;
    let low = 0xf - ((absno >> segno) & 0xf);
    let mut out = (high << 4) | low;
    if x >= 0 {
        out |= 0x80;
    }
    out as u8
}

/// G.191 `alaw_compress` for one sample.
const fn alaw_compress(x: i16) -> u8 {
    let x = x as i32;
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

/// G.191 `ulaw_expand` for one code.
const fn ulaw_expand(code: u8) -> i16 {
    let sign = if code < 0x80 { -1 } else { 1 };
    let mant = !(code as i32);
    let exponent = (mant >> 4) & 7;
    let step = 4 << (exponent + 1);
    let mant = mant & 0xf;
    (sign * ((0x80 << exponent) + step * mant + step / 2 - 4 * 33)) as i16
}

/// G.191 `alaw_expand` for one code.
const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7f) as i32;
    let iexp = ix >> 4;
    let mut mant = ix & 0xf;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 8;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

const fn build_ulaw_enc() -> [u8; 1 << 14] {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        // Index i is the 14-bit two's-complement value of x >> 2; x = i << 2
        // (sign-extended) is one input with that index.
        let x = ((i as i32) << 18 >> 16) as i16;
        t[i] = ulaw_compress(x);
        i += 1;
    }
    t
}

const fn build_alaw_enc() -> [u8; 1 << 12] {
    let mut t = [0u8; 1 << 12];
    let mut i = 0;
    while i < (1 << 12) {
        let x = ((i as i32) << 20 >> 16) as i16;
        t[i] = alaw_compress(x);
        i += 1;
    }
    t
}

const fn build_ulaw_dec() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_dec() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
}

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law, RTP payload type 0 (PCMU), North America and Japan.
    MuLaw,
    /// A-law, RTP payload type 8 (PCMA), elsewhere.
    ALaw,
}

impl Law {
    /// The code for digital silence (encoding of 0).
    #[must_use]
    pub const fn silence(self) -> u8 {
        match self {
            Law::MuLaw => 0xff,
            Law::ALaw => 0xd5,
        }
    }

    /// Encodes `pcm` into `out[..pcm.len()]`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `out` is shorter than `pcm`.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> Result<(), Error> {
        let Some(out) = out.get_mut(..pcm.len()) else {
            return Err(Error::BufferTooSmall {
                need: pcm.len(),
                have: out.len(),
            });
        };
        match self {
            Law::MuLaw => ulaw_encode(pcm, out),
            Law::ALaw => alaw_encode(pcm, out),
        }
        Ok(())
    }

    /// Encodes one sample.
    #[must_use]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Law::MuLaw => linear_to_ulaw(sample),
            Law::ALaw => linear_to_alaw(sample),
        }
    }

    /// Decodes one code.
    #[must_use]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Law::MuLaw => ulaw_to_linear(code),
            Law::ALaw => alaw_to_linear(code),
        }
    }

    /// Decodes `codes` into `out[..codes.len()]`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `out` is shorter than `codes`.
    pub fn decode(self, codes: &[u8], out: &mut [i16]) -> Result<(), Error> {
        let Some(out) = out.get_mut(..codes.len()) else {
            return Err(Error::BufferTooSmall {
                need: codes.len(),
                have: out.len(),
            });
        };
        match self {
            Law::MuLaw => ulaw_decode(codes, out),
            Law::ALaw => alaw_decode(codes, out),
        }
        Ok(())
    }
}

/// mu-law encodes one sample.
///
/// ```
/// use callbridge_audio::g711::{linear_to_ulaw, ulaw_to_linear};
/// assert_eq!(linear_to_ulaw(0), 0xff);
/// assert_eq!(ulaw_to_linear(0x80), 32124);
/// ```
#[must_use]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    ULAW_ENC[((sample >> 2) as u16 & 0x3fff) as usize]
}

/// A-law encodes one sample.
#[must_use]
pub fn linear_to_alaw(sample: i16) -> u8 {
    ALAW_ENC[((sample >> 4) as u16 & 0x0fff) as usize]
}

/// mu-law decodes one code.
#[must_use]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DEC[usize::from(code)]
}

/// A-law decodes one code.
#[must_use]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DEC[usize::from(code)]
}

/// mu-law encodes `pcm` into `out`, pairwise up to the shorter length.
///
/// ```
/// let mut out = [0u8; 3];
/// callbridge_audio::g711::ulaw_encode(&[0, -1, i16::MAX], &mut out);
/// assert_eq!(out, [0xff, 0x7f, 0x80]);
/// ```
pub fn ulaw_encode(pcm: &[i16], out: &mut [u8]) {
    for (o, &x) in out.iter_mut().zip(pcm) {
        *o = linear_to_ulaw(x);
    }
}

/// A-law encodes `pcm` into `out`, pairwise up to the shorter length.
pub fn alaw_encode(pcm: &[i16], out: &mut [u8]) {
    for (o, &x) in out.iter_mut().zip(pcm) {
        *o = linear_to_alaw(x);
    }
}

/// mu-law decodes `codes` into `out`, pairwise up to the shorter length.
pub fn ulaw_decode(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_to_linear(c);
    }
}

/// A-law decodes `codes` into `out`, pairwise up to the shorter length.
pub fn alaw_decode(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_to_linear(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULAW_ENC_REF: &[u8] = include_bytes!("../testdata/g711_ulaw_encode.bin");
    const ALAW_ENC_REF: &[u8] = include_bytes!("../testdata/g711_alaw_encode.bin");
    const ULAW_DEC_REF: &[u8] = include_bytes!("../testdata/g711_ulaw_decode.bin");
    const ALAW_DEC_REF: &[u8] = include_bytes!("../testdata/g711_alaw_decode.bin");

    fn all_inputs() -> Vec<i16> {
        (0..=u16::MAX).map(|u| u as i16).collect()
    }

    fn dec_ref(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn ulaw_encode_matches_g191_for_all_65536_inputs() {
        let mut out = vec![0u8; 65536];
        Law::MuLaw.encode(&all_inputs(), &mut out).unwrap();
        let bad = (0..65536).filter(|&i| out[i] != ULAW_ENC_REF[i]).count();
        assert_eq!(bad, 0, "mu-law codes differing from the reference");
    }

    #[test]
    fn alaw_encode_matches_g191_for_all_65536_inputs() {
        let mut out = vec![0u8; 65536];
        Law::ALaw.encode(&all_inputs(), &mut out).unwrap();
        let bad = (0..65536).filter(|&i| out[i] != ALAW_ENC_REF[i]).count();
        assert_eq!(bad, 0, "A-law codes differing from the reference");
    }

    #[test]
    fn ulaw_decode_matches_g191_for_all_256_codes() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut out = [0i16; 256];
        Law::MuLaw.decode(&codes, &mut out).unwrap();
        assert_eq!(out.to_vec(), dec_ref(ULAW_DEC_REF));
    }

    #[test]
    fn alaw_decode_matches_g191_for_all_256_codes() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut out = [0i16; 256];
        Law::ALaw.decode(&codes, &mut out).unwrap();
        assert_eq!(out.to_vec(), dec_ref(ALAW_DEC_REF));
    }

    #[test]
    fn decode_then_encode_is_identity_on_codes() {
        for law in [Law::MuLaw, Law::ALaw] {
            let codes: Vec<u8> = (0..=255).collect();
            let mut pcm = [0i16; 256];
            let mut back = [0u8; 256];
            law.decode(&codes, &mut pcm).unwrap();
            law.encode(&pcm, &mut back).unwrap();
            for (c, &b) in back.iter().enumerate() {
                // mu-law has two zeros (0x7f and 0xff); both decode to 0.
                if law == Law::MuLaw && c == 0x7f {
                    assert_eq!(b, 0xff);
                } else {
                    assert_eq!(usize::from(b), c, "{law:?} code {c:#x}");
                }
            }
        }
    }

    #[test]
    fn one_sample_functions_agree_with_the_slice_functions_for_every_input() {
        let pcm = all_inputs();
        for law in [Law::MuLaw, Law::ALaw] {
            let mut codes = vec![0u8; pcm.len()];
            law.encode(&pcm, &mut codes).unwrap();
            for (&x, &c) in pcm.iter().zip(&codes) {
                assert_eq!(law.encode_sample(x), c, "{law:?} input {x}");
            }
            let all: Vec<u8> = (0..=255).collect();
            let mut dec = [0i16; 256];
            law.decode(&all, &mut dec).unwrap();
            for (&c, &x) in all.iter().zip(&dec) {
                assert_eq!(law.decode_sample(c), x, "{law:?} code {c:#x}");
            }
        }
    }

    #[test]
    fn ulaw_silence_and_extremes_match_reference_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_reference_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn silence_code_encodes_zero() {
        for law in [Law::MuLaw, Law::ALaw] {
            let mut out = [0u8; 1];
            law.encode(&[0], &mut out).unwrap();
            assert_eq!(out[0], law.silence());
        }
    }

    #[test]
    fn short_output_is_an_error() {
        let mut out = [0u8; 2];
        assert!(matches!(
            Law::MuLaw.encode(&[0; 3], &mut out),
            Err(Error::BufferTooSmall { need: 3, have: 2 })
        ));
        let mut pcm = [0i16; 1];
        assert!(Law::ALaw.decode(&[0; 2], &mut pcm).is_err());
    }
}
