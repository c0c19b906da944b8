//! SQL over a cluster's shards against SQL over one database holding
//! every series: the same statements give the same columns and rows (in
//! the same order where the statement or a plain SELECT fixes one), and
//! the answers hold what was written.

use super::*;
use crate::{Cell, Output, SqlError, fuzz::width};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use sundial_api::reads::ReadFuture;
use sundial_model::StatsQuery;
use sundial_model::series_query::QueryOutput;
use sundial_model::{FieldValue, Listed, Query, ValueInput, WritePoint};
use sundial_query::series_query::{Limits, SeriesHalf, stage_series_rows};
use sundial_query::stats::{GroupedStats, grouped_by, merge_grouped};
use sundial_storage::{Config, FsyncPolicy};

const START: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// Shards answered in-process, each by its own database; counts the
/// statistics asked for.
#[derive(Debug)]
struct Shards(Vec<Db>, AtomicUsize);

impl RemoteReads for Shards {
    fn opentsdb<'a>(
        &'a self,
        _: &'a str,
        _: &'a Query,
        _: &'a sundial_query::Budget,
    ) -> ReadFuture<'a> {
        Box::pin(async { Err(sundial_query::Error::Internal("not asked by SQL")) })
    }

    fn series<'a>(
        &'a self,
        _: &'a str,
        _: &'a SeriesQuery,
        _: Limits,
    ) -> ReadFuture<'a, QueryOutput> {
        Box::pin(async { Err(sundial_query::Error::Internal("not asked by SQL")) })
    }

    fn last<'a>(
        &'a self,
        _: &'a str,
        _: &'a Query,
        _: &'a sundial_query::Budget,
    ) -> ReadFuture<'a, Vec<sundial_query::Latest>> {
        Box::pin(async { Err(sundial_query::Error::Internal("not asked by SQL")) })
    }

    fn listing<'a>(
        &'a self,
        _: &'a str,
        listing: &'a Listing,
        budget: &'a sundial_query::Budget,
    ) -> ReadFuture<'a, Listed> {
        Box::pin(async move {
            let mut listed = Listed::default();
            for db in &self.0 {
                listed.merge(sundial_query::list(db, listing, budget)?, listing.max);
            }
            Ok(listed)
        })
    }

    fn rows<'a>(
        &'a self,
        _: &'a str,
        query: &'a SeriesQuery,
        budget: &'a sundial_query::Budget,
    ) -> ReadFuture<'a, Vec<SeriesHalf>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|db| stage_series_rows(db, query, budget))
                .collect()
        })
    }

    fn shards(&self) -> u32 {
        self.0.len() as u32
    }

    fn export_page<'a>(
        &'a self,
        _: &'a str,
        _: u32,
        _: &'a sundial_model::ExportPage,
    ) -> ReadFuture<'a, (Vec<sundial_query::series_query::StagedRows>, bool)> {
        Box::pin(async { Err(sundial_query::Error::Internal("not asked by SQL")) })
    }

    fn sql_stats<'a>(
        &'a self,
        _: &'a str,
        query: &'a StatsQuery,
        budget: &'a sundial_query::Budget,
    ) -> ReadFuture<'a, (GroupedStats, u64)> {
        self.1.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let before = budget.left();
            let mut groups = GroupedStats::new();
            for db in &self.0 {
                merge_grouped(&mut groups, grouped_by(db, query, budget)?);
            }
            Ok((groups, (before - budget.left()) as u64))
        })
    }
}

fn opts() -> crate::Options {
    crate::Options {
        max_rows: 1_000_000,
        max_scan_points: 10_000_000,
        timeout: Duration::from_secs(30),
        memory_bytes: 256 << 20,
        bucket_width: width,
    }
}

fn open(dir: &std::path::Path) -> anyhow::Result<Db> {
    Ok(Db::open(Config {
        data_dir: dir.to_owned(),
        fsync: FsyncPolicy::Buffered,
        ..Config::default()
    })?)
}

/// Metric `m` (six hosts, half with a `dc`; doubles `v`, longs `n`, text
/// `s`) and metric `k` (longs `n`), in rounds with overwrites and
/// out-of-order times; host `hN` lives in shard `N % 3`.
fn rounds() -> Vec<Vec<WritePoint>> {
    let key = |metric: &str, h: u64| {
        let mut tags = vec![("host".to_owned(), format!("h{h}"))];
        if h.is_multiple_of(2) {
            tags.push(("dc".to_owned(), format!("dc{}", h % 4)));
        }
        Arc::new(SeriesKey::new(metric, tags))
    };
    let mut state = 7u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    (0..3)
        .map(|_| {
            (0..300)
                .map(|_| {
                    let h = next(6);
                    let ts = START + next(120) as i64 * MINUTE;
                    let (metric, field, value) = match next(4) {
                        0 => (
                            "m",
                            "v",
                            FieldValue::Double(next(10_000) as f64 / 8.0 - 300.0),
                        ),
                        1 => ("m", "n", FieldValue::Long(next(1_000) as i64 - 200)),
                        2 => ("m", "s", FieldValue::String(format!("t{}", next(4)))),
                        _ => ("k", "n", FieldValue::Long(next(50) as i64)),
                    };
                    WritePoint {
                        series: key(metric, h),
                        field: field.into(),
                        timestamp: ts,
                        value: ValueInput::Typed(value),
                    }
                })
                .collect()
        })
        .collect()
}

