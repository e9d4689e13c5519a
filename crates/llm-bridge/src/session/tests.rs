//! The handle's uplink on paused tokio time, against a driver that records
//! the command queue: chunks, their deadline, and their order relative to
//! every other message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::format::SampleRate;

/// What the recording driver saw, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Audio(usize),
    Other(&'static str),
}

fn seen(cmd: &Command) -> Seen {
    match cmd {
        Command::Audio(b, _) => Seen::Audio(b.len()),
        Command::AudioStreamEnd => Seen::Other("audio_stream_end"),
        Command::Text(_) => Seen::Other("text"),
        Command::ToolResult { .. } => Seen::Other("tool_result"),
        Command::ActivityStart => Seen::Other("activity_start"),
        Command::ActivityEnd => Seen::Other("activity_end"),
        Command::PlaybackProgress(_) => Seen::Other("progress"),
        Command::StartGreeting => Seen::Other("greeting"),
        Command::Interrupt(_) => Seen::Other("interrupt"),
        Command::UpdateInstructions(_) => Seen::Other("instructions"),
    }
}

/// A session of `provider` with `chunk` whose driver records every command
/// and can be handed events to emit.
fn recording(
    provider: Provider,
    chunk: UplinkChunk,
) -> (
    ModelSession,
    Arc<Mutex<Vec<Seen>>>,
    mpsc::Sender<ModelEvent>,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ev_tx, mut ev_rx) = mpsc::channel::<ModelEvent>(8);
    let driver_log = Arc::clone(&log);
    let session = ModelSession::spawn(
        provider,
        AudioFormat::PCM_16K,
        chunk,
        64,
        64,
        Duration::from_secs(1),
        move |mut ctx: DriverContext| async move {
            loop {
                tokio::select! {
                    biased;
                    cmd = ctx.commands.recv() => match cmd {
                        Some(cmd) => driver_log.lock().unwrap().push(seen(&cmd)),
                        None => break,
                    },
                    Some(ev) = ev_rx.recv() => { ctx.events.emit(ev).await; }
                    () = ctx.close.cancelled() => {
                        while let Ok(cmd) = ctx.commands.try_recv() {
                            driver_log.lock().unwrap().push(seen(&cmd));
                        }
                        break;
                    }
                }
            }
            CloseOutcome {
                reason: CloseReason::ClientClosed,
                clean: true,
            }
        },
    );
    (session, log, ev_tx)
}

fn frame(s: &mut ModelSession) {
    s.send_audio(AudioFrame::Pcm16 {
        rate: SampleRate::HZ_16000,
        samples: &[0; 320],
    })
    .unwrap();
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn frames_leave_in_chunks_and_every_other_message_waits_behind_them() {
    let (mut s, log, _ev) = recording(Provider::Gemini, UplinkChunk::Ms60);
    for _ in 0..4 {
        frame(&mut s);
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    settle().await;
    assert_eq!(*log.lock().unwrap(), vec![Seen::Audio(1920)]);
    // One frame pending: each message sends it first.
    s.activity_end().await.unwrap();
    frame(&mut s);
    s.send_dtmf("5").await.unwrap();
    frame(&mut s);
    s.audio_stream_end().unwrap();
    frame(&mut s);
    s.send_text("hi").await.unwrap();
    frame(&mut s);
    s.activity_start().await.unwrap();
    frame(&mut s);
    s.start_greeting().await.unwrap();
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Seen::Audio(1920),
            Seen::Audio(640),
            Seen::Other("activity_end"),
            Seen::Audio(640),
            Seen::Other("text"),
            Seen::Audio(640),
            Seen::Other("audio_stream_end"),
            Seen::Audio(640),
            Seen::Other("text"),
            Seen::Audio(640),
            Seen::Other("activity_start"),
            Seen::Audio(640),
            Seen::Other("greeting"),
        ]
    );
    assert!(s.close().await.clean);
}

#[tokio::test(start_paused = true)]
async fn audio_pending_across_a_gap_leaves_alone_with_the_next_frame() {
    let (mut s, log, _ev) = recording(Provider::Gemini, UplinkChunk::Ms40);
    frame(&mut s);
    // Frames stop (caller on hold) for longer than a chunk, then resume.
    tokio::time::advance(Duration::from_millis(500)).await;
    frame(&mut s);
    tokio::time::advance(Duration::from_millis(20)).await;
    frame(&mut s);
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        vec![Seen::Audio(640), Seen::Audio(1280)]
    );
    assert!(s.close().await.clean);
}

