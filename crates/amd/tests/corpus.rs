//! The detector over the labelled corpus (`corpus/`, made by
//! `corpus/make.sh`): each file is one call from the answer on, played
//! frame by frame on a simulated clock and followed by silence up to 30 s.
//! Prints the confusion matrix, the beep figures and the timing
//! percentiles (`cargo test -p callbridge-amd --test corpus -- --nocapture`),
//! and asserts issue 19's targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callbridge_amd::{AmdConfig, Decision, Detector, Verdict};
use callbridge_audio::g711::ulaw_to_linear;

const FRAME: Duration = Duration::from_millis(20);
/// Every call is played for this long (the file, then silence).
const CALL: Duration = Duration::from_secs(30);

struct Case {
    file: String,
    class: String,
    /// The labelled beep: (Hz, start ms, length ms).
    beep: Option<(f32, u64, u64)>,
    text: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn cases() -> Vec<Case> {
    let labels = std::fs::read_to_string(corpus_dir().join("labels.tsv")).unwrap();
    labels
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 10, "{line}");
            let beep = (f[2] != "-").then(|| {
                (
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                )
            });
            Case {
                file: f[0].to_owned(),
                class: f[1].to_owned(),
                beep,
                text: f[9].to_owned(),
            }
        })
        .collect()
}

