//! Progress on stderr while a load runs: a bar on a terminal, otherwise
//! a line per phase (what CI logs and `compare` read).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::load::Watch;

pub struct LoadProgress {
    bar: Option<ProgressBar>,
    warmup: Duration,
    total: Duration,
    at_measure: u64,
    measure_start: Option<Duration>,
}

impl LoadProgress {
    /// `show_bar`: draw a bar (only when stderr is a terminal).
    pub fn new(warmup: Duration, duration: Duration, show_bar: bool) -> LoadProgress {
        let total = warmup + duration;
        let bar = (show_bar && console_is_tty()).then(|| {
            let bar = ProgressBar::new(total.as_millis() as u64);
            let style =
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        LoadProgress {
            bar,
            warmup,
            total,
            at_measure: 0,
            measure_start: None,
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn console_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

impl Watch for LoadProgress {
    fn tick(&mut self, elapsed: Duration, completed: u64) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(elapsed.min(self.total).as_millis() as u64);
        let msg = match self.measure_start {
            None => format!("warm-up ({}s)", self.warmup.as_secs_f64()),
            Some(at) => {
                let secs = (elapsed - at).as_secs_f64().max(1e-3);
                let n = completed - self.at_measure;
                format!("{n} responses, {:.0} req/s", n as f64 / secs)
            }
        };
        bar.set_message(msg);
        // Remember where measuring began for the rate shown.
        if self.measure_start.is_none() && elapsed >= self.warmup {
            self.measure_start = Some(elapsed);
            self.at_measure = completed;
        }
    }

    fn measuring(&mut self) {
        // A plain line too: `compare` samples the proxy's CPU on it.
        self.line(format!(
            "{MEASURING} ({:.1}s)",
            (self.total - self.warmup).as_secs_f64()
        ));
    }

    fn measured(&mut self) {
        self.line(MEASURED.to_string());
    }
}

impl LoadProgress {
    fn line(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// The stderr line that marks the end of the measured window.
pub const MEASURED: &str = "ringmesh-bench: measured";

/// The stderr line that marks the end of warm-up.
pub const MEASURING: &str = "ringmesh-bench: warm-up done, measuring";
