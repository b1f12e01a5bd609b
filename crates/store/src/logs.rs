//! Log bodies: one append-only file of JSON lines per step (`logs/<step id>.jsonl`), each line a
//! `proto::api::LogEntry`; gzip-compressed (`.jsonl.gz`) when the step ends, as one gzip member
//! per `LINES_PER_MEMBER` lines with the members' offsets in `<step id>.jsonl.idx`, so reading
//! from any line decompresses one member's worth of lines before it, not the whole log. Appends are
//! idempotent by sequence number, so an agent's retried batch is never doubled.
//!
//! Line `n` of a step's file is the entry numbered `n`: appends refuse gaps, so the number of
//! complete lines is the next expected number. That count is kept in memory per step (read from
//! the file on first use, when a partial last line left by a crash is cut off) behind one lock
//! per step, so appends to a step are serialized and appends to different steps are not. Every
//! file operation runs on tokio's blocking threads and holds the step's lock until it is done,
//! even when the caller stops waiting. Nothing is ever read whole: memory stays bounded by the
//! lines asked for, whatever the size of a log.
//!
//! A running log has no index file; instead the byte offset of every `LINES_PER_MEMBER`th line
//! is kept in memory as lines are appended (or counted when the file is first read), so reading
//! the end of a long running log, as a viewer following it does, skips fewer than
//! `LINES_PER_MEMBER` lines.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use proto::agent::{LogLine, LogStream};
use proto::api::LogEntry;
use serde::Serialize;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::StoreError;

/// Bytes read at a time when counting or skipping lines.
const READ_BUFFER: usize = 64 * 1024;

/// Lines per gzip member of a finished log: the most a read from any line decompresses first.
const LINES_PER_MEMBER: u64 = 8192;

/// The log folder. Cheap to clone; safe to use from many tasks (appends to one step are serialized).
#[derive(Clone)]
pub struct LogFiles {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// A lock per step in use. Finishing or removing a step's log takes its entry out, so the
    /// map holds only the logs being written.
    steps: Mutex<HashMap<i64, Arc<AsyncMutex<StepLog>>>>,
    /// Per running log: the byte offsets of lines `LINES_PER_MEMBER`, 2 × `LINES_PER_MEMBER`, …
    /// in its plain file. Readers use them without the step's lock, so a read checks that the
    /// line it lands on is the one it expected.
    checkpoints: Mutex<HashMap<i64, Vec<u64>>>,
}

#[derive(Default)]
struct StepLog {
    /// What the files hold; `None` until read from disk, and again after a write that failed
    /// (the file may then end in a partial line, which the next read of the file drops).
    known: Option<Known>,
    /// Set when the entry left the map: a task that was waiting for its lock takes the new one.
    retired: bool,
}

#[derive(Clone, Copy, Debug)]
struct Known {
    lines: u64,
    /// Length of the plain file (its complete lines); 0 once finished.
    bytes: u64,
    finished: bool,
}

/// A step's files.
#[derive(Clone)]
struct Paths {
    step_id: i64,
    plain: PathBuf,
    compressed: PathBuf,
    /// The compressed file while it is being written; renamed to `compressed` when whole.
    partial: PathBuf,
    /// Offsets of the compressed file's members (little-endian u64 each), written before the
    /// compressed file is put in place; a log without one is read from its start.
    index: PathBuf,
    index_partial: PathBuf,
}

/// A line as written: `proto::api::LogEntry`'s JSON, without copying the text.
#[derive(Serialize)]
struct EntryRef<'a> {
    seq: u64,
    at_ms: i64,
    stream: &'static str,
    text: &'a str,
}

