//! Server-sent events read from a byte stream, as the HTML standard's EventSource parses them:
//! lines end with LF, CR or CRLF (even split across chunks), `:` lines are comments, `data`
//! lines join with newlines, a blank line ends an event, and the last `id` is kept for resuming.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SseEvent {
    /// `message` when the server named none.
    pub event: String,
    pub data: String,
    /// The last event id seen so far on the stream (ids carry over to later events).
    pub id: Option<String>,
}

/// Turns chunks of bytes into events. Bytes are kept until their line ends, so a chunk may end
/// anywhere: inside a line, between CR and LF, or inside a multi-byte character.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    /// The line being read, not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// A line was read: a byte order mark can only start the first one.
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    pub(super) fn new() -> SseParser {
        SseParser::default()
    }

    /// The reconnection delay the server asked for with `retry:`, in milliseconds.
    pub(super) fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Reads a chunk and returns the events it completed, in order.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                other => self.line.push(other),
            }
        }
        events
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let mut line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned();
            }
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) => self.retry_ms = value.parse().ok(),
            _ => {}
        }
    }

    /// A blank line: the event so far is complete. One without data is dropped, as in browsers.
    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let event = if event.is_empty() { "message".to_owned() } else { event };
        events.push(SseEvent { event, data, id: self.last_id.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent { event: name.into(), data: data.into(), id: id.map(Into::into) }
    }

    /// Feeds `text` in every possible pair of chunks and checks each split gives `expected`.
    fn check(text: &str, expected: &[SseEvent]) {
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..split]);
            events.extend(parser.push(&bytes[split..]));
            assert_eq!(events, expected, "split at byte {split} of {text:?}");
        }
        let mut parser = SseParser::new();
        let one_by_one: Vec<SseEvent> = bytes.iter().flat_map(|byte| parser.push(std::slice::from_ref(byte))).collect();
        assert_eq!(one_by_one, expected, "byte by byte: {text:?}");
    }

    #[test]
    fn events_as_the_server_sends_them() {
        check(
            "event: line\nid: 0\ndata: {\"seq\":0}\n\nevent: line\nid: 1\ndata: {\"seq\":1}\n\nevent: end\ndata: {}\n\n",
            &[event("line", "{\"seq\":0}", Some("0")), event("line", "{\"seq\":1}", Some("1")), event("end", "{}", Some("1"))],
        );
    }

    #[test]
    fn comments_and_keep_alives_are_ignored() {
        check(":\n\n: keep-alive\n\ndata: a\n: in the middle\ndata: b\n\n", &[event("message", "a\nb", None)]);
    }

    #[test]
    fn data_lines_join_with_newlines_and_keep_inner_spaces() {
        check("data:first\ndata:  second\ndata\ndata: \n\n", &[event("message", "first\n second\n\n", None)]);
    }

    #[test]
    fn any_line_ending_even_split_between_cr_and_lf() {
        check(
            "event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n",
            &[event("a", "1", None), event("b", "2", None), event("message", "3", None)],
        );
    }

    #[test]
    fn multibyte_characters_survive_any_split() {
        check("data: héllo → wörld ✓\n\n", &[event("message", "héllo → wörld ✓", None)]);
    }

    #[test]
    fn an_event_without_data_is_dropped_and_unfinished_events_wait() {
        check("event: nothing\n\nid: 7\n\n", &[]);
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: half").is_empty());
        assert!(parser.push(b"\n").is_empty(), "no blank line yet");
        assert_eq!(parser.push(b"\n"), [event("message", "half", None)]);
    }

    #[test]
    fn ids_carry_over_and_retry_is_read() {
        let mut parser = SseParser::new();
        let events = parser.push(b"id: 5\ndata: a\n\ndata: b\n\nretry: 2500\nretry: soon\nid: 6\0\n\n");
        assert_eq!(events, [event("message", "a", Some("5")), event("message", "b", Some("5"))]);
        assert_eq!(parser.retry_ms(), Some(2500));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        check("\u{feff}data: x\n\n", &[event("message", "x", None)]);
    }
}
