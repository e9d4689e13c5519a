//! A carrier stream's audio as the call's media: the carrier's 20 ms
//! [`WireFrame`]s (G.711 µ-law, ITU-T G.711; L16 at 8 or 16 kHz) to and
//! from the bridge's 20 ms frames of 8 kHz PCM. Vonage's 16 kHz L16 is
//! resampled to 8 kHz on the way in and back to 16 kHz on the way out.

use callbridge_carrier::{Carrier, CarrierError, WireFormat, WireFrame};
use callbridge_rtp::g711;
use callbridge_rtp::resample::StreamResampler;
use callbridge_rtp::stream::Frame;

/// Converts one stream's audio both ways (see the module docs).
pub struct Transcoder {
    format: WireFormat,
    /// 16 kHz to 8 kHz (wide streams only).
    up: Option<Box<StreamResampler>>,
    /// 8 kHz to 16 kHz (wide streams only).
    down: Option<Box<StreamResampler>>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// A transcoder for a stream in `format`.
    ///
    /// # Errors
    /// [`CarrierError::Unsupported`] when the resamplers a 16 kHz stream
    /// needs cannot be made.
    pub fn new(format: WireFormat) -> Result<Transcoder, CarrierError> {
        let (up, down) = match format {
            WireFormat::L16Wide => {
                let up = StreamResampler::new(16_000, 8000).ok().map(Box::new);
                let down = StreamResampler::new(8000, 16_000).ok().map(Box::new);
                if up.is_none() || down.is_none() {
                    return Err(CarrierError::Unsupported {
                        carrier: Carrier::Vonage,
                        what: "16 kHz resampling unavailable",
                    });
                }
                (up, down)
            }
            _ => (None, None),
        };
        Ok(Transcoder { format, up, down })
    }

    /// The stream's format.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// The call's frame for a caller frame from the carrier; `None` when
    /// it cannot be converted (another format than the stream's).
    pub fn to_call(&mut self, wire: &WireFrame) -> Option<Frame> {
        let mut f: Frame = [0; 160];
        match wire {
            WireFrame::Ulaw(b) => g711::ulaw_decode(b, &mut f),
            WireFrame::L16Narrow(s) => f.copy_from_slice(s),
            WireFrame::L16Wide(s) => self.up.as_mut()?.process(s, &mut f).ok()?,
        }
        Some(f)
    }

    /// The carrier's frame for one frame of ours; `None` when it cannot be
    /// converted.
    pub fn to_wire(&mut self, frame: &Frame) -> Option<WireFrame> {
        Some(match self.format {
            WireFormat::Ulaw => {
                let mut b = [0u8; 160];
                g711::ulaw_encode(frame, &mut b);
                WireFrame::Ulaw(b)
            }
            WireFormat::L16Narrow => WireFrame::L16Narrow(*frame),
            WireFormat::L16Wide => {
                let mut s = [0i16; 320];
                self.down.as_mut()?.process(frame, &mut s).ok()?;
                WireFrame::L16Wide(s)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_frames_decode_and_encode_with_g711() {
        let mut t = Transcoder::new(WireFormat::Ulaw).unwrap();
        let pcm = t.to_call(&WireFrame::Ulaw([0xff; 160])).unwrap();
        assert_eq!(pcm, [0i16; 160], "0xff is µ-law zero");
        assert_eq!(t.to_wire(&pcm), Some(WireFrame::Ulaw([0xff; 160])));
        assert_eq!(t.to_call(&WireFrame::L16Wide([0; 320])), None);
    }

    #[test]
    fn wide_frames_are_resampled_both_ways() {
        let mut t = Transcoder::new(WireFormat::L16Wide).unwrap();
        assert_eq!(t.format(), WireFormat::L16Wide);
        assert!(t.to_call(&WireFrame::L16Wide([0; 320])).is_some());
        let Some(WireFrame::L16Wide(out)) = t.to_wire(&[100; 160]) else {
            panic!("a 16 kHz frame")
        };
        assert_eq!(out.len(), 320);
        let mut n = Transcoder::new(WireFormat::L16Narrow).unwrap();
        assert_eq!(n.to_wire(&[7; 160]), Some(WireFrame::L16Narrow([7; 160])));
    }
}