impl LogFiles {
    pub fn new(dir: &Path) -> Result<LogFiles, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Log { path: dir.to_owned(), source })?;
        let inner = Inner { dir: dir.to_owned(), steps: Mutex::new(HashMap::new()), checkpoints: Mutex::new(HashMap::new()) };
        Ok(LogFiles { inner: Arc::new(inner) })
    }

    /// Appends the lines numbered from `first_seq`, skipping those already stored; returns the
    /// next expected number. A batch starting after the next expected number is a
    /// `StoreError::LogGap`. After a crash mid-write, a partial last line is dropped on open.
    /// Once the log is finished, a batch of lines it already holds is accepted (a retry) and
    /// any other is `StoreError::LogFinished`.
    pub async fn append(&self, step_id: i64, first_seq: u64, lines: &[LogLine]) -> Result<u64, StoreError> {
        let mut guard = self.lock(step_id).await;
        let paths = self.paths(step_id);
        if guard.known.is_none() {
            guard = blocking(&paths.plain, {
                let (paths, inner) = (paths.clone(), Arc::clone(&self.inner));
                move || {
                    load(&mut guard, &paths, &inner)?;
                    Ok(guard)
                }
            })
            .await?;
        }
        let Some(known) = guard.known else {
            return Err(StoreError::Corrupt(format!("log of step {step_id} was not read")));
        };
        let end = first_seq.saturating_add(lines.len() as u64);
        if known.finished {
            return if end <= known.lines { Ok(known.lines) } else { Err(StoreError::LogFinished { step_id }) };
        }
        if first_seq > known.lines {
            return Err(StoreError::LogGap { step_id, expected: known.lines, got: first_seq });
        }
        if end <= known.lines {
            return Ok(known.lines);
        }

        let new_lines = &lines[usize::try_from(known.lines - first_seq).unwrap_or(usize::MAX).min(lines.len())..];
        let mut buffer = Vec::with_capacity(new_lines.iter().map(|line| line.text.len() + 64).sum());
        let mut checkpoints = Vec::new();
        for (seq, line) in (known.lines..).zip(new_lines) {
            if seq > 0 && seq % LINES_PER_MEMBER == 0 {
                checkpoints.push((seq, known.bytes + buffer.len() as u64));
            }
            let entry = EntryRef { seq, at_ms: line.at_ms, stream: stream_name(line.stream), text: &line.text };
            serde_json::to_writer(&mut buffer, &entry)
                .map_err(|error| StoreError::Log { path: paths.plain.clone(), source: error.into() })?;
            buffer.push(b'\n');
        }
        let lines_after = known.lines + new_lines.len() as u64;
        let bytes_after = known.bytes + buffer.len() as u64;
        blocking(&paths.plain, {
            let (path, inner) = (paths.plain.clone(), Arc::clone(&self.inner));
            move || {
                // Unknown until the write is known to be whole.
                guard.known = None;
                let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(log_error(&path))?;
                file.write_all(&buffer).map_err(log_error(&path))?;
                guard.known = Some(Known { lines: lines_after, bytes: bytes_after, finished: false });
                if !checkpoints.is_empty() {
                    let mut all = inner.checkpoints();
                    let known = all.entry(step_id).or_default();
                    for (seq, offset) in checkpoints {
                        // Counting the file may have found it already.
                        if known.len() as u64 + 1 == seq / LINES_PER_MEMBER {
                            known.push(offset);
                        }
                    }
                }
                Ok(())
            }
        })
        .await?;
        Ok(lines_after)
    }

    /// The number of lines stored (the next expected number).
    pub async fn next_seq(&self, step_id: i64) -> Result<u64, StoreError> {
        let mut guard = self.lock(step_id).await;
        if let Some(known) = guard.known {
            return Ok(known.lines);
        }
        let paths = self.paths(step_id);
        let inner = Arc::clone(&self.inner);
        blocking(&paths.plain.clone(), move || Ok(load(&mut guard, &paths, &inner)?.lines)).await
    }

    /// Up to `limit` lines from number `from`, from the open file or the compressed one. A line
    /// still being written is left for the next read; a step with no log has no lines.
    pub async fn read(&self, step_id: i64, from: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let paths = self.paths(step_id);
        if from >= LINES_PER_MEMBER && !self.inner.checkpoints().contains_key(&step_id) && paths.plain.exists() {
            // A running log not read since the server started: counting its lines once leaves
            // the checkpoints for this read and the next ones.
            self.next_seq(step_id).await?;
        }
        let checkpoint = self.inner.checkpoint_before(step_id, from);
        blocking(&paths.plain.clone(), move || read_entries(&paths, from, limit, checkpoint)).await
    }

    /// Compresses a finished step's file. Appends after this fail. Finishing twice does nothing;
    /// finishing a step that has no lines leaves an empty compressed log.
    pub async fn finish(&self, step_id: i64) -> Result<(), StoreError> {
        let mut guard = self.lock(step_id).await;
        let paths = self.paths(step_id);
        let inner = Arc::clone(&self.inner);
        blocking(&paths.plain.clone(), move || {
            let known = load(&mut guard, &paths, &inner)?;
            if !known.finished {
                guard.known = None;
                compress(&paths)?;
                guard.known = Some(Known { lines: known.lines, bytes: 0, finished: true });
                tracing::debug!(step = paths.step_id, lines = known.lines, "log finished");
            }
            inner.retire(paths.step_id, &mut guard);
            Ok(())
        })
        .await
    }

    /// Removes a step's log (repository deletion, retention, a re-queued workflow). Removing a
    /// log that is not there does nothing.
    pub async fn remove(&self, step_id: i64) -> Result<(), StoreError> {
        let mut guard = self.lock(step_id).await;
        let paths = self.paths(step_id);
        let inner = Arc::clone(&self.inner);
        blocking(&paths.plain.clone(), move || {
            guard.known = None;
            for path in [&paths.plain, &paths.compressed, &paths.partial, &paths.index, &paths.index_partial] {
                remove_if_exists(path)?;
            }
            inner.retire(paths.step_id, &mut guard);
            Ok(())
        })
        .await
    }

    /// The file a running step's lines go to (`<dir>/<step id>.jsonl`).
    pub fn path_of(&self, step_id: i64) -> PathBuf {
        self.inner.dir.join(format!("{step_id}.jsonl"))
    }

    /// The file a finished step's lines are in (`<dir>/<step id>.jsonl.gz`).
    pub fn compressed_path_of(&self, step_id: i64) -> PathBuf {
        self.inner.dir.join(format!("{step_id}.jsonl.gz"))
    }

    fn paths(&self, step_id: i64) -> Paths {
        Paths {
            step_id,
            plain: self.path_of(step_id),
            compressed: self.compressed_path_of(step_id),
            partial: self.inner.dir.join(format!("{step_id}.jsonl.gz.partial")),
            index: self.inner.dir.join(format!("{step_id}.jsonl.idx")),
            index_partial: self.inner.dir.join(format!("{step_id}.jsonl.idx.partial")),
        }
    }

    /// The step's lock, held until the guard drops.
    async fn lock(&self, step_id: i64) -> OwnedMutexGuard<StepLog> {
        loop {
            let entry = {
                let mut steps = self.inner.steps.lock().unwrap_or_else(PoisonError::into_inner);
                Arc::clone(steps.entry(step_id).or_default())
            };
            let guard = entry.lock_owned().await;
            if !guard.retired {
                return guard;
            }
        }
    }
}

