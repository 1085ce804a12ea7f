//! Findings of the fuzz targets (`fuzz/`, `scripts/fuzz`), each replayed
//! through the same entry point the target calls.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use terway_hybrid_agent::collect::fuzzing::bird_query;
use terway_hybrid_api::snapshot::BirdState;

/// Serves `answer` on a BIRD control socket once and asks it `show protocols`.
fn bird_answering(answer: Vec<u8>) -> BirdState {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bird.ctl");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let _ = conn.write_all(&answer);
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = conn.read_to_end(&mut Vec::new());
    });
    let state = bird_query(&path);
    server.join().unwrap();
    state
}

fn error_of(state: BirdState) -> String {
    match state {
        BirdState::NoAnswer { error, .. } => error,
        other => panic!("expected no answer, got {other:?}"),
    }
}

/// fuzz/ bird_reply: a line with a code but neither `-` nor ` ` after it was
/// quoted whole into the error, which goes into the node's report: 200
/// control characters made an error of 1,200 bytes, and a longer line one as
/// long as the line. It is cut to 60 characters like every other bad line.
#[test]
fn bird_line_with_a_bad_separator_is_quoted_cut() {
    let mut line = b"0002".to_vec();
    line.extend([0x11; 200]);
    line.push(b'\n');
    let error = error_of(bird_answering(line));
    assert!(error.contains("not a BIRD reply line"), "{error}");
    assert!(error.len() < 512, "{} bytes: {error}", error.len());
}

/// The same for BIRD's own error replies (`9001 ...`): their text is cut.
#[test]
fn long_bird_error_text_is_cut() {
    let answer = format!("0001 BIRD 2.0.12 ready.\n9001 {}\n", "x".repeat(100_000));
    let error = error_of(bird_answering(answer.into_bytes()));
    assert!(error.contains("BIRD error 9001"), "{error}");
    assert!(error.len() < 512, "{} bytes", error.len());
}
