//! Log files: idempotent appends, gaps refused, recovery from a crash mid-write, compression,
//! large logs read in pages.

use std::io::Write;

use proto::agent::LogStream;
use proto::api::LogEntry;
use store::{LogFiles, StoreError};

use crate::fixtures::{NOW, line, lines};

fn log_files() -> (tempfile::TempDir, LogFiles) {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogFiles::new(&dir.path().join("logs")).unwrap();
    (dir, logs)
}

/// The step's lines from `from` are exactly `line {seq}` for the seqs in `expected`.
async fn check(logs: &LogFiles, step_id: i64, from: u64, limit: usize, expected: std::ops::Range<u64>) {
    let entries = logs.read(step_id, from, limit).await.unwrap();
    let found: Vec<(u64, String)> = entries.into_iter().map(|entry| (entry.seq, entry.text)).collect();
    let wanted: Vec<(u64, String)> = expected.map(|seq| (seq, format!("line {seq}"))).collect();
    assert_eq!(found, wanted, "step {step_id} from {from}, limit {limit}");
}

#[tokio::test]
async fn retried_batches_are_stored_once() {
    let (_dir, logs) = log_files();
    // (first seq, count, the next expected number after it)
    for (first, count, next) in [(0, 3, 3), (0, 3, 3), (1, 1, 3), (2, 4, 6), (6, 0, 6), (3, 5, 8)] {
        assert_eq!(logs.append(7, first, &lines(first, count)).await.unwrap(), next, "batch {first}+{count}");
    }
    assert_eq!(logs.next_seq(7).await.unwrap(), 8);
    check(&logs, 7, 0, 100, 0..8).await;
    check(&logs, 7, 3, 2, 3..5).await;
    check(&logs, 7, 8, 10, 8..8).await;
    check(&logs, 7, 100, 10, 0..0).await;
    check(&logs, 7, 0, 0, 0..0).await;
    // Another step is another file.
    check(&logs, 8, 0, 10, 0..0).await;
    assert_eq!(logs.next_seq(8).await.unwrap(), 0);
}

#[tokio::test]
async fn lines_are_stored_as_log_entries() {
    let (_dir, logs) = log_files();
    let mut error = line("boom \"quoted\"\ttab ünïcode");
    error.stream = LogStream::Stderr;
    error.at_ms = NOW + 5;
    logs.append(1, 0, &[line(""), error]).await.unwrap();
    let expected = [
        LogEntry { seq: 0, at_ms: NOW, stream: "stdout".into(), text: String::new() },
        LogEntry { seq: 1, at_ms: NOW + 5, stream: "stderr".into(), text: "boom \"quoted\"\ttab ünïcode".into() },
    ];
    assert_eq!(logs.read(1, 0, 10).await.unwrap(), expected);
    let file = std::fs::read_to_string(logs.path_of(1)).unwrap();
    assert_eq!(file.lines().count(), 2);
    assert_eq!(serde_json::from_str::<LogEntry>(file.lines().next().unwrap()).unwrap(), expected[0]);
}

#[tokio::test]
async fn a_batch_after_a_gap_is_refused() {
    let (_dir, logs) = log_files();
    logs.append(3, 0, &lines(0, 5)).await.unwrap();
    match logs.append(3, 7, &lines(7, 2)).await {
        Err(StoreError::LogGap { step_id: 3, expected: 5, got: 7 }) => {}
        other => panic!("a batch from 7 after 5 lines must be a gap, got {other:?}"),
    }
    assert!(matches!(logs.append(4, 1, &lines(1, 1)).await, Err(StoreError::LogGap { step_id: 4, expected: 0, got: 1 })));
    // Nothing was written; the agent resends from 5.
    assert_eq!(logs.append(3, 5, &lines(5, 4)).await.unwrap(), 9);
    check(&logs, 3, 0, 100, 0..9).await;
}