impl Inner {
    /// Takes a step's entry out of the map, and its checkpoints; its holder must not use it
    /// afterwards.
    fn retire(&self, step_id: i64, guard: &mut OwnedMutexGuard<StepLog>) {
        guard.retired = true;
        self.checkpoints().remove(&step_id);
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        if steps.get(&step_id).is_some_and(|entry| Arc::ptr_eq(entry, OwnedMutexGuard::mutex(guard))) {
            steps.remove(&step_id);
        }
    }
}

impl Inner {
    fn checkpoints(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<u64>>> {
        self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last checkpoint at or before line `from` of a running log: (its line, its offset).
    fn checkpoint_before(&self, step_id: i64, from: u64) -> Option<Checkpoint> {
        let member = usize::try_from(from / LINES_PER_MEMBER).ok()?;
        let checkpoints = self.checkpoints();
        let known = checkpoints.get(&step_id)?;
        let index = member.min(known.len()).checked_sub(1)?;
        Some(Checkpoint { line: (index as u64 + 1) * LINES_PER_MEMBER, offset: known[index] })
    }
}

/// Where line `line` of a running log starts in its plain file.
#[derive(Clone, Copy)]
struct Checkpoint {
    line: u64,
    offset: u64,
}

/// Runs file work on a blocking thread. `path` names the file in the error if the work panics.
async fn blocking<T, F>(path: &Path, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|error| StoreError::Log {
        path: path.to_owned(),
        source: io::Error::other(format!("the file operation failed: {error}")),
    })?
}

fn log_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Log { path: path.to_owned(), source }
}

