//! Reads one [`ExportPage`]: what `/api/export` streams, from a single
//! node's database or from each shard at its owner.

use crate::Result;
use crate::series_query::StagedRows;
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
            let mut rows: std::collections::BTreeMap<i64, RowValues> = Default::default();
            for (i, field) in page.fields.iter().enumerate() {
                for (t, v) in snap.points(id, field, page.start, page.end)? {
                    let row = rows
                        .entry(t)
                        .or_insert_with(|| RowValues::from_elem(None, page.fields.len()));
                    row[i] = Some(v);
                }
            }
            out.push((key, rows.into_iter().collect()));
            snap.yield_to_writers();
        }
        Ok((out, more))
    })
}
