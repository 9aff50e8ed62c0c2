//! Everything the CLI prints: lines, tables, JSON, errors with hints. The only module allowed
//! to write to stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt;
use std::io::{self, Write};

use anyhow::{Result, bail};
use serde::Serialize;

/// An error with a suggestion for the user, printed as `hint:` under the error.
#[derive(Debug)]
pub(crate) struct Hinted {
    pub(crate) error: anyhow::Error,
    pub(crate) hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Hinted {}

/// Wraps `error` with a hint.
pub(crate) fn hint(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error: error.into(),
        hint: hint.into(),
    })
}

/// Prints `error: <chain>` and any hint to stderr.
pub(crate) fn error(err: &anyhow::Error) {
    eprintln!("error: {err:#}");
    if let Some(hinted) = err.chain().find_map(|cause| cause.downcast_ref::<Hinted>()) {
        eprintln!("hint: {}", hinted.hint);
    }
}

/// Whether the error is a closed stdout (`coder users list | head`), which is not a failure.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints a line to stdout.
pub(crate) fn line(text: impl fmt::Display) -> Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// Prints a line to stderr (progress and notes that must not mix with machine output).
pub(crate) fn note(text: impl fmt::Display) {
    eprintln!("{text}");
}

/// Prints text to stderr without a newline (prompts).
pub(crate) fn prompt(text: impl fmt::Display) {
    eprint!("{text}");
    let _ = io::stderr().flush();
}

/// Prints a value as indented JSON.
pub(crate) fn json(value: &impl Serialize) -> Result<()> {
    line(serde_json::to_string_pretty(value)?)
}

/// How a list command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns with a header.
    Table,
    /// Indented JSON (every field, whatever the columns).
    Json,
}

/// A table with named columns; rows are added cell by cell in column order.
pub(crate) struct Table<'a> {
    /// Every column this table can show, lowercase (e.g. "created at").
    available: &'a [&'a str],
    /// The columns chosen, as indices into `available`.
    chosen: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl<'a> Table<'a> {
    /// A table showing `columns` (names from `available`, case-insensitive).
    pub(crate) fn new(available: &'a [&'a str], columns: &[String]) -> Result<Self> {
        let mut chosen = Vec::new();
        for column in columns {
            let wanted = column.trim().to_lowercase();
            match available.iter().position(|name| *name == wanted) {
                Some(idx) => chosen.push(idx),
                None => bail!(
                    "unknown column {column:?}; available columns: {}",
                    available.join(", ")
                ),
            }
        }
        Ok(Self {
            available,
            chosen,
            rows: Vec::new(),
        })
    }

    /// Adds a row given every available column's value in `available` order.
    pub(crate) fn row(&mut self, all_cells: Vec<String>) {
        self.rows.push(
            self.chosen
                .iter()
                .map(|&idx| all_cells.get(idx).cloned().unwrap_or_default())
                .collect(),
        );
    }

    /// The table as text: uppercase headers, columns two spaces apart.
    pub(crate) fn render(&self) -> String {
        let headers: Vec<String> = self
            .chosen
            .iter()
            .map(|&idx| self.available[idx].to_uppercase())
            .collect();
        let mut widths: Vec<usize> = headers
            .iter()
            .map(|header| header.chars().count())
            .collect();
        for row in &self.rows {
            for (idx, cell) in row.iter().enumerate() {
                widths[idx] = widths[idx].max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (idx, cell) in row.iter().enumerate() {
                text.push_str(cell);
                if idx < last {
                    let pad = widths[idx] - cell.chars().count() + 2;
                    text.push_str(&" ".repeat(pad));
                }
            }
            text.push('\n');
        }
        text.pop();
        text
    }

    /// Prints the table.
    pub(crate) fn print(&self) -> Result<()> {
        line(self.render())
    }
}

/// A timestamp as tables show it.
pub(crate) fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_selects_columns() {
        let mut table = Table::new(
            &["id", "username", "email"],
            &["USERNAME".to_owned(), "email".to_owned()],
        )
        .unwrap();
        table.row(vec!["1".into(), "admin".into(), "admin@example.com".into()]);
        table.row(vec![
            "2".into(),
            "bob-the-builder".into(),
            "b@example.com".into(),
        ]);
        assert_eq!(
            table.render(),
            "USERNAME         EMAIL\n\
             admin            admin@example.com\n\
             bob-the-builder  b@example.com"
        );
        let err = Table::new(&["id"], &["nope".to_owned()]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "unknown column \"nope\"; available columns: id"
        );
    }
}