fn stream_name(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

/// What the files of a step hold, read from disk on first use and remembered in `log` (and a
/// running log's checkpoints in `inner`).
fn load(log: &mut StepLog, paths: &Paths, inner: &Inner) -> Result<Known, StoreError> {
    if let Some(known) = log.known {
        return Ok(known);
    }
    let (known, checkpoints) = read_state(paths)?;
    log.known = Some(known);
    if !known.finished {
        inner.checkpoints().insert(paths.step_id, checkpoints);
    }
    Ok(known)
}

/// What a step's files hold, and a running log's checkpoints.
fn read_state(paths: &Paths) -> Result<(Known, Vec<u64>), StoreError> {
    if paths.compressed.try_exists().map_err(log_error(&paths.compressed))? {
        // A finish that stopped between putting the compressed file in place and removing the
        // plain one: the compressed file is whole.
        remove_if_exists(&paths.plain)?;
        let file = File::open(&paths.compressed).map_err(log_error(&paths.compressed))?;
        let counted = count_lines(MultiGzDecoder::new(file)).map_err(log_error(&paths.compressed))?;
        return Ok((Known { lines: counted.lines, bytes: 0, finished: true }, Vec::new()));
    }
    let file = match OpenOptions::new().read(true).write(true).open(&paths.plain) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok((Known { lines: 0, bytes: 0, finished: false }, Vec::new()));
        }
        Err(source) => return Err(StoreError::Log { path: paths.plain.clone(), source }),
    };
    let Counted { lines, complete_length, checkpoints } = count_lines(&file).map_err(log_error(&paths.plain))?;
    let length = file.metadata().map_err(log_error(&paths.plain))?.len();
    if complete_length < length {
        tracing::warn!(
            step = paths.step_id,
            dropped_bytes = length - complete_length,
            "log ends in a partial line, left by a crash while writing; dropping it"
        );
        file.set_len(complete_length).map_err(log_error(&paths.plain))?;
    }
    Ok((Known { lines, bytes: complete_length, finished: false }, checkpoints))
}

struct Counted {
    /// Line breaks.
    lines: u64,
    /// The length up to and including the last line break.
    complete_length: u64,
    /// Where lines `LINES_PER_MEMBER`, 2 × `LINES_PER_MEMBER`, … start.
    checkpoints: Vec<u64>,
}

fn count_lines(mut reader: impl Read) -> io::Result<Counted> {
    let mut buffer = vec![0; READ_BUFFER];
    let (mut lines, mut offset, mut complete_length) = (0_u64, 0_u64, 0_u64);
    let mut checkpoints = Vec::new();
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(Counted { lines, complete_length, checkpoints }),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        for (index, byte) in buffer[..read].iter().enumerate() {
            if *byte == b'\n' {
                lines += 1;
                complete_length = offset + index as u64 + 1;
                if lines % LINES_PER_MEMBER == 0 {
                    checkpoints.push(complete_length);
                }
            }
        }
        offset += read as u64;
    }
}

fn compress(paths: &Paths) -> Result<(), StoreError> {
    let source = match File::open(&paths.plain) {
        Ok(file) => Some(BufReader::with_capacity(READ_BUFFER, file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(StoreError::Log { path: paths.plain.clone(), source }),
    };
    let partial = File::create(&paths.partial).map_err(log_error(&paths.partial))?;
    let mut out = CountingWriter { inner: BufWriter::new(partial), written: 0 };
    let mut offsets: Vec<u64> = Vec::new();
    if let Some(mut source) = source {
        let mut line = Vec::new();
        let mut ended = false;
        while !ended {
            let start = out.written;
            let mut encoder = GzEncoder::new(&mut out, Compression::fast());
            let mut lines = 0;
            while lines < LINES_PER_MEMBER {
                line.clear();
                if source.read_until(b'\n', &mut line).map_err(log_error(&paths.plain))? == 0 {
                    ended = true;
                    break;
                }
                encoder.write_all(&line).map_err(log_error(&paths.partial))?;
                lines += 1;
            }
            if lines > 0 {
                encoder.finish().map_err(log_error(&paths.partial))?;
                offsets.push(start);
            }
        }
    }
    if offsets.is_empty() {
        // An empty log is still a valid gzip file.
        GzEncoder::new(&mut out, Compression::fast()).finish().map_err(log_error(&paths.partial))?;
    }
    out.inner.flush().map_err(log_error(&paths.partial))?;
    let index: Vec<u8> = offsets.iter().flat_map(|offset| offset.to_le_bytes()).collect();
    fs::write(&paths.index_partial, index).map_err(log_error(&paths.index_partial))?;
    fs::rename(&paths.index_partial, &paths.index).map_err(log_error(&paths.index))?;
    // The rename is atomic: readers and a restart see either the plain file or a whole
    // compressed one.
    fs::rename(&paths.partial, &paths.compressed).map_err(log_error(&paths.compressed))?;
    remove_if_exists(&paths.plain)
}

/// Counts the bytes written through it: the offsets of the gzip members.
struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a finished log at the member holding line `from`: the reader, and how many lines of
/// it come before `from`. Without a usable index, from the start.
fn open_compressed_at(paths: &Paths, from: u64) -> io::Result<(Box<dyn Read>, u64)> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = File::open(&paths.compressed)?;
    let offsets: Vec<u64> = match fs::read(&paths.index) {
        Ok(bytes) if bytes.len() % 8 == 0 => {
            bytes.chunks_exact(8).map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default())).collect()
        }
        _ => Vec::new(),
    };
    let member = usize::try_from(from / LINES_PER_MEMBER).unwrap_or(usize::MAX);
    let length = file.metadata()?.len();
    let sane = offsets.first() == Some(&0)
        && offsets.windows(2).all(|pair| pair[0] < pair[1])
        && offsets.last().is_some_and(|last| *last < length);
    match offsets.get(member.min(offsets.len().saturating_sub(1))) {
        Some(&offset) if sane && member > 0 => {
            let member = member.min(offsets.len() - 1) as u64;
            file.seek(SeekFrom::Start(offset))?;
            Ok((Box::new(MultiGzDecoder::new(file)), from - member * LINES_PER_MEMBER))
        }
        _ => Ok((Box::new(MultiGzDecoder::new(file)), from)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Log { path: path.to_owned(), source }),
    }
}

