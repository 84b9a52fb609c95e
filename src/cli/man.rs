//! chkfs(1), generated from the clap definitions plus the sections below.
//! `man/chkfs.1` is this output; a test keeps the two identical.

use super::args::Cli;
use super::exit::ExitCode;
use clap::CommandFactory;
use std::io::Write;

pub fn print() -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(render().as_bytes())?;
    Ok(ExitCode::Ok)
}

/// A completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "chkfs", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::Ok)
}

/// `chkfs help [COMMAND...]`: the help `--help` prints.
pub fn help(path: &[String]) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut at = &mut cmd;
    for name in path {
        let known: Vec<String> = at.get_subcommands().map(|s| s.get_name().to_string()).collect();
        at = at
            .find_subcommand_mut(name)
            .ok_or_else(|| super::exit::UsageError(format!("no command {name:?} (commands: {})", known.join(", "))))?;
    }
    let help = at.render_help();
    let text = match std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        true => help.ansi().to_string(),
        false => help.to_string(),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::Ok)
}

pub fn render() -> String {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone()).date("").source(format!("chkfs {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).expect("writing to a Vec");
    man.render_name_section(&mut out).expect("writing to a Vec");
    man.render_synopsis_section(&mut out).expect("writing to a Vec");
    man.render_description_section(&mut out).expect("writing to a Vec");
    man.render_options_section(&mut out).expect("writing to a Vec");
    let mut page = String::from_utf8(out).expect("roff is UTF-8");
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page.push_str(&render_subcommand(sub));
    }
    page.push_str(EXTRA_SECTIONS);
    page
}

fn render_subcommand(sub: &clap::Command) -> String {
    let mut s = String::new();
    let mut usage = sub.clone().bin_name(format!("chkfs {}", sub.get_name()));
    let usage = usage.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    s.push_str(&format!(".SS \"{}\"\n", escape(usage)));
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        s.push_str(&format!("{}\n", escape(&about.to_string())));
    }
    for arg in sub.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set()) {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let value = arg.get_value_names().and_then(|v| v.first()).map(|v| v.to_string());
        let value = format!("\\fI{}\\fR", escape(&value.unwrap_or_else(|| id.to_uppercase())));
        let takes_value = arg.get_action().takes_values();
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("\\fB\\-{short}\\fR"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
        }
        let head = match (names.is_empty(), takes_value) {
            (true, _) => value,
            (false, true) => format!("{} {value}", names.join(", ")),
            (false, false) => names.join(", "),
        };
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let default = arg.get_default_values().first().map(|d| d.to_string_lossy().into_owned());
        let default = match default {
            Some(d) if !d.is_empty() => format!(" [default: {d}]"),
            _ => String::new(),
        };
        s.push_str(&format!(".TP\n{head}\n{}{}\n", escape(&help), escape(&default)));
    }
    s
}

fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

const EXTRA_SECTIONS: &str = include_str!("man_sections.roff");
