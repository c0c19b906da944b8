//! Reads one [`ExportPage`]: what `/api/export` streams, from a single
//! node's database or from each shard at its owner.

use crate::Result;
use crate::series_query::StagedRows;
use std::collections::BTreeMap;
use sundial_model::ExportPage;
use sundial_model::series_query::RowValues;
use sundial_storage::Db;

/// The page's series with their rows (a row per timestamp, a value per
/// field of `page.fields` where that field has one), series without
/// points in the range included; and whether series follow the page.
/// Holds the read lock for one page only.
pub fn export_page(db: &Db, page: &ExportPage) -> Result<(Vec<StagedRows>, bool)> {
    db.read(|mut snap| {
        let ids: Vec<_> = snap
            .series_of(&page.metric)
            .iter()
            .skip(page.first)
            .take(page.count.saturating_add(1))
            .copied()
            .collect();
        let more = ids.len() > page.count;
        let mut out = Vec::with_capacity(ids.len().min(page.count));
        for id in ids.into_iter().take(page.count) {
            let Some(key) = snap.key(id) else { continue };
            let rows = match page.fields.as_slice() {
                // One field (OpenTSDB's metrics): its points are the rows.
                [field] => snap
                    .points(id, field, page.start, page.end)?
                    .into_iter()
                    .map(|(t, v)| (t, std::iter::once(Some(v)).collect()))
                    .collect(),
                fields => {
                    let mut rows: BTreeMap<i64, RowValues> = BTreeMap::new();
                    for (i, field) in fields.iter().enumerate() {
                        for (t, v) in snap.points(id, field, page.start, page.end)? {
                            let row = rows
                                .entry(t)
                                .or_insert_with(|| RowValues::from_elem(None, fields.len()));
                            row[i] = Some(v);
                        }
                    }
                    rows.into_iter().collect()
                }
            };
            out.push((key, rows));
            snap.yield_to_writers();
        }
        Ok((out, more))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use sundial_model::{FieldValue, SeriesKey, ValueInput, WritePoint};

    #[test]
    fn pages_hold_a_run_of_series_with_a_row_per_time()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        // Three hosts; "a" every 10 s, "b" every 20 s, so rows have gaps.
        let mut batch = Vec::new();
        for host in ["h0", "h1", "h2"] {
            let series = Arc::new(SeriesKey::new("m", vec![("host".into(), host.into())]));
            for t in 0..6i64 {
                for (field, every) in [("a", 1), ("b", 2)] {
                    if t % every == 0 {
                        batch.push(WritePoint {
                            series: series.clone(),
                            field: field.into(),
                            timestamp: t * 10_000,
                            value: ValueInput::Typed(FieldValue::Long(t)),
                        });
                    }
                }
            }
        }
        let (_dir, db) = crate::temp_db_with(batch)?;
        let page = |first, count, fields: &[&str]| ExportPage {
            metric: "m".into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            first,
            count,
            start: 10_000,
            end: 40_000,
        };
        let (first_two, more) = export_page(&db, &page(0, 2, &["a", "b"]))?;
        assert!(more);
        assert_eq!(first_two.len(), 2);
        // Times 10..40 s: "a" at each, "b" at 20 and 40.
        let rows: Vec<(i64, Vec<Option<FieldValue>>)> = first_two[0]
            .1
            .iter()
            .map(|(t, v)| (*t, v.to_vec()))
            .collect();
        let long = |v| Some(FieldValue::Long(v));
        assert_eq!(
            rows,
            [
                (10_000, vec![long(1), None]),
                (20_000, vec![long(2), long(2)]),
                (30_000, vec![long(3), None]),
                (40_000, vec![long(4), long(4)]),
            ]
        );
        let (last, more) = export_page(&db, &page(2, 2, &["b"]))?;
        assert!(!more);
        assert_eq!(last.len(), 1);
        let times: Vec<i64> = last[0].1.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [20_000, 40_000]);
        let keys: Vec<String> = first_two
            .iter()
            .chain(&last)
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k.starts_with('m')), "{keys:?}");
        Ok(())
    }
}