fn read_entries(paths: &Paths, from: u64, limit: usize, checkpoint: Option<Checkpoint>) -> Result<Vec<LogEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    if let Some(checkpoint) = checkpoint
        && let Some(entries) = read_plain_from(paths, checkpoint, from, limit)?
        // A log removed and written again since the checkpoint was taken lands elsewhere.
        && entries.first().is_none_or(|entry| entry.seq == from)
    {
        return Ok(entries);
    }
    // The plain file first: `finish` writes the compressed one before removing the plain one, so
    // a log being finished is found in one or the other.
    let (source, path, skip): (Box<dyn Read>, &Path, u64) = match File::open(&paths.plain) {
        Ok(file) => (Box::new(file), &paths.plain, from),
        Err(error) if error.kind() == io::ErrorKind::NotFound => match open_compressed_at(paths, from) {
            Ok((reader, skip)) => (reader, &paths.compressed, skip),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Log { path: paths.compressed.clone(), source }),
        },
        Err(source) => return Err(StoreError::Log { path: paths.plain.clone(), source }),
    };
    parse_entries(paths, BufReader::with_capacity(READ_BUFFER, source), path, skip, from, limit)
}

/// Up to `limit` lines from `from` of a running log, starting at a checkpoint; `None` when the
/// plain file is gone (finished meanwhile) or is not the file the checkpoint was taken from.
fn read_plain_from(paths: &Paths, checkpoint: Checkpoint, from: u64, limit: usize) -> Result<Option<Vec<LogEntry>>, StoreError> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = match File::open(&paths.plain) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Log { path: paths.plain.clone(), source }),
    };
    file.seek(SeekFrom::Start(checkpoint.offset)).map_err(log_error(&paths.plain))?;
    let reader = BufReader::with_capacity(READ_BUFFER, file);
    match parse_entries(paths, reader, &paths.plain, from - checkpoint.line, from, limit) {
        Ok(entries) => Ok(Some(entries)),
        // Landed mid-line: the file is not the one the checkpoint was taken from.
        Err(StoreError::Corrupt(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Skips `skip` lines of `reader`, then parses up to `limit` entries (numbered from `from`).
fn parse_entries(
    paths: &Paths,
    mut reader: impl BufRead,
    path: &Path,
    skip: u64,
    from: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    if !skip_lines(&mut reader, skip).map_err(log_error(path))? {
        return Ok(Vec::new());
    }
    let mut entries = Vec::with_capacity(limit.min(1024));
    let mut line = Vec::new();
    while entries.len() < limit {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(log_error(path))?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        line.pop();
        let entry: LogEntry = serde_json::from_slice(&line).map_err(|error| {
            StoreError::Corrupt(format!(
                "line {} of the log of step {} is not a log entry: {error}",
                from + entries.len() as u64,
                paths.step_id
            ))
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Moves past `count` line breaks; false when the input ends first.
fn skip_lines(reader: &mut impl BufRead, mut count: u64) -> io::Result<bool> {
    while count > 0 {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(false);
        }
        // Counting a whole buffer is one vectorized pass; only the last buffer is walked.
        let breaks = buffer.iter().filter(|byte| **byte == b'\n').count() as u64;
        let consumed = if breaks < count {
            count -= breaks;
            buffer.len()
        } else {
            let mut at = buffer.len();
            for (index, byte) in buffer.iter().enumerate() {
                if *byte == b'\n' {
                    count -= 1;
                    if count == 0 {
                        at = index + 1;
                        break;
                    }
                }
            }
            at
        };
        reader.consume(consumed);
    }
    Ok(true)
}
