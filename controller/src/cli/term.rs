//! Where a command writes, reads its confirmations from, and whether it may
//! use colour, prompts and a progress line: only on a terminal.

use super::CliError;
use std::io::{self, BufRead, IsTerminal, Write};

pub const RED: &str = "31";
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";
pub const CYAN: &str = "36";
pub const BOLD: &str = "1";

/// `text` in an ANSI SGR colour when `on`, plain otherwise.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The streams of one command run.
pub struct Term<'a> {
    /// Results: tables, JSON, YAML, the diff.
    pub out: &'a mut dyn Write,
    /// Notes, warnings, progress, prompts.
    pub err: &'a mut dyn Write,
    /// Answers to prompts (and `-` for a key file).
    pub input: &'a mut dyn BufRead,
    /// Colour on `out`.
    pub color: bool,
    /// Colour on `err`.
    pub err_color: bool,
    /// `input` is a terminal: a person can answer a prompt.
    pub interactive: bool,
    /// `err` is a terminal: a progress line may be redrawn in place.
    pub live_progress: bool,
}

impl<'a> Term<'a> {
    /// No colour, no prompts, no progress redraws: for scripts and tests.
    pub fn plain(out: &'a mut dyn Write, err: &'a mut dyn Write, input: &'a mut dyn BufRead) -> Self {
        Term { out, err, input, color: false, err_color: false, interactive: false, live_progress: false }
    }

    /// On the process's own streams, colour and prompts only where they are
    /// terminals (and colour not when `NO_COLOR` is set).
    pub fn stdio(out: &'a mut dyn Write, err: &'a mut dyn Write, input: &'a mut dyn BufRead) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_tty = io::stdout().is_terminal();
        let stderr_tty = io::stderr().is_terminal();
        Term {
            out,
            err,
            input,
            color: stdout_tty && !no_color,
            err_color: stderr_tty && !no_color,
            interactive: io::stdin().is_terminal() && stderr_tty,
            live_progress: stderr_tty,
        }
    }

    /// A note on `err`: `warning: ...` in yellow, and so on.
    pub fn note(&mut self, tag: &str, code: &str, text: &str) -> Result<(), CliError> {
        let tag = paint(self.err_color, code, tag);
        // Errors quote API messages and file contents: printable, line by line.
        let text: Vec<_> = text.split('\n').map(terway_hybrid_api::text::printable).collect();
        writeln!(self.err, "{tag}: {}", text.join("\n"))?;
        Ok(())
    }

    pub fn warn(&mut self, text: &str) -> Result<(), CliError> {
        self.note("warning", YELLOW, text)
    }

    /// Asks `question` (a yes/no prompt on `err`), unless `yes` answers it
    /// already. Without a terminal to ask on it refuses: nothing is changed
    /// on a guess. `action` says what would be refused ("install Terway").
    pub fn confirm(&mut self, question: &str, action: &str, yes: bool) -> Result<bool, CliError> {
        if yes {
            return Ok(true);
        }
        if !self.interactive {
            return Err(CliError::Refused(format!(
                "not confirmed: there is no terminal to ask whether to {action}; pass --yes to confirm \
                 (or --dry-run to see what would happen)"
            )));
        }
        write!(self.err, "{question} [y/N]: ")?;
        self.err.flush()?;
        let mut answer = String::new();
        self.input.read_line(&mut answer)?;
        Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}
