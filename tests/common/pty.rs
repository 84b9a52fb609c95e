//! Runs a command on a pseudo-terminal of its own (its controlling
//! terminal, so /dev/tty is the pty) and answers its prompts, as a person
//! at a terminal would.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct PtyRun {
    pub code: i32,
    /// Everything the command wrote to the terminal.
    pub screen: String,
}

/// Runs `cmd` on a new pty; each time `prompt` has appeared once more on
/// the screen, types the next of `answers` and Enter. Panics after
/// `timeout`.
pub fn run_on_pty(mut cmd: Command, prompt: &str, answers: &[&str], timeout: Duration) -> PtyRun {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let slave_fd = std::os::fd::AsRawFd::as_raw_fd(&slave);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawning on the pty");
    drop(slave);
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = File::from(master.try_clone().unwrap());
    let sink = screen.clone();
    let reading = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the child and its descendants closed the terminal.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut writer = File::from(master);
    let deadline = Instant::now() + timeout;
    let mut answered = 0;
    let code = loop {
        let seen = String::from_utf8_lossy(&screen.lock().unwrap()).matches(prompt).count();
        if answered < answers.len() && seen > answered {
            writer.write_all(format!("{}\n", answers[answered]).as_bytes()).unwrap();
            answered += 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break super::status_code(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out on the pty; screen so far:\n{}", String::from_utf8_lossy(&screen.lock().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(writer);
    // The reader ends when no process holds the terminal any more; a
    // process left holding it (a daemon) is not waited for long.
    let until = Instant::now() + Duration::from_secs(2);
    while !reading.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let screen = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    PtyRun { code, screen }
}

/// What a terminal shows at the end of `screen` (the raw output): lines
/// after carriage returns, cursor moves up and down (ESC [ n A / B) and
/// line erasures (ESC [ 2K, ESC [ K) are applied; other escape
/// sequences are dropped. Trailing spaces are trimmed.
pub fn render(screen: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
            }
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut arg = String::new();
                let mut cmd = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_digit() || c == ';' || c == '?' {
                        arg.push(c);
                    } else {
                        cmd = c;
                        break;
                    }
                }
                let n: usize = arg.parse().unwrap_or(1).max(1);
                match cmd {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' if arg == "2" => {
                        if let Some(l) = lines.get_mut(row) {
                            l.clear();
                        }
                    }
                    'K' => {
                        if let Some(l) = lines.get_mut(row) {
                            l.truncate(col);
                        }
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
        while lines.len() <= row {
            lines.push(Vec::new());
        }
    }
    let mut out: Vec<String> =
        lines.into_iter().map(|l| l.into_iter().collect::<String>().trim_end().to_string()).collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}
