//! The binding of points other APIs write (`/api/put`, telnet,
//! `/v1/datapoint`) to BlueKing groups, by data id or by physical metric
//! name, with discovery once they are stored (spec 9.3-9.6): a
//! [`WriteHook`], so those APIs never name BlueKing.

use super::Api;
use super::ingest::{Seen, name_error, name_ok, note, one_unit};
use super::registry::Registry;
use axum::http::HeaderMap;
use std::sync::Arc;
use sundial_api::write_hook::{HookedWrite, Refusal, StoredFuture, WriteHook, WriteRequest};
use sundial_model::now_ms;
use sundial_model::{FieldValue, NumberText, PointError, SeriesKey, ValueInput, WritePoint};

/// Binds points of the other write APIs to groups (spec 9.3–9.5).
#[derive(Debug, Clone)]
pub struct Binder(Arc<Registry>);

/// Why a bound point was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    NoGroup(i64),
    Name(String),
    NotNumber,
    Field(String),
}

impl From<BindError> for Refusal {
    fn from(e: BindError) -> Self {
        match e {
            BindError::NoGroup(id) => {
                Refusal::Point(format!("no active time series group for bk_data_id {id}"))
            }
            BindError::Name(n) => Refusal::Point(name_error(&n)),
            BindError::NotNumber => Refusal::NotANumber,
            BindError::Field(f) => Refusal::Point(format!(
                "field '{f}' is not allowed in a time series group; only the default field 'value' is accepted"
            )),
        }
    }
}

impl Api {
    pub fn binder(&self) -> Binder {
        Binder(self.registry.clone())
    }
}

/// `bk_data_id` of a write request: the query parameter, else the
/// `X-Bk-Data-Id` header. `Err` carries the raw text of a bad one.
fn explicit_data_id(query: Option<&str>, headers: &HeaderMap) -> Result<Option<i64>, String> {
    let from_query = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "bk_data_id")
        .map(|(_, v)| v.into_owned());
    let raw = from_query.or_else(|| {
        headers
            .get("X-Bk-Data-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    match raw {
        None => Ok(None),
        Some(r) => match r.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(r),
        },
    }
}

impl Binder {
    /// Whether a request without `bk_data_id` can touch any group.
    fn any_groups(&self) -> bool {
        self.0.has_groups()
    }

    /// Rewrites a point bound to a group (explicitly, or by its physical
    /// name) into the group's physical series with a Double value; returns
    /// the group and field name, or `None` for a point of no group.
    fn bind(
        &self,
        explicit: Option<i64>,
        p: &mut WritePoint,
    ) -> Result<Option<(i64, String)>, BindError> {
        let (group, field) = match explicit {
            Some(data_id) => {
                let of = |s: &crate::model::State| {
                    s.group_of_data_id(data_id)
                        .filter(|g| g.active())
                        .map(|g| (g.id, g.db_prefix().to_owned()))
                };
                // A data id this node has not seen may have been made
                // through another node of a cluster just now: look again
                // at what is stored before refusing.
                let group = self
                    .0
                    .read(of)
                    .or_else(|| self.0.read_fresh(of))
                    .ok_or(BindError::NoGroup(data_id))?;
                (group, p.series.metric.to_string())
            }
            None => {
                let Some((prefix, field)) = p.series.metric.split_once('.') else {
                    return Ok(None);
                };
                let Some(id) = self.0.group_by_prefix(prefix) else {
                    return Ok(None);
                };
                let active = self.0.read(|s| {
                    s.groups
                        .get(&id)
                        .map(|g| (g.active(), g.bk_data_id, g.db_prefix().to_owned()))
                });
                match active {
                    Some((true, _, prefix)) => ((id, prefix), field.to_owned()),
                    Some((false, data_id, _)) => return Err(BindError::NoGroup(data_id)),
                    None => return Ok(None),
                }
            }
        };
        let (group_id, prefix) = group;
        if !name_ok(&field) {
            return Err(BindError::Name(field));
        }
        if let Some((k, _)) = p.series.tags.iter().find(|(k, _)| !name_ok(k)) {
            return Err(BindError::Name(k.to_string()));
        }
        if p.field != sundial_model::DEFAULT_FIELD {
            return Err(BindError::Field(p.field.to_string()));
        }
        let v = match &p.value {
            ValueInput::Typed(FieldValue::Long(i)) => *i as f64,
            ValueInput::Typed(FieldValue::Double(d)) => *d,
            ValueInput::Text {
                number: NumberText::Number(n),
                ..
            } => n.as_f64().ok_or(BindError::NotNumber)?,
            _ => return Err(BindError::NotNumber),
        };
        p.value = ValueInput::Typed(FieldValue::Double(v));
        std::sync::Arc::make_mut(&mut p.series).metric = format!("{prefix}.{field}").into();
        Ok(Some((group_id, field)))
    }

    /// Records the metrics and tags of stored bound points (spec 9.6).
    /// Records what stored points revealed; durable (it may write the
    /// metadata file) and off the async workers.
    pub(super) async fn discovered(&self, seen: Seen) -> std::io::Result<()> {
        let registry = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for (group, fields) in &seen {
                registry.discover(*group, fields, now)?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

impl WriteHook for Binder {
    fn begin(&self, request: WriteRequest<'_>) -> Result<Option<Box<dyn HookedWrite>>, Refusal> {
        let explicit = explicit_data_id(request.query, request.headers)
            .map_err(|raw| Refusal::Request(format!("invalid bk_data_id '{raw}'")))?;
        // Group data lives in the default database.
        if !request.default_database {
            return match explicit {
                Some(_) => Err(Refusal::Request(
                    "bk_data_id applies to writes to the default database only".into(),
                )),
                None => Ok(None),
            };
        }
        // Without a data id only metric names can bind, and only if any
        // group exists: the common path skips the lookups.
        if explicit.is_none() && !self.any_groups() {
            return Ok(None);
        }
        Ok(Some(Box::new(GroupWrite {
            binder: self.clone(),
            explicit,
            bound: Vec::new(),
        })))
    }
}

/// The group binding of one write request.
struct GroupWrite {
    binder: Binder,
    explicit: Option<i64>,
    /// (point index, group, field name, series) of bound points.
    bound: Vec<(usize, i64, String, Arc<SeriesKey>)>,
}

impl HookedWrite for GroupWrite {
    fn admit(&mut self, index: usize, point: &mut WritePoint) -> Result<(), Refusal> {
        if let Some((group, field)) = self.binder.bind(self.explicit, point)? {
            self.bound.push((index, group, field, point.series.clone()));
        }
        Ok(())
    }

    fn stored(self: Box<Self>, results: &[Result<(), PointError>]) -> StoredFuture {
        let mut seen = Seen::new();
        for (i, group, field, key) in &self.bound {
            if matches!(results.get(*i), Some(Ok(()))) {
                note(&mut seen, *group, field, key);
            }
        }
        one_unit(&mut seen);
        let binder = self.binder;
        Box::pin(async move {
            if seen.is_empty() {
                return Ok(());
            }
            binder.discovered(seen).await
        })
    }
}
