//! The words and colours every output mode shares: status markers and words, outcomes, durations, painting.

use std::time::Duration;

use runtime::Status;

/// Colours for step names, as ANSI SGR parameters. Red and green are left out: they mean failed and passed.
const STEP_PALETTE: [&str; 8] = ["36", "35", "33", "34", "96", "95", "93", "94"];
pub(super) const GREEN: &str = "32";
pub(super) const RED: &str = "31";
pub(super) const BOLD: &str = "1";
pub(super) const DIM: &str = "2";

/// The palette colour of a step: declared steps of one workflow take consecutive colours from a
/// start that depends on the workflow's name, so neighbours differ and a pipeline looks the same
/// on every run. A step the workflow did not declare is coloured by its name.
pub(super) fn step_colour(workflow: &str, declared_index: Option<usize>, step: &str) -> &'static str {
    let index = match declared_index {
        Some(index) => stable_hash(workflow.as_bytes()).wrapping_add(index as u64),
        None => stable_hash(format!("{workflow}/{step}").as_bytes()),
    };
    STEP_PALETTE[(index % STEP_PALETTE.len() as u64) as usize]
}

/// FNV-1a: the same on every run and platform, unlike the standard library's seeded hasher.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

pub(super) fn push_painted(text: &mut String, colored: bool, colour: &str, words: &str) {
    if colored && !colour.is_empty() {
        text.push_str("\x1b[");
        text.push_str(colour);
        text.push('m');
        text.push_str(words);
        text.push_str("\x1b[0m");
    } else {
        text.push_str(words);
    }
}

pub(super) fn status_marker(status: Status) -> &'static str {
    match status {
        Status::Success => "✓",
        Status::Failure => "✗",
        Status::Skipped => "–",
        Status::Killed => "■",
        Status::Error => "!",
    }
}

pub(super) fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Success => GREEN,
        Status::Skipped => DIM,
        Status::Failure | Status::Killed | Status::Error => RED,
    }
}

/// The word people read for a status: `passed` rather than the wire's `success`.
pub(super) fn status_word(status: Status) -> &'static str {
    match status {
        Status::Success => "passed",
        Status::Failure => "failed",
        Status::Skipped => "skipped",
        Status::Killed => "killed",
        Status::Error => "error",
    }
}

/// `passed in 1.2s`, `failed (exit 3) in 0.4s`, `skipped: reason`, `killed after 3.0s`, `error: reason`.
pub(super) fn outcome_text(status: Status, exit_code: Option<i64>, duration: Duration, reason: Option<&str>) -> String {
    let mut text = String::from(status_word(status));
    match status {
        Status::Skipped | Status::Error => {}
        Status::Failure => {
            if let Some(code) = exit_code {
                text.push_str(&format!(" (exit {code})"));
            }
            text.push_str(&format!(" in {}", human_duration(duration)));
        }
        Status::Success => text.push_str(&format!(" in {}", human_duration(duration))),
        Status::Killed => text.push_str(&format!(" after {}", human_duration(duration))),
    }
    if let Some(reason) = reason.filter(|reason| !reason.is_empty()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

/// `0.4s`, `12.4s`, `2m 05s`, `1h 02m`.
pub(super) fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        // Tenths rounded down, so that 59.96s does not read as 60.0s.
        format!("{}.{}s", seconds, duration.subsec_millis() / 100)
    } else if seconds < 3600 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {:02}m", seconds / 3600, seconds % 3600 / 60)
    }
}

pub(super) fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}
