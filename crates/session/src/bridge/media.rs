//! The call task's media: each 20 ms tick (recording, what the caller's
//! audio means, caller audio to the model, playback) and the end of the
//! recording.

use callbridge_audio::level::rms;
use callbridge_crm_store::{EventKind, SessionUpdate};
use callbridge_llm_bridge::{AudioFrame, SampleRate};
use callbridge_rtp::recorder::CallRecorder;
use serde_json::json;
use tracing::{debug, info, warn};

use super::Call;
use super::transport::TransportEvent;
use crate::lifecycle::{Input, MediaInput, Phase, SipInput};
use crate::store_writer::StoreOp;

/// Ticks between two playback progress reports to the model (100 ms).
const PROGRESS_EVERY: u64 = 5;
/// Ticks between two store batch flushes (1 s).
const FLUSH_EVERY: u64 = 50;

impl Call {
    pub(super) fn on_media(&mut self, ev: Option<TransportEvent>) {
        let Some(ev) = ev else {
            if let Some(s) = &self.stream {
                self.metrics.media_stopped(s.stats().as_ref());
                warn!("media stream stopped by itself");
                self.stream = None;
                self.stream_guard = None;
                self.inputs.push_back(Input::Media(MediaInput::RtpTimeout));
            }
            return;
        };
        match ev {
            TransportEvent::Tick { pcm, heard, sent } => self.on_tick(&pcm, heard, &sent),
            TransportEvent::Dtmf(d) => self.inputs.push_back(Input::Sip(SipInput::Dtmf(d))),
            TransportEvent::Hangup => {
                info!("the carrier ended the stream");
                self.inputs.push_back(Input::Sip(SipInput::Bye));
            }
        }
    }

    fn on_tick(&mut self, pcm: &[i16; 160], heard: bool, sent: &[i16; 160]) {
        self.ticks += 1;
        if let Some(r) = &mut self.recording.recorder
            && let Err(e) = r.write(pcm, sent)
            && let Some(r) = self.recording.recorder.take()
        {
            self.recording_stopped(&r, &e);
        }
        // The caller frame's level, once per tick: the barge-in detector
        // and the call metrics both need it.
        let level = rms(pcm);
        let caller = self.caller.on_tick(pcm, level, heard);
        self.amd_frame(pcm);
        let barge_in = caller.sustained && !self.amd_mutes_barge_in();
        if caller.speech {
            self.transcript.caller_speech(super::now());
        }
        for (yes, input) in [
            (caller.media, MediaInput::MediaArrived),
            (caller.first, MediaInput::FirstCallerAudio),
            (caller.speech, MediaInput::CallerSpeech),
            (barge_in, MediaInput::SustainedSpeech),
        ] {
            if yes {
                self.inputs.push_back(Input::Media(input));
            }
        }
        let reply = self.replies.on_tick();
        if let Some(n) = self
            .metrics
            .on_tick(super::now(), level, heard, sent, reply)
        {
            self.event(EventKind::Note, n.detail());
        }
        self.send_caller_audio(pcm);
        self.feed_listeners(pcm, sent);
        let mut stream = self.stream.as_mut();
        let drained = self
            .playback
            .on_tick(|f| stream.as_mut().is_some_and(|s| s.try_play(f)));
        if drained {
            self.inputs
                .push_back(Input::Media(MediaInput::PlaybackDrained));
            self.amd_playback_drained();
        }
        if self.ticks.is_multiple_of(PROGRESS_EVERY) {
            // A barge-in truncates the reply where the caller stopped
            // hearing it (OpenAI `conversation.item.truncate`).
            let confirmed = self.stream.as_ref().and_then(|s| s.frames_played());
            if let Some(played) = self.playback.progress(confirmed) {
                self.link.progress(played);
            }
        }
        if self.ticks.is_multiple_of(FLUSH_EVERY) {
            if let Some(st) = self.stream.as_ref().and_then(|s| s.stats()) {
                self.metrics.media_stats(&st);
            }
            self.flush_store_now();
        }
    }

    fn send_caller_audio(&mut self, pcm: &[i16; 160]) {
        if !self
            .link
            .takes_audio(matches!(self.machine.phase(), Phase::Active))
        {
            return;
        }
        let (Some(m), Some(up)) = (&mut self.model, &mut self.uplink) else {
            return;
        };
        let rate = SampleRate::new(up.rate());
        let samples = up.process(pcm);
        let frame = AudioFrame::Pcm16 { rate, samples };
        // A frame interpolated from the call's 8 kHz audio goes with it: a
        // Gemini session keeps caller audio at 8 kHz for a resume and is
        // spared decimating it again.
        let sent = if samples.len() == 2 * pcm.len() {
            m.send_audio_with_narrowband(frame, pcm)
        } else {
            m.send_audio(frame)
        };
        match sent {
            Ok(()) => self.usage.on_streamed(),
            Err(e) => debug!(error = %e, "caller audio frame not sent to the model"),
        }
    }

    pub(super) async fn finalize_recording(&mut self) {
        if let Some(mut r) = self.recording.recorder.take()
            && let Err(e) = r.finish()
        {
            // The recorder repaired the file to what reached the disk.
            self.recording_stopped(&r, &e);
        }
        // Linked at the start; the size is settled now, also after a
        // recording that stopped early.
        if let Some(path) = self.recording.path.take() {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let u = SessionUpdate {
                recording: Some((path, bytes)),
                ..Default::default()
            };
            self.shared
                .store
                .send(StoreOp::Update(self.id, Box::new(u)))
                .await;
        }
    }

    /// A write to the recording failed (a full disk): the recording stops,
    /// the call goes on, and the session gets an event saying why and how
    /// much audio the file kept.
    fn recording_stopped(&mut self, r: &CallRecorder, e: &callbridge_rtp::Error) {
        let why = if e.is_disk_full() {
            "disk full"
        } else {
            "write failed"
        };
        let kept = r.stopped().and_then(|s| s.kept);
        warn!(error = %e, reason = why, "recording stopped; the call goes on");
        self.event(
            EventKind::Recording,
            json!({
                "stopped": why,
                "error": e.to_string(),
                "kept_ms": kept.map(|k| k.duration().as_millis() as u64),
                "kept_bytes": kept.map(|k| k.file_bytes),
            }),
        );
    }
}
