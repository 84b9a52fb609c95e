//! Where the password of an encrypted repository comes from: a file
//! (CHKFS_PASSWORD_FILE), a command's output (CHKFS_PASSWORD_COMMAND), or
//! the terminal; never from a command-line argument, which every user of
//! the machine can read in the process list.

use crate::store::{PasswordSource, StoreError};
use std::io::Read;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// The variables a password is looked for in: `CHKFS` for the repository
/// a command works on, `CHKFS_FROM` for the source of `copy`, `CHKFS_NEW`
/// for the password a new key file gets.
#[derive(Clone, Copy)]
pub struct Passwords {
    pub prefix: &'static str,
}

pub const REPO: Passwords = Passwords { prefix: "CHKFS" };
pub const FROM: Passwords = Passwords { prefix: "CHKFS_FROM" };
pub const NEW: Passwords = Passwords { prefix: "CHKFS_NEW" };

/// A password is at most this long (a file given by mistake is refused,
/// not read whole).
const MAX_PASSWORD: u64 = 4096;

impl PasswordSource for Passwords {
    fn password(&self, location: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        match self.given()? {
            Some(p) => Ok(p),
            None => ask(&format!("password for {location}: "), self.prefix),
        }
    }
}

impl Passwords {
    /// The password from the file or command variables, when one is set.
    pub fn given(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let (file_var, command_var) =
            (format!("{}_PASSWORD_FILE", self.prefix), format!("{}_PASSWORD_COMMAND", self.prefix));
        let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
        let command = std::env::var_os(&command_var).filter(|v| !v.is_empty());
        if file.is_some() && command.is_some() {
            return Err(StoreError::Password(format!("both {file_var} and {command_var} are set: set one")));
        }
        let password = if let Some(path) = file {
            let mut buf = Zeroizing::new(Vec::new());
            std::fs::File::open(&path).and_then(|f| f.take(MAX_PASSWORD + 1).read_to_end(&mut buf)).map_err(|e| {
                StoreError::Password(format!("{file_var}: cannot read {}: {e}", path.to_string_lossy()))
            })?;
            buf
        } else if let Some(cmd) = command {
            run_command(&command_var, &cmd)?
        } else {
            return Ok(None);
        };
        let password = first_line(password);
        if password.is_empty() || password.len() as u64 > MAX_PASSWORD {
            return Err(StoreError::Password(format!("{file_var}/{command_var}: the password is empty or too long")));
        }
        Ok(Some(password))
    }

    /// A password for a new key: from the variables, or asked twice on the
    /// terminal.
    pub fn new_password(&self, what: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if let Some(p) = self.given()? {
            return Ok(p);
        }
        let first = ask(&format!("{what}: "), self.prefix)?;
        let again = ask(&format!("{what} again: "), self.prefix)?;
        if first != again {
            return Err(StoreError::Password("the two passwords differ; nothing was changed".into()));
        }
        Ok(first)
    }
}

fn run_command(var: &str, cmd: &std::ffi::OsStr) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let fail = |why: String| StoreError::Password(format!("{var}: {why}"));
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    let mut child = child;
    let mut stdout = Zeroizing::new(Vec::new());
    let read = child.stdout.take().map(|out| out.take(MAX_PASSWORD + 1).read_to_end(&mut stdout));
    if stdout.len() as u64 > MAX_PASSWORD {
        // It would go on writing (`yes`): stopped, not read to its end.
        let _ = child.kill();
        let _ = child.wait();
        return Err(fail("its output is too long for a password".into()));
    }
    let status = child.wait().map_err(|e| fail(format!("cannot wait for it: {e}")))?;
    if let Some(Err(e)) = read {
        return Err(fail(format!("cannot read its output: {e}")));
    }
    if !status.success() {
        return Err(fail(format!("the command failed ({status})")));
    }
    Ok(stdout)
}

/// The first line, without its line ending (a file written by an editor
/// ends with one).
fn first_line(mut p: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    if let Some(end) = p.iter().position(|&b| b == b'\n') {
        p.truncate(end);
    }
    if p.last() == Some(&b'\r') {
        p.pop();
    }
    p
}

/// Asks on the controlling terminal, without echo.
fn ask(prompt: &str, prefix: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_err() {
        return Err(StoreError::Password(format!(
            "a password is needed and there is no terminal to ask on: set {prefix}_PASSWORD_FILE or {prefix}_PASSWORD_COMMAND"
        )));
    }
    let answer = rpassword::prompt_password(prompt)
        .map_err(|e| StoreError::Password(format!("cannot read a password from the terminal: {e}")))?;
    let answer = Zeroizing::new(answer.into_bytes());
    if answer.is_empty() {
        return Err(StoreError::Password("an empty password is refused".into()));
    }
    Ok(answer)
}
