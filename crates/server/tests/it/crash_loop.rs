//! Issue 14, point 5: four rounds of the crash loop (`scripts/crash-loop`
//! runs many): the server is SIGKILLed under writes through every API,
//! deletes, BlueKing metadata changes and compactions, and after each
//! restart every acknowledged write must be there, nothing else.

use anyhow::Result;
use sundial_testkit::crashloop::{self, Options};

#[test]
fn crash_loop_four_rounds_lose_nothing_acknowledged() -> Result<()> {
    // Four rounds: a kill at a flush start, at a compaction start, and two
    // after random delays.
    let mut opts = Options::new(env!("CARGO_BIN_EXE_sundial").into(), 4);
    opts.seconds = 2.0;
    let mut out = Vec::new();
    let summary = crashloop::run(&opts, &mut out)?;
    let text = String::from_utf8_lossy(&out);
    eprintln!("{text}\n{summary}");
    assert!(summary.is_clean(), "{text}\n{summary}");
    assert_eq!(summary.rounds, 4, "{text}\n{summary}");
    // The kill placement reads these log lines: without them it would
    // silently fall back to random kills.
    assert!(
        summary.flushes > 0 && summary.compactions > 0,
        "no flush or compaction in the server logs:\n{text}\n{summary}"
    );
    Ok(())
}

#[test]
fn crash_loop_with_blocks_on_s3_loses_nothing_and_kills_inside_uploads() -> Result<()> {
    // Round 3 waits for an upload to start and kills then.
    let mut opts = Options::new(env!("CARGO_BIN_EXE_sundial").into(), 4);
    opts.seconds = 2.0;
    opts.s3 = true;
    let mut out = Vec::new();
    let summary = crashloop::run(&opts, &mut out)?;
    let text = String::from_utf8_lossy(&out);
    eprintln!("{text}\n{summary}");
    assert!(summary.is_clean(), "{text}\n{summary}");
    assert_eq!(summary.rounds, 4, "{text}\n{summary}");
    assert!(
        summary.uploads > 0,
        "no upload in the server logs:\n{text}\n{summary}"
    );
    assert!(
        text.contains("at an upload start"),
        "no kill waited for an upload:\n{text}\n{summary}"
    );
    Ok(())
}
