//! Runs a [`Deletion`] over one database: its series selected as a query
//! selects them, then their points or the series themselves removed.

use crate::{Error, Result};
use sundial_model::{Deleted, Deletion};
use sundial_storage::{Db, RoaringBitmap};

/// Deletes what `deletion` names in `db`: how many points went. Nothing
/// to do for a metric never written. Blocking (it flushes and rewrites
/// blocks).
pub fn delete(db: &Db, deletion: &Deletion) -> Result<u64> {
    let ids: RoaringBitmap = db.read(|view| {
        if !view.has_metric(&deletion.metric) {
            return Ok(RoaringBitmap::new());
        }
        let ids = view
            .select(&deletion.metric, &deletion.tags)
            .map_err(|e| Error::InvalidPredicate(e.to_string()))?;
        Ok::<_, Error>(ids.into_iter().map(|id| id.0).collect())
    })?;
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = match &deletion.what {
        Deleted::Points { fields, start, end } => {
            db.delete_points(&ids, fields.as_deref(), *start, *end)?
        }
        Deleted::Series => db.remove_series(&ids)?,
    };
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use sundial_model::{FieldValue, SeriesKey, TagMatch, ValueInput, WritePoint};

    fn point(host: &str, field: &str, t: i64) -> WritePoint {
        WritePoint {
            series: Arc::new(SeriesKey::new("cpu", vec![("host".into(), host.into())])),
            field: field.into(),
            timestamp: t,
            value: ValueInput::Typed(FieldValue::Long(t)),
        }
    }

    fn host(h: &str) -> Vec<TagMatch> {
        vec![TagMatch::Eq {
            key: "host".into(),
            value: h.into(),
        }]
    }

    #[test]
    fn deletes_the_selected_points_and_series()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let mut batch = Vec::new();
        for t in 0..10 {
            batch.extend([point("a", "v", t), point("a", "w", t), point("b", "v", t)]);
        }
        let (_dir, db) = crate::temp_db_with(batch)?;
        let points = |h: &str, f: &str| -> Result<usize> {
            db.read(|view| {
                let ids = view
                    .select("cpu", &host(h))
                    .map_err(|e| Error::InvalidPredicate(e.to_string()))?;
                let mut n = 0;
                for id in ids {
                    n += view.points(id, f, i64::MIN, i64::MAX)?.len();
                }
                Ok(n)
            })
        };
        let of_a_v = Deletion {
            metric: "cpu".into(),
            tags: host("a"),
            what: Deleted::Points {
                fields: Some(vec!["v".into()]),
                start: 2,
                end: 4,
            },
        };
        assert_eq!(delete(&db, &of_a_v)?, 3);
        assert_eq!(
            (points("a", "v")?, points("a", "w")?, points("b", "v")?),
            (7, 10, 10)
        );
        // Again: nothing left to delete there.
        assert_eq!(delete(&db, &of_a_v)?, 0);
        let b = Deletion {
            metric: "cpu".into(),
            tags: host("b"),
            what: Deleted::Series,
        };
        assert_eq!(delete(&db, &b)?, 10);
        assert_eq!(points("b", "v")?, 0);
        let unknown = Deletion {
            metric: "nothing".into(),
            tags: Vec::new(),
            what: Deleted::Series,
        };
        assert_eq!(delete(&db, &unknown)?, 0);
        Ok(())
    }
}