#[tokio::test]
async fn a_partial_line_left_by_a_crash_is_dropped() {
    let (dir, logs) = log_files();
    logs.append(5, 0, &lines(0, 3)).await.unwrap();
    // The process died in the middle of writing line 3.
    let mut file = std::fs::OpenOptions::new().append(true).open(logs.path_of(5)).unwrap();
    file.write_all(br#"{"seq":3,"at_ms":1,"stream":"stdout","te"#).unwrap();
    drop(file);
    // Readers never see a line being written.
    check(&logs, 5, 0, 10, 0..3).await;

    // After the restart: the partial line is gone, and the agent's retry of 3.. goes in.
    let restarted = LogFiles::new(&dir.path().join("logs")).unwrap();
    assert_eq!(restarted.next_seq(5).await.unwrap(), 3);
    assert!(std::fs::read(restarted.path_of(5)).unwrap().ends_with(b"\n"));
    assert_eq!(restarted.append(5, 2, &lines(2, 3)).await.unwrap(), 5);
    check(&restarted, 5, 0, 10, 0..5).await;

    // A file holding nothing but a partial line.
    std::fs::write(restarted.path_of(6), b"{\"seq\":0").unwrap();
    assert_eq!(restarted.append(6, 0, &lines(0, 2)).await.unwrap(), 2);
    check(&restarted, 6, 0, 10, 0..2).await;
}

#[tokio::test]
async fn finished_logs_are_compressed_and_still_read() {
    let (dir, logs) = log_files();
    logs.append(9, 0, &lines(0, 4)).await.unwrap();
    logs.finish(9).await.unwrap();
    assert!(!logs.path_of(9).exists());
    assert!(logs.compressed_path_of(9).exists());
    check(&logs, 9, 0, 10, 0..4).await;
    check(&logs, 9, 2, 1, 2..3).await;

    // A late retry of stored lines is fine; new lines are refused.
    assert_eq!(logs.append(9, 2, &lines(2, 2)).await.unwrap(), 4);
    assert!(matches!(logs.append(9, 4, &lines(4, 1)).await, Err(StoreError::LogFinished { step_id: 9 })));
    logs.finish(9).await.unwrap();
    assert_eq!(logs.next_seq(9).await.unwrap(), 4);

    // So after a restart.
    let restarted = LogFiles::new(&dir.path().join("logs")).unwrap();
    assert_eq!(restarted.next_seq(9).await.unwrap(), 4);
    assert!(matches!(restarted.append(9, 4, &lines(4, 1)).await, Err(StoreError::LogFinished { .. })));
    check(&restarted, 9, 0, 10, 0..4).await;

    // A step that printed nothing is finished too.
    restarted.finish(10).await.unwrap();
    check(&restarted, 10, 0, 10, 0..0).await;
    assert!(matches!(restarted.append(10, 0, &lines(0, 1)).await, Err(StoreError::LogFinished { .. })));

    restarted.remove(9).await.unwrap();
    assert!(!restarted.compressed_path_of(9).exists() && !restarted.path_of(9).exists());
    check(&restarted, 9, 0, 10, 0..0).await;
    assert_eq!(restarted.next_seq(9).await.unwrap(), 0);
    restarted.remove(9).await.unwrap();
}

#[tokio::test]
async fn a_finished_log_is_read_from_any_line_through_its_member_index() {
    let (dir, logs) = log_files();
    let total = 20_000;
    for first in (0..total).step_by(1000) {
        logs.append(11, first, &lines(first, 1000)).await.unwrap();
    }
    logs.finish(11).await.unwrap();
    let index = dir.path().join("logs/11.jsonl.idx");
    assert_eq!(std::fs::metadata(&index).unwrap().len(), 3 * 8, "20,000 lines in members of 8,192: three offsets");
    // Each side of each member's edge, and the end.
    for from in [0, 8191, 8192, 8193, 16_383, 16_384, 19_990] {
        check(&logs, 11, from, 20, from..(from + 20).min(total)).await;
    }
    check(&logs, 11, total, 5, 0..0).await;
    check(&logs, 11, total + 100, 5, 0..0).await;

    // A damaged or missing index costs speed, not correctness.
    std::fs::write(&index, [1, 2, 3]).unwrap();
    check(&logs, 11, 16_384, 3, 16_384..16_387).await;
    std::fs::write(&index, 999_999_999_u64.to_le_bytes().repeat(3)).unwrap();
    check(&logs, 11, 9000, 3, 9000..9003).await;
    std::fs::remove_file(&index).unwrap();
    check(&logs, 11, 19_999, 3, 19_999..20_000).await;

    logs.remove(11).await.unwrap();
    assert!(!index.exists() && !logs.compressed_path_of(11).exists());
}

#[tokio::test]
async fn a_finish_cut_short_by_a_crash_is_completed() {
    let (dir, logs) = log_files();
    logs.append(11, 0, &lines(0, 3)).await.unwrap();
    logs.finish(11).await.unwrap();
    // The crash came after the compressed file was in place, before the plain one was removed.
    std::fs::write(logs.path_of(11), b"{\"seq\":0}\n").unwrap();
    let restarted = LogFiles::new(&dir.path().join("logs")).unwrap();
    assert_eq!(restarted.next_seq(11).await.unwrap(), 3);
    assert!(!restarted.path_of(11).exists());
    check(&restarted, 11, 0, 10, 0..3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_step_are_stored_once() {
    let (_dir, logs) = log_files();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let logs = logs.clone();
            tokio::spawn(async move {
                // Every task sends the same 50 batches of 20 lines; steps 0 and 1 interleave.
                for batch in 0..50 {
                    let first = batch * 20;
                    logs.append(task % 2, first, &lines(first, 20)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for step in 0..2 {
        assert_eq!(logs.next_seq(step).await.unwrap(), 1_000);
        check(&logs, step, 0, 2_000, 0..1_000).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_is_read_in_pages() {
    const LINES: u64 = 100_000;
    let (_dir, logs) = log_files();
    for first in (0..LINES).step_by(1_000) {
        logs.append(12, first, &lines(first, 1_000)).await.unwrap();
    }
    assert_eq!(logs.next_seq(12).await.unwrap(), LINES);
    read_in_pages(&logs, 12, 1_000).await;
    logs.finish(12).await.unwrap();
    read_in_pages(&logs, 12, 10_000).await;
}

async fn read_in_pages(logs: &LogFiles, step_id: i64, page: usize) {
    let mut from = 0;
    loop {
        let entries = logs.read(step_id, from, page).await.unwrap();
        if entries.is_empty() {
            break;
        }
        assert!(entries.len() <= page);
        for (entry, seq) in entries.iter().zip(from..) {
            assert_eq!((entry.seq, entry.text.as_str()), (seq, format!("line {seq}").as_str()));
        }
        from += entries.len() as u64;
    }
    assert_eq!(from, 100_000);
}

#[tokio::test]
async fn a_running_log_is_read_from_any_line_through_its_checkpoints() {
    let (dir, logs) = log_files();
    let total = 20_000;
    for first in (0..total).step_by(700) {
        logs.append(13, first, &lines(first, 700.min(total - first))).await.unwrap();
    }
    // Each side of each checkpoint, the end, and past it: as appended, and as counted on the
    // first read after a restart.
    let restarted = LogFiles::new(&dir.path().join("logs")).unwrap();
    for logs in [&logs, &restarted] {
        for from in [0, 8191, 8192, 8193, 16_383, 16_384, 19_990] {
            check(logs, 13, from, 20, from..(from + 20).min(total)).await;
        }
        check(logs, 13, total, 5, 0..0).await;
    }
    // Appending after the restart goes on from the counted checkpoints.
    restarted.append(13, total, &lines(total, 5_000)).await.unwrap();
    check(&restarted, 13, 24_575, 3, 24_575..24_578).await;

    // The file written again behind the store's back (longer lines): reads stay right.
    let rewritten: String = (0..total)
        .map(|seq| {
            format!(
                "{{\"seq\":{seq},\"at_ms\":{NOW},\"stream\":\"stdout\",\"text\":\"line {seq}\",\"padding\":\"{}\"}}\n",
                "x".repeat(seq as usize % 7)
            )
        })
        .collect();
    std::fs::write(logs.path_of(13), rewritten).unwrap();
    for from in [8192, 8193, 16_390] {
        check(&logs, 13, from, 3, from..from + 3).await;
    }
}
