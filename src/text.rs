//! Names as the terminal should see them. File names, symlink targets,
//! host names and messages come from the saved tree or the repository and
//! may hold any byte: printed raw, an escape sequence in a crafted name
//! could rewrite the screen or the terminal's title. Every name that goes
//! into a message passes through here.

use std::fmt::Write;
use std::path::Path;

/// `bytes` as text: valid UTF-8 stays as it is, except control
/// characters (C0, DEL, C1) and backslashes, which are escaped like Rust
/// string literals; bytes that are not UTF-8 become `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

pub fn escape_str(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

pub fn escape_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape_bytes(p.as_os_str().as_bytes())
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_invalid_bytes_are_escaped() {
        assert_eq!(escape_bytes(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape_bytes("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape_bytes(b"\x1b]0;owned\x07"), "\\u{1b}]0;owned\\u{7}");
        assert_eq!(escape_bytes(b"a\nb\\c"), "a\\nb\\\\c");
        assert_eq!(escape_bytes(b"\xff\xfeok"), "\\xff\\xfeok");
        // C1 controls (CSI as U+009B) are as dangerous as ESC [.
        assert_eq!(escape_bytes("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(escape_bytes(b"\x7f"), "\\u{7f}");
    }
}
