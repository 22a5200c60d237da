//! `jwtgate man`: one man page from the same definitions as `--help`.
//!
//! clap_mangen writes the title, the name and the description; the
//! synopsis and the commands are written here: clap_mangen's synopsis
//! leaves out what options take (`[-c|--config]`), and rendering each
//! subcommand as a page of its own would repeat SYNOPSIS and OPTIONS
//! sections inside this one page.

use std::process::ExitCode;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::cli::Cli;
use crate::out;

/// Prints the page on stdout.
pub fn print() -> ExitCode {
    match render() {
        Ok(page) => out::print(&page),
        Err(e) => {
            eprintln!("jwtgate man: {e}");
            ExitCode::from(1)
        }
    }
}

fn render() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    let commands = leaves(&cmd, "jwtgate");
    let mut synopsis = String::from(".SH SYNOPSIS\n");
    for (name, leaf) in &commands {
        synopsis.push_str(".PP\n");
        synopsis.push_str(&usage(name, leaf));
    }
    out.extend_from_slice(synopsis.as_bytes());
    page.render_description_section(&mut out)?;
    let mut text = String::from(".SH OPTIONS\n");
    text.push_str(&options(cmd.get_arguments().filter(|a| !a.is_hide_set())));
    text.push_str(".SH COMMANDS\n");
    commands_section(&cmd, "jwtgate", &mut text);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(TAIL.as_bytes());
    Ok(out)
}

/// Each command that does something as a subsection: its description and
/// options; a group of them (`token`) is said in a paragraph before them.
fn commands_section(cmd: &Command, name: &str, text: &mut String) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let full = format!("{name} {}", sub.get_name());
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(ToString::to_string);
        if sub.has_subcommands() {
            text.push_str(&format!(
                ".PP\n\\fB{}\\fR: {}\n",
                escape(&full),
                escape_line(about.as_deref().unwrap_or_default().trim())
            ));
            commands_section(sub, &full, text);
            continue;
        }
        text.push_str(&format!(".SS \"{}\"\n", escape(&full)));
        if let Some(about) = about {
            text.push_str(&paragraphs(&about, ".PP"));
        }
        text.push_str(&options(listed(sub)));
    }
}

/// The commands that do something (`token sign`, not `token`), with their
/// full names, in the order `--help` lists them.
fn leaves(cmd: &Command, name: &str) -> Vec<(String, Command)> {
    let mut found = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let full = format!("{name} {}", sub.get_name());
        if sub.has_subcommands() {
            found.extend(leaves(sub, &full));
        } else {
            found.push((full, sub.clone()));
        }
    }
    found
}

/// The arguments a command's section lists: not `--help` (every command
/// takes it) nor `--version`, which the page's OPTIONS list once.
fn listed(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        !a.is_hide_set()
            && !matches!(
                a.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
    })
}

/// One synopsis line: `jwtgate run [-c|--config FILE]`.
fn usage(name: &str, cmd: &Command) -> String {
    let mut line = format!("\\fB{}\\fR", escape(name));
    for arg in listed(cmd) {
        let mut form = if arg.is_positional() {
            format!("\\fI{}\\fR", escape(&value_name(arg)))
        } else {
            flags(arg, "|")
        };
        if matches!(arg.get_action(), ArgAction::Append) {
            form.push_str("...");
        }
        if arg.is_required_set() {
            line.push_str(&format!(" {form}"));
        } else {
            line.push_str(&format!(" [{form}]"));
        }
    }
    line.push('\n');
    line
}

/// `\fB-c\fR, \fB--config\fR \fIFILE\fR` (joined by `sep`), for an option.
fn flags(arg: &Arg, sep: &str) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("\\fB\\-{}\\fR", escape(&short.to_string())));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
    }
    let mut form = names.join(sep);
    if arg.get_action().takes_values() {
        form.push_str(&format!(" \\fI{}\\fR", escape(&value_name(arg))));
    }
    form
}

/// What an argument takes, as `--help` names it: its value name, else its
/// id in capitals.
fn value_name(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => arg.get_id().as_str().to_uppercase(),
    }
}

