//! What a run shows: when stdout is a terminal, an indicatif progress bar
//! on stdout (calls live, done, remaining) with the per-call lines printed
//! above it; otherwise (cron) only the per-call lines and the summary, one
//! line each on stdout.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The run's output.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar when stdout is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar }
    }

    /// One line (above the bar on a terminal).
    pub fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => println!("{s}"),
        }
    }

    /// The counters: calls live, calls done, leads still to dial.
    pub fn update(&self, live: usize, done: u64, remaining: u64) {
        if let Some(b) = &self.bar {
            b.set_length(done + live as u64 + remaining);
            b.set_position(done);
            b.set_message(format!("live {live} · done {done} · remaining {remaining}"));
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
