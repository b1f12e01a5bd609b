//! Secret masking: every occurrence, however the output is split into reads.

use proptest::prelude::*;
use runtime::mask::{LineSplitter, MAX_LINE_BYTES, Masker};

fn lines_of(masker: &Masker, chunks: &[&[u8]]) -> Vec<String> {
    let mut splitter = LineSplitter::new(masker.clone());
    let mut lines = Vec::new();
    let mut emit = |line: &[u8]| lines.push(String::from_utf8_lossy(line).into_owned());
    for chunk in chunks {
        splitter.push(chunk, &mut emit);
    }
    splitter.finish(&mut emit);
    lines
}

#[test]
fn every_occurrence_is_masked() {
    let masker = Masker::new(["hunter2", "s3cr3t"]);
    assert_eq!(lines_of(&masker, &[b"pass=hunter2 and hunter2\nok s3cr3ts3cr3t\n"]), ["pass=******** and ********", "ok ****************"]);
}

#[test]
fn a_secret_split_across_reads_is_still_masked() {
    let masker = Masker::new(["hunter2"]);
    assert_eq!(lines_of(&masker, &[b"pass=hun", b"te", b"r2\n"]), ["pass=********"]);
}

#[test]
fn multi_line_values_are_masked_line_by_line() {
    let key = "-----BEGIN KEY-----\nAAAABBBB\r\n-----END KEY-----";
    let masker = Masker::new([key]);
    let output = b"-----BEGIN KEY-----\nAAAABBBB\n-----END KEY-----\ndone\n";
    assert_eq!(lines_of(&masker, &[output]), ["********", "********", "********", "done"]);
}

#[test]
fn the_longer_of_two_overlapping_secrets_is_masked_whole() {
    let masker = Masker::new(["abc", "abcdef"]);
    assert_eq!(lines_of(&masker, &[b"xabcdefx abc\n"]), ["x********x ********"]);
}

#[test]
fn a_last_line_without_a_line_break_is_kept_and_crlf_is_one_break() {
    let masker = Masker::new(["pw"]);
    assert_eq!(lines_of(&masker, &[b"a\r\nb pw"]), ["a", "b ********"]);
}

#[test]
fn a_line_longer_than_the_limit_is_passed_on_in_pieces_and_masked_across_cuts() {
    let masker = Masker::new(["TOPSECRET"]);
    let mut long = vec![b'x'; MAX_LINE_BYTES - 4];
    long.extend_from_slice(b"TOPSECRET");
    long.extend(vec![b'y'; MAX_LINE_BYTES]);
    long.push(b'\n');
    let lines = lines_of(&masker, &[&long[..MAX_LINE_BYTES / 2], &long[MAX_LINE_BYTES / 2..]]);
    let joined = lines.concat();
    assert!(!joined.contains("TOPSECRET"));
    assert!(joined.contains("********"));
    assert!(lines.iter().all(|line| line.len() <= 2 * MAX_LINE_BYTES + 16), "memory stays bounded");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// However the bytes are cut, no secret survives and the rest of the text is intact.
    #[test]
    fn masking_does_not_depend_on_how_output_is_split(
        words in prop::collection::vec(prop_oneof![Just("hunter2".to_string()), Just("\n".to_string()), "[a-z ]{0,8}"], 0..40),
        cuts in prop::collection::vec(0usize..400, 0..10),
    ) {
        let text: String = words.concat();
        let bytes = text.as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
        cuts.sort();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut previous = 0;
        for cut in cuts {
            chunks.push(&bytes[previous..cut]);
            previous = cut;
        }
        chunks.push(&bytes[previous..]);
        let masker = Masker::new(["hunter2"]);
        let split = lines_of(&masker, &chunks);
        let whole = lines_of(&masker, &[bytes]);
        prop_assert_eq!(&split, &whole);
        prop_assert!(split.iter().all(|line| !line.contains("hunter2")));
    }
}
