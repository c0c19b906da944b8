//! Fuzz entry point for SQL statements (`fuzz/` at the repository root
//! runs it under libFuzzer; `cargo test` replays the committed corpus and
//! regressions): any text goes through the rewrite, DataFusion's logical
//! planning and physical planning against a small database, never
//! through execution.

use crate::Budget;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};
use sundial_storage::{Config, Db, FsyncPolicy};

/// A statement as `/v1/row` receives it: parsed, rewritten and planned.
pub fn plan(data: &[u8]) {
    let Some(fixture) = fixture() else {
        return;
    };
    let sql = String::from_utf8_lossy(data);
    let Ok(prepared) = crate::rewrite::prepare(&sql) else {
        return;
    };
    let budget = Arc::new(Budget {
        points: AtomicUsize::new(0),
        max_points: 10_000,
        deadline: Instant::now() + Duration::from_secs(1),
        ordered: prepared.ordered,
        partitions: 2,
    });
    let opts = crate::Options {
        max_rows: 10_000,
        max_scan_points: 10_000,
        timeout: Duration::from_secs(1),
        memory_bytes: 64 << 20,
        bucket_width: width,
    };
    let Ok(state) = crate::session(
        crate::remote::Store::Local(fixture.db.clone()),
        budget,
        &opts,
        true,
    ) else {
        return;
    };
    fixture.runtime.block_on(async {
        if let Ok(plan) = crate::plan(&state, prepared.statement).await {
            let _ = state.create_physical_plan(&plan).await;
        }
    });
}

pub(crate) struct Fixture {
    pub(crate) db: Db,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// The database every statement is planned against: the tables of the
/// spec's examples (`power`, `heat`, `cpu_idle`), numeric, text and bytes
/// fields.
pub(crate) fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let data_dir = sundial_storage::fuzz::scratch_dir().join("sql-db");
            let _ = std::fs::remove_dir_all(&data_dir);
            let db = Db::open(Config {
                data_dir,
                fsync: FsyncPolicy::Buffered,
                ..Config::default()
            })
            .ok()?;
            let written = db.write(points(), false).ok()?;
            runtime.block_on(written.commit.wait()).ok()?;
            Some(Fixture { db, runtime })
        })
        .as_ref()
}

fn points() -> Vec<WritePoint> {
    let point = |key: &Arc<SeriesKey>, field: &str, timestamp, value| WritePoint {
        series: key.clone(),
        field: field.into(),
        timestamp,
        value: ValueInput::Typed(value),
    };
    let tags = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let power = Arc::new(SeriesKey::new(
        "power",
        tags(&[("meter", "M-01"), ("city", "sh")]),
    ));
    let heat = Arc::new(SeriesKey::new("heat", tags(&[("meter", "M-01")])));
    let cpu = Arc::new(SeriesKey::new(
        "cpu_idle",
        tags(&[("host", "a"), ("rack", "r1")]),
    ));
    let mut out = Vec::new();
    for k in 0..10 {
        let ts = 1_500_000_000_000 + 60_000 * k;
        out.push(point(
            &power,
            "watts",
            ts,
            FieldValue::Double(k as f64 * 50.5),
        ));
        out.push(point(&power, "amps", ts, FieldValue::Long(k)));
        out.push(point(&heat, "celsius", ts, FieldValue::Double(21.5)));
        out.push(point(&heat, "note", ts, FieldValue::String("calm".into())));
        out.push(point(&heat, "raw", ts, FieldValue::Bytes(vec![1, 2])));
        out.push(point(&cpu, "value", ts, FieldValue::Long(k * 10)));
    }
    out
}

/// `time_bucket` widths: `<n> <unit>` (the server passes the Baidu
/// duration grammar; any total function will do for planning).
pub(crate) fn width(text: &str) -> Result<i64, String> {
    let (n, unit) = text.trim().split_once(' ').ok_or("no unit")?;
    let n: i64 = n.parse().map_err(|_| "not a number")?;
    let ms = match unit.trim().trim_end_matches('s') {
        "millisecond" => 1,
        "second" => 1000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return Err("unknown unit".into()),
    };
    n.checked_mul(ms)
        .filter(|w| *w > 0)
        .ok_or_else(|| "out of range".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn corpus_and_regressions_replay() {
        sundial_codec::fuzz::replay("sql_plan", super::plan);
    }
}
