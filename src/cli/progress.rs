//! What the person running a command sees while it works, on standard
//! error: a bar on a terminal, JSON status lines with `--json` when
//! standard error is not a terminal, nothing otherwise (or with `-q`).
//!
//! Operations only add to atomics (see [`crate::progress::Progress`]); a
//! thread of the display's own draws from them ten times a second, or
//! writes a status line four times a second.

use crate::progress::{Phase, Progress};
use crate::text::escape_path;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `-q` and `-v`, set once from the global flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    pub quiet: bool,
    pub verbose: u8,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// Whether summary lines on standard error are left out (`-q`).
pub fn quiet() -> bool {
    verbosity().quiet
}

/// `eprintln!` for summaries and other lines `-q` leaves out (never for
/// errors or warnings).
macro_rules! summary {
    ($($arg:tt)*) => {
        if !$crate::cli::progress::quiet() {
            eprintln!($($arg)*);
        }
    };
}
pub(crate) use summary;

const BAR_TICK: Duration = Duration::from_millis(100);
const JSON_TICK: Duration = Duration::from_millis(250);

enum Mode {
    Hidden,
    Bar(ProgressBar),
    Json,
}

#[derive(Default)]
struct Counters {
    phase: AtomicU8,
    items_done: AtomicU64,
    items_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_found: AtomicU64,
    dirs_found: AtomicU64,
    added: AtomicU64,
}

struct Shared {
    mode: Mode,
    verbose: u8,
    started: Instant,
    counters: Counters,
    current: Mutex<Option<PathBuf>>,
    phase_started: Mutex<Instant>,
    /// The phase the bar is drawn for (its style).
    drawn: Mutex<Option<Phase>>,
}

/// The display of one command; it goes away (the bar is cleared) when
/// finished, cleared or dropped.
pub struct Display {
    shared: Arc<Shared>,
    ticker: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Display {
    /// The display for a command; `json` is its `--json`.
    pub fn new(json: bool) -> Display {
        let v = verbosity();
        let mode = if v.quiet {
            Mode::Hidden
        } else if std::io::stderr().is_terminal() {
            Mode::Bar(ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()))
        } else if json {
            Mode::Json
        } else {
            Mode::Hidden
        };
        let shared = Arc::new(Shared {
            mode,
            verbose: if v.quiet { 0 } else { v.verbose },
            started: Instant::now(),
            counters: Counters::default(),
            current: Mutex::new(None),
            phase_started: Mutex::new(Instant::now()),
            drawn: Mutex::new(None),
        });
        let ticker = match shared.mode {
            Mode::Hidden => None,
            Mode::Bar(_) => Some(start_ticker(shared.clone(), BAR_TICK)),
            Mode::Json => Some(start_ticker(shared.clone(), JSON_TICK)),
        };
        Display { shared, ticker: Mutex::new(ticker) }
    }

    /// Stops drawing and removes the bar, so that a message printed next
    /// starts on a clean line (before "interrupted", before an error).
    pub fn clear(&self) {
        if let Some((stop, handle)) = self.ticker.lock().take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Mode::Bar(bar) = &self.shared.mode {
            bar.finish_and_clear();
        }
    }

    /// Prints a line on standard error without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.shared.mode {
            Mode::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.clear();
    }
}

fn start_ticker(shared: Arc<Shared>, every: Duration) -> (Sender<()>, JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        loop {
            match rx.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => shared.tick(),
                // Stopped: a last status line says where it ended.
                _ => {
                    if let Mode::Json = shared.mode {
                        shared.json_status();
                    }
                    return;
                }
            }
        }
    });
    (tx, handle)
}

#[derive(Serialize)]
struct Status {
    message_type: &'static str,
    action: &'static str,
    percent_done: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items_done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_items: Option<u64>,
    bytes_done: u64,
    total_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files_found: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dirs_found: Option<u64>,
    seconds_elapsed: f64,
}

impl Shared {
    fn phase(&self) -> Option<Phase> {
        Phase::from_u8(self.counters.phase.load(Ordering::Relaxed))
    }