#[tokio::test(start_paused = true)]
async fn no_timer_sends_pending_audio_and_a_refused_frame_sends_what_is_due() {
    let (mut s, log, _ev) = recording(Provider::OpenAi, UplinkChunk::Ms60);
    frame(&mut s);
    // Frames stop: the pending audio waits for the next frame or flush.
    tokio::time::advance(Duration::from_millis(500)).await;
    settle().await;
    assert!(log.lock().unwrap().is_empty());
    // The next frame is refused, but the audio that is due leaves.
    let err = s
        .send_audio(AudioFrame::Pcm16 {
            rate: SampleRate::HZ_24000,
            samples: &[0; 480],
        })
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedAudio { .. }));
    settle().await;
    assert_eq!(*log.lock().unwrap(), vec![Seen::Audio(640)]);
    assert!(s.close().await.clean);
}

#[tokio::test(start_paused = true)]
async fn barge_in_tool_calls_and_turn_ends_flush_and_close_sends_the_rest() {
    let (mut s, log, ev) = recording(Provider::Gemini, UplinkChunk::Ms60);
    frame(&mut s);
    ev.send(ModelEvent::Interrupted).await.unwrap();
    assert_eq!(s.next_event().await, Some(ModelEvent::Interrupted));
    frame(&mut s);
    ev.send(ModelEvent::CallerTurnEnded).await.unwrap();
    assert_eq!(s.next_event().await, Some(ModelEvent::CallerTurnEnded));
    frame(&mut s);
    // Not a boundary: the frame stays pending.
    ev.send(ModelEvent::TurnComplete).await.unwrap();
    assert_eq!(s.next_event().await, Some(ModelEvent::TurnComplete));
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        vec![Seen::Audio(640), Seen::Audio(640)]
    );
    assert!(s.close().await.clean);
    assert_eq!(
        *log.lock().unwrap(),
        vec![Seen::Audio(640), Seen::Audio(640), Seen::Audio(640)]
    );
}

#[tokio::test(start_paused = true)]
async fn playback_progress_reaches_openai_only() {
    let (s, log, _ev) = recording(Provider::Gemini, UplinkChunk::Ms20);
    s.playback_progress(Duration::from_millis(100));
    settle().await;
    assert!(log.lock().unwrap().is_empty());
    let (s2, log2, _ev2) = recording(Provider::OpenAi, UplinkChunk::Ms20);
    s2.playback_progress(Duration::from_millis(100));
    settle().await;
    assert_eq!(*log2.lock().unwrap(), vec![Seen::Other("progress")]);
    drop((s, s2));
}

#[tokio::test(start_paused = true)]
async fn a_local_barge_in_on_gemini_sends_only_the_callers_pending_audio() {
    let (mut s, log, _ev) = recording(Provider::Gemini, UplinkChunk::Ms60);
    frame(&mut s);
    s.interrupt(Duration::from_millis(300));
    settle().await;
    assert_eq!(*log.lock().unwrap(), vec![Seen::Audio(640)]);
    assert!(s.close().await.clean);
}

#[tokio::test(start_paused = true)]
async fn a_local_barge_in_sends_the_callers_pending_audio_first() {
    let (mut s, log, _ev) = recording(Provider::OpenAi, UplinkChunk::Ms60);
    frame(&mut s);
    s.interrupt(Duration::from_millis(300));
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        vec![Seen::Audio(640), Seen::Other("interrupt")]
    );
}

/// OpenAI Realtime takes new instructions (after the caller's pending
/// audio); Gemini and GPT-Live refuse with the typed error, queue nothing,
/// and the session goes on.
#[tokio::test(start_paused = true)]
async fn instruction_updates_go_to_openai_and_are_refused_elsewhere() {
    let (mut s, log, _ev) = recording(Provider::OpenAi, UplinkChunk::Ms60);
    frame(&mut s);
    s.update_instructions("Speak French.").await.unwrap();
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        vec![Seen::Audio(640), Seen::Other("instructions")]
    );
    assert!(s.close().await.clean);
    for provider in [Provider::Gemini, Provider::GptLive] {
        let (mut s, log, _ev) = recording(provider, UplinkChunk::Ms60);
        frame(&mut s);
        let err = s.update_instructions("Speak French.").await.unwrap_err();
        assert!(
            matches!(err, Error::InstructionsUpdateUnsupported { provider: p } if p == provider),
            "{err:?}"
        );
        s.send_text("hi").await.unwrap();
        settle().await;
        assert_eq!(
            *log.lock().unwrap(),
            vec![Seen::Audio(640), Seen::Other("text")],
            "nothing queued for the refused update"
        );
        assert!(s.close().await.clean);
    }
}
