//! Printing: aligned tables for people, JSON/YAML for scripts, colour only on a terminal.

use clap::ValueEnum;
use serde::Serialize;

use super::error::{CliError, CliResult};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
    Yaml,
    /// For a spreadsheet: offered by `tuskfish audit`.
    Csv,
}

/// Prints `data` as JSON/YAML, or the table `table` builds.
pub fn print<T: Serialize>(output: Output, data: &T, table: impl FnOnce() -> String) -> CliResult<()> {
    print!("{}", render(output, data, table)?);
    Ok(())
}

pub fn render<T: Serialize>(output: Output, data: &T, table: impl FnOnce() -> String) -> CliResult<String> {
    match output {
        Output::Table => Ok(table()),
        Output::Json => serde_json::to_string_pretty(data)
            .map(|s| s + "\n")
            .map_err(|e| CliError::Failed(format!("writing JSON: {e}"))),
        Output::Yaml => {
            serde_saphyr::to_string(data).map_err(|e| CliError::Failed(format!("writing YAML: {e}")))
        }
        Output::Csv => Err(CliError::Usage("-o csv is offered by `tuskfish audit`; use -o json here".into())),
    }
}

/// A table cell: its text and an optional colour.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub text: String,
    pub style: Style,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, style: Style::Plain }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell { text: text.to_string(), style: Style::Plain }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    #[default]
    Plain,
    Good,
    Busy,
    Bad,
    Muted,
    Bold,
}

impl From<crate::matrix::Tone> for Style {
    fn from(t: crate::matrix::Tone) -> Self {
        use crate::matrix::Tone;
        match t {
            Tone::Good => Style::Good,
            Tone::Busy => Style::Busy,
            Tone::Bad => Style::Bad,
            Tone::Muted => Style::Muted,
        }
    }
}

impl Style {
    fn ansi(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Good => "\x1b[32m",
            Style::Busy => "\x1b[33m",
            Style::Bad => "\x1b[31m",
            Style::Muted => "\x1b[2m",
            Style::Bold => "\x1b[1m",
        }
    }
}

/// Left-aligned columns separated by three spaces, like kubectl's; colour codes are added after
/// padding so they never disturb the alignment.
pub fn table(header: &[&str], rows: &[Vec<Cell>], color: bool) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let header_cells: Vec<Cell> =
        header.iter().map(|h| Cell { text: (*h).to_string(), style: Style::Bold }).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            let last = i + 1 == columns.min(row.len());
            let pad = if last { 0 } else { widths[i] - cell.text.chars().count() + 3 };
            if color && cell.style != Style::Plain {
                line.push_str(cell.style.ansi());
                line.push_str(&cell.text);
                line.push_str("\x1b[0m");
            } else {
                line.push_str(&cell.text);
            }
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_colour_codes() {
        let rows = vec![
            vec![Cell::from("payments"), Cell { text: "1.3.9 Healthy".into(), style: Style::Good }],
            vec![Cell::from("ledger"), Cell::from("-")],
        ];
        let plain = table(&["APP", "PROD"], &rows, false);
        assert_eq!(plain, "APP        PROD\npayments   1.3.9 Healthy\nledger     -\n");
        let coloured = table(&["APP", "PROD"], &rows, true);
        assert!(coloured.contains("\x1b[32m1.3.9 Healthy\x1b[0m"));
        assert_eq!(strip_ansi(&coloured), plain);
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut in_escape = false;
        for c in s.chars() {
            match (in_escape, c) {
                (false, '\x1b') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }
}
