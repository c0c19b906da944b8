//! `POST /api/mput` (spec 17.1): Alibaba's multi-field write. Each field
//! is stored as its own value of the series; a point stands or falls with
//! all its fields.

use super::dto::{PointDto, Scalar, TagsDto};
use super::error::OpenTsdbError;
use super::names;
use super::put::{
    Checked, Limits, Received, check_point, parse_body, point_error_text, receive, reply, store,
    value_input,
};
use super::scope::WriteScope;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use std::borrow::Cow;
use std::ops::Range;
use sundial_api::write_hook::HookedRequest;
use sundial_model::{Kind, PointError, WritePoint};

/// What became of one element before the write.
enum Slot {
    Failed(String),
    /// Its fields' points, and the error of a rule OpenTSDB checks after
    /// the value kinds.
    Points {
        range: Range<usize>,
        later_error: Option<String>,
    },
}

pub(crate) async fn mput(
    WriteScope(api): WriteScope,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenTsdbError> {
    let Received {
        params,
        _slot,
        bytes,
    } = receive(&api, query.as_deref(), &headers, body).await?;
    let parsed = parse_body(&bytes, api.limits.config.max_write_points)?;
    let mut hooked = api.begin_hooks(query.as_deref(), &headers)?;
    let Batch {
        slots,
        points,
        sizes,
        vetoed,
    } = batch(&parsed, api.name_limits(), &mut hooked);
    let described: Vec<(String, String)> = points
        .iter()
        .map(|p| (p.series.metric.to_string(), p.field.to_string()))
        .collect();
    let (results, timed_out) = store(&api, points, (sizes, vetoed), &params, hooked).await?;
    let failures = slots
        .into_iter()
        .map(|slot| slot_failure(slot, &results, &described));
    Ok(reply(&params, failures, &bytes, timed_out))
}

/// The points of a request's elements, one group per element, and what
/// became of each element.
struct Batch {
    slots: Vec<Slot>,
    points: Vec<WritePoint>,
    sizes: Vec<usize>,
    /// Points of elements with a later error: checked, never stored.
    vetoed: Vec<bool>,
}

/// Checks every element; the write hooks see the points of clean ones.
fn batch(parsed: &[PointDto<'_>], limits: Limits, hooked: &mut HookedRequest) -> Batch {
    let mut slots = Vec::with_capacity(parsed.len());
    let mut points: Vec<WritePoint> = Vec::new();
    let mut sizes = Vec::with_capacity(parsed.len());
    let mut vetoed = Vec::new();
    for element in parsed {
        let fields = usable_fields(element);
        // The put rules with the fields standing in for the value: any
        // empty field is rule 3, any unusable one rule 5.
        let probe = PointDto {
            value: fields.as_ref().and_then(|f| {
                f.iter()
                    .find(|(_, v)| value_input(v).is_none())
                    .or_else(|| f.first())
                    .map(|(_, v)| v.clone())
            }),
            ..element.clone()
        };
        match check_point(&probe, limits) {
            Checked::Failed(msg) => slots.push(Slot::Failed(msg)),
            Checked::Point { point, later_error } => {
                let fields = fields.unwrap_or_default();
                let mut later_error = later_error.or_else(|| {
                    fields
                        .iter()
                        .find_map(|(name, _)| field_name_error(name, limits.max_tagk_bytes))
                });
                let start = points.len();
                for (name, v) in &fields {
                    let Some(value) = value_input(v) else {
                        continue;
                    };
                    points.push(WritePoint {
                        series: point.series.clone(),
                        field: name.as_ref().into(),
                        timestamp: point.timestamp,
                        value,
                    });
                    vetoed.push(later_error.is_some());
                }
                if later_error.is_none()
                    && let Some(refusal) = points
                        .get_mut(start..)
                        .and_then(|own| admit(hooked, own, start))
                {
                    // Kept but vetoed, so no index a hook saw is reused.
                    vetoed
                        .get_mut(start..)
                        .into_iter()
                        .for_each(|v| v.fill(true));
                    later_error = Some(refusal);
                }
                sizes.push(points.len() - start);
                slots.push(Slot::Points {
                    range: start..points.len(),
                    later_error,
                });
            }
        }
    }
    Batch {
        slots,
        points,
        sizes,
        vetoed,
    }
}

/// Passes an element's points (the first at `first` of the write) through
/// the write hooks; the first refusal, as the element's error.
fn admit(hooked: &mut HookedRequest, points: &mut [WritePoint], first: usize) -> Option<String> {
    points
        .iter_mut()
        .enumerate()
        .find_map(|(i, p)| hooked.admit(first + i, p).err())
        .map(|e| e.to_string())
}

/// The failure to report for one element given the engine's results.
fn slot_failure(
    slot: Slot,
    results: &[Result<(), PointError>],
    described: &[(String, String)],
) -> Option<String> {
    match slot {
        Slot::Failed(msg) => Some(msg),
        Slot::Points { range, later_error } => {
            let own = range.clone().find_map(|i| match results.get(i) {
                Some(Err(PointError::Rejected)) | Some(Ok(())) => None,
                Some(Err(e)) => Some(field_error_text(e, described.get(i))),
                None => Some("Internal error".into()),
            });
            let refused = range
                .into_iter()
                .any(|i| matches!(results.get(i), Some(Err(PointError::Rejected))));
            own.or(if refused { later_error } else { None })
        }
    }
}

/// The fields in ascending name order, or `None` when rule 3 fails: no
/// object, no member, or a `null` or `""` value.
fn usable_fields<'a>(p: &PointDto<'a>) -> Option<Vec<(Cow<'a, str>, Scalar<'a>)>> {
    let Some(TagsDto::Map(fields)) = &p.fields else {
        return None;
    };
    let empty =
        |v: &Scalar<'_>| matches!(v, Scalar::Null) || matches!(v, Scalar::Str(s) if s.is_empty());
    if fields.is_empty() || fields.iter().any(|(_, v)| empty(v)) {
        return None;
    }
    let mut sorted = fields.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Some(sorted)
}

/// Field names follow the tag-key rules (spec 17.1).
fn field_name_error(name: &str, max_bytes: usize) -> Option<String> {
    if name.is_empty() {
        return Some("Invalid field name: empty string".into());
    }
    if let Some(c) = names::first_illegal(name) {
        return Some(format!(
            "Invalid field name (\"{name}\"): illegal character: {c}"
        ));
    }
    (name.len() > max_bytes).then(|| {
        format!(
            "Field name too long: {} bytes (limit {max_bytes})",
            name.len()
        )
    })
}

/// An engine refusal in the field wording of spec 17.1.
fn field_error_text(e: &PointError, described: Option<&(String, String)>) -> String {
    let (metric, field) = described.map_or(("", ""), |(m, f)| (m.as_str(), f.as_str()));
    let kind = |k: &Kind| match k {
        Kind::Numeric => "numeric",
        Kind::String => "string",
        Kind::Bytes => "bytes",
    };
    match e {
        PointError::KindMismatch { stored, written } => format!(
            "Cannot write a {} value to field {field} of metric {metric}: it stores {} values",
            kind(written),
            kind(stored)
        ),
        other => point_error_text(other, metric),
    }
}