    fn tick(&self) {
        match &self.mode {
            Mode::Bar(bar) => self.draw(bar, &mut self.drawn.lock()),
            Mode::Json => self.json_status(),
            Mode::Hidden => {}
        }
    }

    fn json_status(&self) {
        let Some(phase) = self.phase() else { return };
        let c = &self.counters;
        let (items, items_total) = (c.items_done.load(Ordering::Relaxed), c.items_total.load(Ordering::Relaxed));
        let (bytes, bytes_total) = (c.bytes_done.load(Ordering::Relaxed), c.bytes_total.load(Ordering::Relaxed));
        let percent = if bytes_total > 0 {
            bytes as f64 / bytes_total as f64
        } else if items_total > 0 {
            items as f64 / items_total as f64
        } else {
            0.0
        };
        let files = matches!(phase, Phase::Save | Phase::Restore);
        let scan = phase == Phase::Scan;
        let status = Status {
            message_type: "status",
            action: phase.name(),
            percent_done: (percent.min(1.0) * 10000.0).round() / 10000.0,
            files_done: files.then_some(items),
            total_files: files.then_some(items_total),
            items_done: (!files && !scan).then_some(items),
            total_items: (!files && !scan).then_some(items_total),
            bytes_done: bytes,
            total_bytes: bytes_total,
            bytes_added: (phase == Phase::Save).then(|| c.added.load(Ordering::Relaxed)),
            files_found: scan.then(|| c.files_found.load(Ordering::Relaxed)),
            dirs_found: scan.then(|| c.dirs_found.load(Ordering::Relaxed)),
            seconds_elapsed: (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        if let Ok(line) = serde_json::to_string(&status) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn draw(&self, bar: &ProgressBar, drawn: &mut Option<Phase>) {
        let Some(phase) = self.phase() else { return };
        let c = &self.counters;
        let (items, items_total) = (c.items_done.load(Ordering::Relaxed), c.items_total.load(Ordering::Relaxed));
        let (bytes, bytes_total) = (c.bytes_done.load(Ordering::Relaxed), c.bytes_total.load(Ordering::Relaxed));
        let by_bytes = bytes_total > 0;
        let new_phase = *drawn != Some(phase);
        if new_phase {
            // The last phase's lines go; the new style is drawn only
            // once its values are set (never a frame of "0 B/0 B").
            if drawn.is_some() {
                bar.finish_and_clear();
            }
            bar.set_draw_target(ProgressDrawTarget::hidden());
            bar.reset();
            let template = if phase == Phase::Scan {
                "{spinner} [{elapsed_precise}] scanning: {msg}".to_string()
            } else if by_bytes {
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {prefix}\n  {msg}".to_string()
            } else {
                format!("{{spinner}} [{{elapsed_precise}}] [{{wide_bar}}] {{pos}}/{{len}} {}", unit(phase))
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            *drawn = Some(phase);
        }
        match phase {
            Phase::Scan => {
                let (f, d) = (c.files_found.load(Ordering::Relaxed), c.dirs_found.load(Ordering::Relaxed));
                bar.set_message(format!("{f} files, {d} directories found"));
            }
            _ if by_bytes => {
                bar.set_length(bytes_total);
                bar.set_position(bytes.min(bytes_total));
                // Rate and time left over the whole phase: steadier than
                // indicatif's estimate over the last few updates.
                let secs = self.phase_started.lock().elapsed().as_secs_f64();
                let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
                let eta = if rate > 0.0 && bytes > 0 {
                    let left = bytes_total.saturating_sub(bytes) as f64 / rate;
                    format!("eta {}", clock(left as u64))
                } else {
                    "eta -".to_string()
                };
                bar.set_prefix(format!("{}/s {eta}", super::format::bytes(rate as u64)));
                let mut msg = format!("{items}/{items_total} {}", unit(phase));
                if phase == Phase::Save {
                    msg.push_str(&format!(", added {}", super::format::bytes(c.added.load(Ordering::Relaxed))));
                }
                if let Some(path) = self.current.lock().as_ref() {
                    let room = terminal_width().saturating_sub(msg.chars().count() + 5);
                    msg.push_str("  ");
                    msg.push_str(&shorten(&escape_path(path), room));
                }
                bar.set_message(msg);
            }
            _ => {
                bar.set_length(items_total);
                bar.set_position(items.min(items_total));
            }
        }
        if new_phase {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        }
        bar.tick();
    }
}

/// Seconds as 1h02m03s, 2m03s or 3s.
fn clock(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn unit(phase: Phase) -> &'static str {
    match phase {
        Phase::Scan | Phase::Save | Phase::Restore => "files",
        Phase::CheckTrees | Phase::GcMark | Phase::Copy => "snapshots",
        Phase::ReadPacks | Phase::GcRewrite | Phase::GcDelete => "packs",
    }
}

/// The columns of the terminal on standard error (80 if unknown).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize, which lives for the call.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// `text` in at most `room` characters: its end, after "...".
pub fn shorten(text: &str, room: usize) -> String {
    let n = text.chars().count();
    if n <= room {
        return text.to_string();
    }
    if room <= 3 {
        return String::new();
    }
    let tail: String = text.chars().skip(n - (room - 3)).collect();
    format!("...{tail}")
}

impl Progress for Display {
    fn begin(&self, phase: Phase, items: u64, bytes: u64) {
        let c = &self.shared.counters;
        // Where the last phase ended, before its counts are reset.
        if let Mode::Json = self.shared.mode {
            self.shared.json_status();
        }
        c.items_done.store(0, Ordering::Relaxed);
        c.bytes_done.store(0, Ordering::Relaxed);
        c.items_total.store(items, Ordering::Relaxed);
        c.bytes_total.store(bytes, Ordering::Relaxed);
        *self.shared.current.lock() = None;
        *self.shared.phase_started.lock() = Instant::now();
        // Nothing to go through (an unchanged save): no empty bar.
        let empty = phase != Phase::Scan && items == 0 && bytes == 0;
        c.phase.store(if empty { 0 } else { phase as u8 }, Ordering::Relaxed);
        match &self.shared.mode {
            Mode::Bar(bar) if empty => {
                bar.finish_and_clear();
                *self.shared.drawn.lock() = None;
            }
            // Shown at once: a short phase is seen too.
            Mode::Bar(bar) => self.shared.draw(bar, &mut self.shared.drawn.lock()),
            Mode::Json if !empty => self.shared.json_status(),
            _ => {}
        }
    }

    fn advance(&self, items: u64, bytes: u64) {
        let c = &self.shared.counters;
        if items > 0 {
            c.items_done.fetch_add(items, Ordering::Relaxed);
        }
        if bytes > 0 {
            c.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn found(&self, files: u64, dirs: u64) {
        let c = &self.shared.counters;
        c.files_found.fetch_add(files, Ordering::Relaxed);
        c.dirs_found.fetch_add(dirs, Ordering::Relaxed);
    }

    fn added(&self, bytes: u64) {
        self.shared.counters.added.fetch_add(bytes, Ordering::Relaxed);
    }

    fn wants_paths(&self, level: u8) -> bool {
        match level {
            0 => matches!(self.shared.mode, Mode::Bar(_)),
            _ => self.shared.verbose >= level,
        }
    }

    fn current(&self, path: &Path) {
        // Never waits: the drawing thread holds the lock only to read it.
        if let Some(mut slot) = self.shared.current.try_lock() {
            *slot = Some(path.to_path_buf());
        }
    }

    fn item(&self, level: u8, what: &str, path: &str) {
        if self.shared.verbose >= level {
            self.println(&format!("{what:<9} {path}"));
        }
    }

    fn message(&self, msg: &str) {
        self.println(&format!("chkfs: {msg}"));
    }

    fn finished(&self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn shortening_keeps_the_end() {
        assert_eq!(shorten("abc", 10), "abc");
        assert_eq!(shorten("/home/me/some/long/path.txt", 12), ".../path.txt");
        assert_eq!(shorten("ééééé", 4), "...é");
    }
}