fn shard_of(p: &WritePoint) -> usize {
    let host = p.series.tag("host").unwrap_or("h0");
    host[1..].parse::<usize>().unwrap_or(0) % 3
}

#[test]
fn a_cluster_answers_sql_as_one_database() -> anyhow::Result<()> {
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let whole = open(dirs[0].path())?;
    let shards: Vec<Db> = dirs[1..]
        .iter()
        .map(|d| open(d.path()))
        .collect::<anyhow::Result<_>>()?;
    let rounds = rounds();
    for (i, round) in rounds.iter().enumerate() {
        whole.write(round.clone(), false)?.commit.wait_blocking()?;
        for (s, db) in shards.iter().enumerate() {
            let mine: Vec<WritePoint> =
                round.iter().filter(|p| shard_of(p) == s).cloned().collect();
            db.write(mine, false)?.commit.wait_blocking()?;
        }
        // Some points in blocks, the rest in the heads.
        if i == 0 {
            whole.flush()?;
            for db in &shards {
                db.flush()?;
            }
        }
    }
    let shards = Arc::new(Shards(shards, AtomicUsize::new(0)));
    let reads: Arc<dyn RemoteReads> = shards.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let local = |sql: &str| runtime.block_on(crate::run(&whole, sql, opts()));
    let cluster = |sql: &str| runtime.block_on(crate::run_remote(reads.clone(), "db", sql, opts()));
    let late = START + 60 * MINUTE;
    // (statement, whether its row order is fixed)
    let statements = [
        ("SELECT * FROM m".to_string(), true),
        ("SELECT * FROM m LIMIT 9".to_string(), true),
        (format!("SELECT time, host, v, s FROM m WHERE host = 'h1' AND time >= {late}"), true),
        ("SELECT host, dc, count(*), sum(n), max(v), min(s) FROM m GROUP BY host, dc ORDER BY host".to_string(), true),
        ("SELECT time_bucket(time, '10 minutes') AS b, dc, avg(v), count(n) FROM m GROUP BY b, dc ORDER BY b, dc".to_string(), true),
        ("SELECT * FROM m ORDER BY time DESC, host LIMIT 7".to_string(), true),
        ("SELECT host, n FROM k WHERE host IN ('h2', 'h4')".to_string(), true),
        ("SELECT count(*), sum(n) FROM k".to_string(), true),
        ("SELECT m.host, m.time, k.n FROM m JOIN k ON m.time = k.time AND m.host = k.host".to_string(), false),
        ("SELECT * FROM nosuch".to_string(), true),
        ("SELECT nope FROM m".to_string(), true),
    ];
    for (sql, ordered) in &statements {
        match (local(sql), cluster(sql)) {
            (Ok(one), Ok(many)) => {
                assert_eq!(many.columns, one.columns, "{sql}");
                assert!(!one.is_empty(), "{sql}: no rows");
                if *ordered {
                    assert_eq!(text(&many), text(&one), "{sql}");
                } else {
                    assert_eq!(sorted(&many), sorted(&one), "{sql}");
                }
            }
            (Err(one), Err(many)) => {
                assert_eq!(many, one, "{sql}");
                assert!(matches!(one, SqlError::Invalid(_)), "{sql}: {one:?}");
            }
            (one, many) => panic!("{sql}: one database {one:?}, cluster {many:?}"),
        }
    }

    // The bucketed aggregate was folded at the shards.
    assert!(shards.1.load(Ordering::Relaxed) >= 1);

    // The answers hold what was written: k's last value per (host, time)
    // counted and summed, and m's `n` typed as a long column.
    let mut k: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut m_times: BTreeSet<(String, i64)> = BTreeSet::new();
    for p in rounds.iter().flatten() {
        let host = p.series.tag("host").unwrap_or_default().to_owned();
        match (p.series.metric.as_str(), &p.value) {
            ("k", ValueInput::Typed(FieldValue::Long(n))) => {
                k.insert((host, p.timestamp), *n);
            }
            _ => {
                m_times.insert((host, p.timestamp));
            }
        }
    }
    let totals = cluster("SELECT count(*), sum(n) FROM k")?;
    assert_eq!(
        totals.cells(),
        vec![vec![
            Cell::Long(k.len() as i64),
            Cell::Long(k.values().sum())
        ]]
    );
    assert_eq!(cluster("SELECT * FROM m")?.len(), m_times.len());
    let typed = cluster("SELECT n FROM m WHERE n IS NOT NULL LIMIT 1")?;
    assert!(matches!(
        typed.cells().first().and_then(|r| r.first()),
        Some(Cell::Long(_))
    ));
    Ok(())
}

/// Rows as text, doubles to 9 significant digits (sums add in another
/// order over other partitions).
fn text(out: &Output) -> Vec<String> {
    crate::row_text(&out.cells())
}

fn sorted(out: &Output) -> Vec<String> {
    let mut rows = text(out);
    rows.sort();
    rows
}
