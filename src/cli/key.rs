//! `chkfs key`: the key files of an encrypted repository.

use super::args::KeyCommand;
use super::exit::{ExitCode, UsageError};
use super::format::{local, rfc3339};
use super::password;
use super::repo_path::RepoArgs;
use crate::store::KeyInfo;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct KeyJson {
    id: String,
    current: bool,
    created: String,
    host: String,
    user: String,
    kdf_memory_kib: u32,
    kdf_iterations: u32,
}

pub fn run(ctx: &RepoArgs, command: KeyCommand) -> Result<ExitCode> {
    let repo = ctx.open()?;
    match command {
        KeyCommand::List { json } => list(&repo.list_keys()?, json)?,
        KeyCommand::Add { kdf } => {
            let password = password::NEW.new_password("password for the new key")?;
            let id = repo.add_key(&password, kdf.cost())?;
            super::progress::summary!("chkfs: added key {id:032x}");
        }
        KeyCommand::Remove { id } => {
            let id = find(&repo.list_keys()?, &id)?;
            repo.remove_key(id)?;
            super::progress::summary!("chkfs: removed key {id:032x}");
        }
        KeyCommand::Passwd { kdf } => {
            let old = repo.list_keys()?.into_iter().find(|k| k.current).map(|k| k.id);
            let password = password::NEW.new_password("new password")?;
            let id = repo.add_key(&password, kdf.cost())?;
            // The new key is stored (and synced) before the old one goes.
            if let Some(old) = old {
                repo.replace_key_file(old)?;
            }
            super::progress::summary!("chkfs: password changed (key {id:032x})");
        }
    }
    Ok(ExitCode::Ok)
}

fn list(keys: &[KeyInfo], json: bool) -> Result<()> {
    if json {
        let rows: Vec<KeyJson> = keys
            .iter()
            .map(|k| KeyJson {
                id: format!("{:032x}", k.id),
                current: k.current,
                created: rfc3339(k.meta.created),
                host: k.meta.host.clone(),
                user: k.meta.user.clone(),
                kdf_memory_kib: k.meta.kdf.memory_kib,
                kdf_iterations: k.meta.kdf.iterations,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("  {:<32}  {:<20}  {:<16}  user", "id", "created", "host");
    for k in keys {
        let mark = if k.current { "*" } else { " " };
        let created = local(k.meta.created);
        let host = crate::text::escape_str(&k.meta.host);
        println!("{mark} {:032x}  {created:<20}  {host:<16}  {}", k.id, crate::text::escape_str(&k.meta.user));
    }
    Ok(())
}

/// The key whose id starts with `prefix` (hex), when exactly one does.
fn find(keys: &[KeyInfo], prefix: &str) -> Result<u128> {
    let prefix = prefix.to_ascii_lowercase();
    let matches: Vec<u128> = keys.iter().map(|k| k.id).filter(|id| format!("{id:032x}").starts_with(&prefix)).collect();
    match matches.as_slice() {
        [one] if !prefix.is_empty() => Ok(*one),
        [] => Err(UsageError(format!("no key id starts with {prefix:?}")).into()),
        _ => Err(UsageError(format!("key id prefix {prefix:?} is ambiguous or empty")).into()),
    }
}
