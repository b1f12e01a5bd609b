//! Stdout behind a large buffer, which goes quiet for good once its reader has gone away.

use std::io::{BufWriter, Write};

const WRITE_BUFFER_CAPACITY: usize = 64 * 1024;

/// Stdout behind a large buffer. After the first failed write (the reader went away) it drops everything.
pub(super) struct BufferedOutput {
    writer: BufWriter<Box<dyn Write + Send>>,
    broken: bool,
}

impl BufferedOutput {
    pub(super) fn new(writer: Box<dyn Write + Send>) -> BufferedOutput {
        BufferedOutput { writer: BufWriter::with_capacity(WRITE_BUFFER_CAPACITY, writer), broken: false }
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        if !self.broken && self.writer.write_all(bytes).is_err() {
            self.broken = true;
        }
    }

    pub(super) fn flush(&mut self) {
        if !self.broken && self.writer.flush().is_err() {
            self.broken = true;
        }
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.broken && !self.writer.buffer().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use runtime::EventSink;

    use crate::exec_output::fixtures::{one_workflow_events, one_workflow_summary, render};
    use crate::exec_output::{ExecOutput, OutputMode};

    /// A pipe whose reader goes away after reading `capacity` bytes: the write that reaches the
    /// limit is taken in part, every later one fails with a broken pipe and is counted.
    #[derive(Clone)]
    struct ClosingPipe(Arc<Mutex<PipeRecord>>);

    #[derive(Default)]
    struct PipeRecord {
        capacity: usize,
        taken: Vec<u8>,
        closed: bool,
        /// Writes and flushes tried after the first one that failed.
        calls_after_close: usize,
    }

    impl ClosingPipe {
        fn new(capacity: usize) -> ClosingPipe {
            ClosingPipe(Arc::new(Mutex::new(PipeRecord { capacity, ..PipeRecord::default() })))
        }

        /// A failed assertion must not poison the record for the writes the output's drop still makes.
        fn record(&self) -> MutexGuard<'_, PipeRecord> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl Write for ClosingPipe {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut record = self.record();
            let room = record.capacity - record.taken.len();
            if room == 0 {
                if record.closed {
                    record.calls_after_close += 1;
                }
                record.closed = true;
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let taken = bytes.len().min(room);
            record.taken.extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            let mut record = self.record();
            if record.closed {
                record.calls_after_close += 1;
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        }
    }

    /// Event times differ from one rendering to the next: each `"at_ms":<digits>` becomes `"at_ms":0`.
    fn without_times(text: &str) -> String {
        let mut rest = text;
        let mut masked = String::new();
        while let Some(start) = rest.find("\"at_ms\":") {
            let digits_start = start + "\"at_ms\":".len();
            masked.push_str(&rest[..digits_start]);
            masked.push('0');
            rest = rest[digits_start..].trim_start_matches(|character: char| character.is_ascii_digit());
        }
        masked.push_str(rest);
        masked
    }

    /// A reader that went away must not panic the run, and the run must not keep formatting for
    /// it: the pipe got exactly the start of what a reader that stayed gets, and nothing was
    /// tried after the write that failed.
    #[test]
    fn closed_pipe_is_ignored() {
        for mode in [OutputMode::Plain, OutputMode::Json] {
            let complete = render(mode, one_workflow_events(), Some(&one_workflow_summary()));
            // The reader leaves halfway, past state changes and log lines, before the summary.
            let capacity = complete.len() / 2;

            let pipe = ClosingPipe::new(capacity);
            let output = ExecOutput::with_writer(mode, Box::new(pipe.clone()));
            for event in one_workflow_events() {
                output.emit(event);
            }
            output.note("a note");
            output.finish(&one_workflow_summary());
            let (taken, closed, calls_after_close) = {
                let record = pipe.record();
                (String::from_utf8_lossy(&record.taken).into_owned(), record.closed, record.calls_after_close)
            };
            let expected = String::from_utf8_lossy(&complete.as_bytes()[..capacity]);
            assert!(closed, "{mode:?}: the output reached the point where the reader left");
            assert_eq!(without_times(&taken), without_times(&expected), "{mode:?}");
            assert!(taken.contains("Cloning into 'repo'..."), "{mode:?}: the reader got log lines: {taken}");
            assert_eq!(calls_after_close, 0, "{mode:?}: output went on after the pipe closed");
            // Dropping the buffer tries its remainder once more; that is not the run's output going on.
            drop(output);
        }
    }
}
