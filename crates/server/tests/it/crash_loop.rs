//! Issue 14, point 5: four rounds of the crash loop (`scripts/crash-loop`
//! runs many): the server is SIGKILLed under writes through every API,
//! deletes, BlueKing metadata changes and compactions, and after each
//! restart every acknowledged write must be there, nothing else. Issue 16:
//! the same with the blocks on S3, one kill at an upload start.

use anyhow::Result;
use sundial_testkit::crashloop::{self, Options, Summary};

/// Four rounds of kills within 2 s; fails unless all were clean. Returns
/// the summary and the rounds' lines.
fn four_clean_rounds(s3: bool) -> Result<(Summary, String)> {
    let mut opts = Options::new(env!("CARGO_BIN_EXE_sundial").into(), 4);
    opts.seconds = 2.0;
    opts.s3 = s3;
    let mut out = Vec::new();
    let summary = crashloop::run(&opts, &mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    eprintln!("{text}\n{summary}");
    assert!(summary.is_clean(), "{text}\n{summary}");
    assert_eq!(summary.rounds, 4, "{text}\n{summary}");
    Ok((summary, text))
}

#[test]
fn crash_loop_four_rounds_lose_nothing_acknowledged() -> Result<()> {
    // A kill at a flush start, at a compaction start, and two after
    // random delays.
    let (summary, text) = four_clean_rounds(false)?;
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
    let (summary, text) = four_clean_rounds(true)?;
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
