//! Secret masking: output becomes lines, and every occurrence of a secret value in a line becomes
//! `********`, however the bytes were split when they arrived.

use std::borrow::Cow;

/// What a secret value is replaced with.
pub const MASK: &str = "********";

/// Longest line kept whole. A longer run of bytes without a line break (a progress bar, binary
/// output) is passed on in pieces of this size, so memory stays bounded whatever a step prints.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Replaces secret values in lines. A multi-line value is masked line by line, since output is
/// seen one line at a time.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    /// Longest first, so a secret that contains another is masked whole.
    needles: Vec<Vec<u8>>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<Vec<u8>> = values
            .into_iter()
            .flat_map(|value| value.split('\n').map(|line| line.trim_end_matches('\r').as_bytes().to_vec()).collect::<Vec<_>>())
            .filter(|needle| !needle.is_empty())
            .collect();
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The longest value masked; a splitter keeps this many bytes minus one across a cut.
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, Vec::len)
    }

    pub fn mask<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        let mut current: Cow<'a, [u8]> = Cow::Borrowed(line);
        for needle in &self.needles {
            if let Some(first) = find(&current, needle) {
                let mut replaced = Vec::with_capacity(current.len());
                let mut rest: &[u8] = &current;
                let mut at = first;
                loop {
                    replaced.extend_from_slice(&rest[..at]);
                    replaced.extend_from_slice(MASK.as_bytes());
                    rest = &rest[at + needle.len()..];
                    match find(rest, needle) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
                replaced.extend_from_slice(rest);
                current = Cow::Owned(replaced);
            }
        }
        current
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    let first = needle[0];
    let mut start = 0;
    while start + needle.len() <= haystack.len() {
        let offset = haystack[start..=haystack.len() - needle.len()].iter().position(|byte| *byte == first)?;
        let at = start + offset;
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

/// Turns a stream of byte chunks into masked lines.
#[derive(Debug)]
pub struct LineSplitter {
    buffer: Vec<u8>,
    masker: Masker,
}

impl LineSplitter {
    pub fn new(masker: Masker) -> Self {
        Self { buffer: Vec::new(), masker }
    }

    /// Adds bytes; calls `emit` with each completed line, masked, without its line break.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8])) {
        while let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') {
            let (line, rest) = bytes.split_at(newline);
            if self.buffer.is_empty() {
                self.emit_line(line, emit);
            } else {
                self.buffer.extend_from_slice(line);
                let whole = std::mem::take(&mut self.buffer);
                self.emit_line(&whole, emit);
            }
            bytes = &rest[1..];
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > MAX_LINE_BYTES {
            // Cut the long line, keeping enough of its end that a secret across the cut is
            // still seen whole in the next piece.
            let keep = self.masker.longest().saturating_sub(1).min(self.buffer.len());
            let cut = self.buffer.len() - keep;
            let tail = self.buffer.split_off(cut);
            let head = std::mem::replace(&mut self.buffer, tail);
            // A secret may end exactly in the kept tail and start in the head; mask the head
            // together with the tail, then pass on only the head's part.
            let mut joined = head.clone();
            joined.extend_from_slice(&self.buffer);
            let masked = self.masker.mask(&joined);
            if masked.len() == joined.len() {
                emit(&masked[..head.len()]);
            } else {
                // A secret crossed the cut: pass the whole masked run on and start afresh.
                emit(&masked);
                self.buffer.clear();
            }
        }
    }

    /// Emits what is left (a last line without a line break).
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            self.emit_line(&rest, emit);
        }
    }

    fn emit_line(&self, line: &[u8], emit: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        emit(&self.masker.mask(line));
    }
}
