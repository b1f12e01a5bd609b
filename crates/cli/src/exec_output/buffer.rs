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

    use runtime::EventSink;

    use crate::exec_output::fixtures::{one_workflow_events, one_workflow_summary};
    use crate::exec_output::{ExecOutput, OutputMode};

    /// A reader that went away must not panic the run, and the run must not keep formatting for it.
    #[test]
    fn closed_pipe_is_ignored() {
        struct ClosedPipe;
        impl Write for ClosedPipe {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        for mode in [OutputMode::Plain, OutputMode::Json] {
            let output = ExecOutput::with_writer(mode, Box::new(ClosedPipe));
            for event in one_workflow_events() {
                output.emit(event);
            }
            output.note("a note");
            output.finish(&one_workflow_summary());
        }
    }
}
