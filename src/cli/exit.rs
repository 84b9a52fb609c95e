//! Exit statuses (documented in chkfs(1), EXIT STATUS).

use crate::save::SaveError;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    /// The snapshot was written, but some files could not be read.
    Partial = 3,
    /// `check` found damage.
    Damage = 4,
    /// The repository changed too often while being read (try again).
    Busy = 5,
    /// No key file of the encrypted repository opens with the password.
    WrongPassword = 6,
    Interrupted = 130,
}

/// Marks the failure of a command whose status 1 means something else
/// (`diff`: the two differ): its failures exit with 2, as diff(1)'s do.
#[derive(Debug, thiserror::Error)]
#[error("cannot compare")]
pub struct Trouble;

/// A mistake in the command line that clap cannot see.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// True when writing standard output failed because its reader closed it.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or(match c.downcast_ref::<crate::browse::BrowseError>() {
            Some(crate::browse::BrowseError::Output(io)) => Some(io),
            _ => None,
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn classify(e: &anyhow::Error) -> ExitCode {
    let code = classify_cause(e);
    let trouble = e.downcast_ref::<Trouble>().is_some();
    if trouble && code == ExitCode::Failure {
        return ExitCode::Usage;
    }
    code
}

fn classify_cause(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return ExitCode::Usage;
        }
        match cause.downcast_ref::<SaveError>() {
            Some(SaveError::Interrupted) => return ExitCode::Interrupted,
            Some(SaveError::Usage(_)) => return ExitCode::Usage,
            _ => {}
        }
        match cause.downcast_ref::<StoreError>() {
            Some(StoreError::Busy(_)) => return ExitCode::Busy,
            Some(StoreError::WrongPassword(_)) => return ExitCode::WrongPassword,
            _ => {}
        }
        if let Some(SaveError::Store(StoreError::Busy(_))) = cause.downcast_ref::<SaveError>() {
            return ExitCode::Busy;
        }
    }
    ExitCode::Failure
}
