//! Human output of the client commands: aligned tables and fields, times and durations, and
//! writing to stdout so that a closed pipe (`| head`) ends quietly instead of panicking.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub(super) struct Table {
    rows: Vec<Vec<String>>,
    indent: usize,
}

impl Table {
    pub(super) fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|cell| (*cell).to_owned()).collect()], indent: 0 }
    }

    pub(super) fn indented(mut self, indent: usize) -> Table {
        self.indent = indent;
        self
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(super) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| self.rows.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = " ".repeat(self.indent);
            for (column, cell) in row.iter().enumerate() {
                if column + 1 < row.len() {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `name  value` lines with the names aligned, indented by two spaces.
pub(super) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in pairs {
        let _ = writeln!(out, "  {name:<width$}  {value}");
    }
    out
}

/// Writes to stdout. A reader that went away (a closed pipe) is not an error: the output is
/// simply no longer wanted.
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    emit_bytes(text.as_bytes()).map(drop)
}

/// As `emit`, flushed at once (logs arrive in pieces). False when stdout is closed.
pub(super) fn emit_bytes(bytes: &[u8]) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(anyhow::anyhow!("cannot write to stdout: {error}")),
    }
}

/// Pretty JSON, for `--json`.
pub(super) fn emit_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    emit(&text)
}

/// Unix seconds now.
pub(super) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0)
}

/// `45s`, `3m 05s`, `2h 04m`, `3d 02h`.
pub(super) fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3600..86400 => format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {:02}h", seconds / 86400, seconds % 86400 / 3600),
    }
}

/// How long ago: `just now`, `5m ago`, `3h ago`, `2d ago`.
pub(super) fn ago(then: i64, now: i64) -> String {
    let seconds = (now - then).max(0);
    match seconds {
        0..5 => "just now".into(),
        5..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

/// `2026-01-05 10:20:03 UTC`.
pub(super) fn timestamp(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86400);
    let time = unix_seconds.rem_euclid(86400);
    // Howard Hinnant's days-to-civil algorithm.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", time / 3600, time % 3600 / 60, time % 60)
}

/// The first line of a commit message, cut to `limit` characters.
pub(super) fn first_line(message: &str, limit: usize) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= limit {
        line.to_owned()
    } else {
        let mut short: String = line.chars().take(limit.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// The first 8 characters of a commit.
pub(super) fn short_commit(commit: &str) -> &str {
    commit.get(..8).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_the_last_one_ragged() {
        let mut table = Table::new(&["NAME", "STATE", "NOTE"]);
        table.row(vec!["build".into(), "success".into(), String::new()]);
        table.row(vec!["a".into(), "é".into(), "last".into()]);
        assert_eq!(table.render(), "NAME   STATE    NOTE\nbuild  success\na      é        last\n");
    }

    #[test]
    fn times_read_as_dates_and_durations() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(timestamp(1_767_608_403), "2026-01-05 10:20:03 UTC");
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(185), "3m 05s");
        assert_eq!(duration(7440), "2h 04m");
        assert_eq!(ago(100, 102), "just now");
        assert_eq!(ago(0, 7200), "2h ago");
    }
}