/// Plays one file; its decisions.
fn run(cfg: &AmdConfig, file: &str) -> Vec<Decision> {
    let codes = std::fs::read(corpus_dir().join(file)).unwrap();
    let mut amd = Detector::new(cfg.clone()).unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let frames = CALL.as_millis() / FRAME.as_millis();
    for i in 0..frames as usize {
        let frame: [i16; 160] =
            std::array::from_fn(|n| codes.get(i * 160 + n).map_or(0, |&c| ulaw_to_linear(c)));
        amd.push_frame(t0 + FRAME * (i as u32 + 1), &frame);
        out.extend(std::iter::from_fn(|| amd.poll_decision()));
        if amd.is_done() {
            break;
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fmt(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

#[test]
fn the_detector_meets_issue_19s_targets_on_the_corpus() {
    let cfg = AmdConfig::default();
    let cases = cases();
    let columns = [
        Verdict::Human,
        Verdict::Machine,
        Verdict::NoSpeech,
        Verdict::Unreachable,
        Verdict::Unknown,
    ];
    let mut matrix: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut human_as_machine, mut machine_as_human) = (0usize, 0usize);
    let (mut beeps, mut beeps_found, mut false_beeps_human, mut false_beeps_machine) =
        (0usize, 0usize, 0usize, 0usize);
    let mut human_times = Vec::new();
    let mut human_after_speech = Vec::new();
    let mut human_from_onset = Vec::new();
    // (from the first word, greeting, utterances, file, text) per human verdict.
    let mut slowest = Vec::new();
    let mut machine_times = Vec::new();
    let mut end_beep_delay = Vec::new();
    let mut latest_first = Duration::ZERO;
    let mut misses = Vec::new();
    for case in &cases {
        let d = run(&cfg, &case.file);
        let first = d.first().expect("every call gets a verdict");
        latest_first = latest_first.max(first.evidence.decided_at);
        *counts.entry(case.class.as_str()).or_default() += 1;
        let row = matrix.entry(case.class.as_str()).or_default();
        let col = columns.iter().position(|v| *v == first.verdict).unwrap();
        row[col] += 1;
        let heard_beep = d.iter().find_map(|d| d.evidence.beep);
        let expected = match case.class.as_str() {
            "human" => Verdict::Human,
            "machine" => Verdict::Machine,
            "sit" => Verdict::Unreachable,
            _ => Verdict::NoSpeech,
        };
        if first.verdict != expected {
            misses.push(format!(
                "{} ({}): {:?} at {} greeting {} utterances {} {:?}",
                case.file,
                case.class,
                first.verdict,
                fmt(first.evidence.decided_at),
                fmt(first.evidence.greeting),
                first.evidence.utterances,
                case.text
            ));
        }
        match case.class.as_str() {
            "human" => {
                if first.verdict == Verdict::Machine {
                    human_as_machine += 1;
                }
                if heard_beep.is_some() {
                    false_beeps_human += 1;
                }
                if first.verdict == Verdict::Human {
                    human_times.push(first.evidence.decided_at);
                    if let Some(end) = first.evidence.last_sound {
                        human_after_speech.push(first.evidence.decided_at - end);
                    }
                    if let Some(onset) = first.evidence.speech_onset {
                        human_from_onset.push(first.evidence.decided_at - onset);
                        slowest.push((
                            first.evidence.decided_at - onset,
                            first.evidence.greeting,
                            first.evidence.utterances,
                            case.file.as_str(),
                            case.text.as_str(),
                        ));
                    }
                }
            }
            "machine" => {
                if matches!(first.verdict, Verdict::Human | Verdict::Unknown) {
                    machine_as_human += 1;
                }
                if first.verdict == Verdict::Machine {
                    machine_times.push(first.evidence.decided_at);
                }
                match (case.beep, heard_beep) {
                    (Some((hz, start, len)), Some(b)) => {
                        let end = Duration::from_millis(start + len);
                        let on_time = b.start.abs_diff(Duration::from_millis(start))
                            <= Duration::from_millis(60);
                        if (b.frequency_hz - hz).abs() <= 25.0 && on_time {
                            beeps_found += 1;
                            if let Some(e) = d.iter().find(|d| d.verdict == Verdict::MachineEndBeep)
                            {
                                end_beep_delay.push(e.evidence.decided_at.saturating_sub(end));
                            }
                        } else {
                            misses.push(format!(
                                "{}: beep {hz} Hz at {start} ms, heard {b:?}",
                                case.file
                            ));
                        }
                        beeps += 1;
                    }
                    (Some((hz, start, len)), None) => {
                        beeps += 1;
                        misses.push(format!(
                            "{}: beep {hz} Hz {len} ms at {start} ms not heard; {:?}",
                            case.file,
                            d.iter().map(|d| d.verdict).collect::<Vec<_>>()
                        ));
                    }
                    (None, Some(b)) => {
                        false_beeps_machine += 1;
                        misses.push(format!("{}: no beep, heard {b:?}", case.file));
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    human_times.sort();
    human_after_speech.sort();
    human_from_onset.sort();
    machine_times.sort();
    end_beep_delay.sort();

    println!("\nconfusion matrix (rows: truth; columns: first verdict)");
    println!(
        "{:<9}{:>7}{:>9}{:>11}{:>13}{:>9}",
        "", "human", "machine", "no_speech", "unreachable", "unknown"
    );
    for (class, row) in &matrix {
        println!(
            "{class:<9}{:>7}{:>9}{:>11}{:>13}{:>9}",
            row[0], row[1], row[2], row[3], row[4]
        );
    }
    let humans = counts["human"];
    let machines = counts["machine"];
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    println!(
        "humans taken for machines: {human_as_machine}/{humans} ({:.1} %)",
        pct(human_as_machine, humans)
    );
    println!(
        "machines taken for humans (human or unknown): {machine_as_human}/{machines} ({:.1} %)",
        pct(machine_as_human, machines)
    );
    println!(
        "beep recall: {beeps_found}/{beeps} ({:.1} %); false beeps: {false_beeps_human} in {humans} humans, {false_beeps_machine} in machines without a beep",
        pct(beeps_found, beeps)
    );
    println!(
        "time to human verdict from the answer: p50 {} p95 {} max {}",
        fmt(percentile(&human_times, 0.5)),
        fmt(percentile(&human_times, 0.95)),
        fmt(percentile(&human_times, 1.0))
    );
    println!(
        "time to human verdict from the callee's first word: p50 {} p95 {} max {}",
        fmt(percentile(&human_from_onset, 0.5)),
        fmt(percentile(&human_from_onset, 0.95)),
        fmt(percentile(&human_from_onset, 1.0))
    );
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    println!("slowest human verdicts from the first word:");
    for (t, greeting, utterances, file, text) in slowest.iter().take(6) {
        println!(
            "  {} {file}: greeting {} in {utterances} utterance(s) {text:?}",
            fmt(*t),
            fmt(*greeting)
        );
    }
    println!(
        "time to human verdict from the end of the callee's speech: p50 {} p95 {}",
        fmt(percentile(&human_after_speech, 0.5)),
        fmt(percentile(&human_after_speech, 0.95))
    );
    println!(
        "time to machine verdict from the answer: p50 {} p95 {}",
        fmt(percentile(&machine_times, 0.5)),
        fmt(percentile(&machine_times, 0.95))
    );
    println!(
        "machine_end_beep after the beep's end: p50 {} max {}",
        fmt(percentile(&end_beep_delay, 0.5)),
        fmt(percentile(&end_beep_delay, 1.0))
    );
    println!("latest first verdict: {}", fmt(latest_first));
    println!("misses:");
    for m in &misses {
        println!("  {m}");
    }

    assert!(humans >= 100 && machines >= 100, "the corpus is too small");
    assert!(
        pct(human_as_machine, humans) <= 2.0,
        "humans taken for machines"
    );
    assert!(
        pct(machine_as_human, machines) <= 10.0,
        "machines taken for humans"
    );
    assert!(pct(beeps_found, beeps) >= 95.0, "beep recall");
    assert!(
        false_beeps_human as f64 <= humans as f64 / 100.0,
        "false beeps in human answers"
    );
    assert!(latest_first <= cfg.decision_timeout, "a verdict after 8 s");
    // Time to a human verdict: issue 19's bar (p50 <= 1.2 s, p95 <= 2 s),
    // from the callee's first word. From the answer it cannot be met on
    // this corpus (p50 2.2 s): the callees wait 0.25-2.5 s before they
    // speak. With the issue's single rule (800 ms of silence after any
    // greeting of at most 1.5 s) it was 1.38 s / 2.08 s: a 0.55 s
    // "Hello?" waited 0.8 s, and the slow tail was two- and three-word
    // answers of 1.2-1.5 s ("Hello, Maria speaking." at 130-165 wpm) that
    // waited 0.8 s more. `human_quick_silence` (600 ms after a word or
    // two) and `human_verdict_by` (1.9 s from the first word, but never
    // under 600 ms of silence) bring it to 1.18 s / 1.90 s for one more
    // machine taken for a person (a 1.44 s greeting whose beep came 0.74 s
    // after it) and its beep.
    assert!(
        percentile(&human_from_onset, 0.5) <= Duration::from_millis(1200),
        "p50 of the time to a human verdict from the first word"
    );
    assert!(
        percentile(&human_from_onset, 0.95) <= Duration::from_secs(2),
        "p95 of the time to a human verdict from the first word"
    );
    // And what the rules promise: the verdict comes at most
    // `human_silence` after the greeting's end (one frame of slack), and
    // by `human_max_greeting + human_quick_silence` from the first word.
    let slack = FRAME;
    assert!(
        percentile(&human_after_speech, 1.0) <= cfg.human_silence + slack,
        "a human verdict late after the greeting"
    );
    assert!(
        percentile(&human_from_onset, 1.0)
            <= (cfg.human_max_greeting + cfg.human_quick_silence).max(cfg.human_verdict_by) + slack,
        "a human verdict late after the first word"
    );
    assert_eq!(matrix["sit"][3], counts["sit"], "every SIT is unreachable");
    assert_eq!(
        matrix["silence"][2], counts["silence"],
        "every silent call is no_speech"
    );
}

/// Stage B on the corpus's scripts (the text each file was spoken from, a
/// perfect transcription): every greeting is a machine by its words, every
/// answer a human. Real transcriptions are worse; this checks the phrase
/// lists and counts against the greetings the corpus uses.
#[test]
fn the_words_of_every_greeting_and_answer_decide_right() {
    use callbridge_amd::{WordConfig, WordEvidence};
    let cfg = WordConfig::default();
    let mut wrong = Vec::new();
    for case in cases() {
        let expected = match case.class.as_str() {
            "human" => Verdict::Human,
            "machine" => Verdict::Machine,
            _ => continue,
        };
        let mut w = WordEvidence::new(&cfg, "en-US").unwrap();
        let verdict = w.push_transcript(&case.text).or_else(|| w.end_of_turn());
        if verdict != Some(expected) {
            wrong.push(format!("{} {:?}: {verdict:?}", case.file, case.text));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
