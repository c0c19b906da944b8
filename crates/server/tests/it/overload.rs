//! Issue 14, point 2: writes at several times the capacity of a server
//! with small slots. The surplus gets busy answers with a retry hint,
//! nothing fails otherwise, every accepted write is stored, and the server
//! stays below its memory bound. (The minute-long run with figures is
//! `bench/overload.sh`.)

use crate::harness::TestServer;
use anyhow::Result;
use std::time::Duration;
use sundial_testkit::overload::{Plan, run};

#[test]
fn surplus_writes_are_refused_busy_with_a_retry_hint() -> Result<()> {
    let s = TestServer::spawn_with_config(
        "[limits]\nmax_concurrent_writes = 2\nqueue_timeout_ms = 20\n\
         [http]\nmax_connections = 64\n",
    )?;
    let plan = Plan {
        url: s.url(""),
        connections: 24,
        duration: Duration::from_secs(3),
        batch: 500,
        headers: Vec::new(),
        pid: s.pid(),
    };
    let report = run(&plan);
    let summary = report.to_json();
    assert_eq!(report.failed, 0, "{summary}");
    assert!(report.accepted > 0, "{summary}");
    assert!(report.busy > 0, "24 connections and 2 slots: {summary}");
    assert_eq!(report.busy_without_hint, 0, "{summary}");
    // Every accepted point is stored (and only those).
    let got = s.get_json("/v1/row?sql=select%20count(*)%20as%20n%20from%20%60overload.m%60")?;
    let stored = got["rows"][0][0].as_u64().unwrap_or_default();
    assert_eq!(stored, report.accepted_points, "{summary}");
    // Head, WAL queue and two bodies in flight, with room for the runtime.
    assert!(report.max_rss_mib() < 1024.0, "{summary}");
    Ok(())
}