/// Each argument as a tagged paragraph: its forms, its help, its default
/// and the values it takes.
fn options<'a>(args: impl Iterator<Item = &'a Arg>) -> String {
    let mut text = String::new();
    for arg in args {
        text.push_str(".TP\n");
        if arg.is_positional() {
            text.push_str(&format!("\\fI{}\\fR\n", escape(&value_name(arg))));
        } else {
            text.push_str(&flags(arg, ", "));
            text.push('\n');
        }
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        // A flag's default (`false`) says nothing.
        if !defaults.is_empty()
            && arg.get_action().takes_values()
            && !arg.is_hide_default_value_set()
        {
            help.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        if !values.is_empty() && !arg.is_hide_possible_values_set() {
            help.push_str(&format!(" [possible values: {}]", values.join(", ")));
        }
        text.push_str(&paragraphs(help.trim(), ".IP"));
    }
    text
}

/// Text with blank lines between paragraphs as roff: the first paragraph
/// as it comes, each further one after `mark` (`.PP`, or `.IP` inside a
/// tagged paragraph).
fn paragraphs(text: &str, mark: &str) -> String {
    let mut roff = String::new();
    for (i, para) in text.split("\n\n").enumerate() {
        let para = para.trim();
        if para.is_empty() {
            continue;
        }
        if i > 0 || mark == ".PP" {
            roff.push_str(mark);
            roff.push('\n');
        }
        for line in para.lines() {
            roff.push_str(&escape_line(line.trim()));
            roff.push('\n');
        }
    }
    roff
}

/// Text for roff: a backslash and a hyphen-minus as themselves.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A line of text for roff, where a leading `.` or `'` would read as a
/// request.
fn escape_line(line: &str) -> String {
    let escaped = escape(line);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// What the definitions do not say: the environment and the files.
const TAIL: &str = r#".SH EXIT STATUS
.TP
\fB0\fR
Success; for \fBcheck\fR a valid file; for \fBtoken explain\fR the token would be accepted.
.TP
\fB1\fR
\fBcheck\fR: the file is invalid (every problem listed); \fBtoken explain\fR: refused; \fBconfig push\fR and \fBconfig pull\fR: refused whole, or an object could not be read; \fBrun\fR: could not start (a port, the store).
.TP
\fB2\fR
A usage or configuration error (\fBrun\fR: the config is invalid).
.TP
\fB3\fR
\fBtoken explain\fR: cannot tell (valid, but the revocation store could not be read; or the routes are in an etcd that did not answer and the node kept no local copy); \fBconfig push\fR and \fBconfig pull\fR: etcd unreachable.
.SH ENVIRONMENT
.TP
\fBJWTGATE_LOG\fR
Log filter (default \fIinfo\fR; e.g. \fIdebug\fR, or \fIinfo,jwtgate::access=off\fR).
.TP
\fBJWTGATE_LOG_FORMAT\fR
\fItext\fR (default) or \fIjson\fR: one JSON object per line, the access log included. Never a token.
.TP
\fBNOTIFY_SOCKET\fR
Set by systemd for Type=notify: READY=1 once serving, RELOADING=1 around SIGHUP, STOPPING=1; STATUS= says whether the last reload applied the file or it was refused, and which settings wait for a restart.
.TP
\fB${NAME}\fR in the config
Expanded from the environment (secrets, passwords).
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
\fBrun\fR stops accepting, finishes the requests in flight (30 s at most) and exits 0; a second one while it stops exits at once, 143 (SIGTERM) or 130 (SIGINT), cutting the requests still running.
.TP
\fBSIGHUP\fR
\fBrun\fR reloads its config file (an invalid one is refused and the running config stays) and its TLS certificates.
.TP
\fBSIGUSR1\fR, \fBSIGUSR2\fR
Do nothing but say so in the log (jwtgate logs to stderr: there is no log file to reopen).
.SH FILES
.TP
\fI/etc/jwtgate/jwtgate.yaml\fR
The packaged service's config.
.TP
\fI/etc/default/jwtgate\fR
The packaged service's environment: secrets the config names as ${NAME}, JWTGATE_LOG, JWTGATE_LOG_FORMAT=json.
.TP
\fI/var/lib/jwtgate\fR
The packaged service's state_dir: embedded store, blacklist snapshot, key caches, the last config applied from etcd.
.SH SEE ALSO
The README and SPEC (the product contract) of the project, in \fI/usr/share/doc/jwtgate\fR; \fBsystemctl\fR(1) for the jwtgate.service unit.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_roff_would_read_otherwise() {
        assert_eq!(escape_line(".hidden -x a\\b"), "\\&.hidden \\-x a\\eb");
        assert_eq!(escape_line("'quoted"), "\\&'quoted");
        assert_eq!(escape_line("plain"), "plain");
    }

    #[test]
    fn paragraphs_after_the_first_are_marked() {
        assert_eq!(
            paragraphs("one\ntwo\n\nthree", ".IP"),
            "one\ntwo\n.IP\nthree\n"
        );
        assert_eq!(paragraphs("one", ".PP"), ".PP\none\n");
    }
}
