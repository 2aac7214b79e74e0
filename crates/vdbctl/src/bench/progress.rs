//! Progress on stderr while the benchmark runs.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress on stderr: a spinner per phase when stderr is a terminal; notes
/// (warnings, clamped nprobe) always go to stderr.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        // indicatif draws nothing when stderr is not a terminal.
        let bar = Some(()).map(|()| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { bar }
    }

    pub(super) fn phase(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    pub(super) fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
