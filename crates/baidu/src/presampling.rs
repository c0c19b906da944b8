//! Presampling rules (spec 12): `{id, metric, tags?, aggregators,
//! startTime}`. A rule makes the storage keep, for the series it selects,
//! each chunk's statistics per bucket of its first aggregator's sampling
//! (`sundial_storage::PresamplingRule`); a query it matches is answered
//! from them where they stand for the points, reports the rule's id, and
//! returns the rows raw evaluation returns.

use super::error::BaiduError;
use super::query::{self, Context, Parsed};
use super::write::present;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use sundial_model::series_query::{Aggregation, RangeFn, Sampling};
use sundial_storage::PresamplingRule;

/// Rules per database (Baidu allows a paid database two).
pub const MAX_RULES: usize = 16;
const MAX_TAG_KEYS: usize = 5;
const MAX_ID_LEN: usize = 64;

/// A rule from its JSON definition, checked; the storage's form keeps the
/// definition as given.
pub fn parse_rule(definition: &Value) -> Result<PresamplingRule, BaiduError> {
    let Some(obj) = definition.as_object() else {
        return Err(BaiduError::invalid(
            "a presampling rule must be a JSON object",
        ));
    };
    let id = match present(obj, "id") {
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => {
            return Err(BaiduError::invalid(format!(
                "id must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'"
            )));
        }
    };
    let metric = match present(obj, "metric") {
        Some(Value::String(m)) if m == "*" => None,
        Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
        _ => return Err(BaiduError::invalid("metric must be a metric name or \"*\"")),
    };
    let tags = rule_tags(obj)?;
    let aggregators = rule_aggregators(obj)?;
    let width = match aggregators.first() {
        Some(Aggregation::Range {
            func: RangeFn::Count | RangeFn::Sum | RangeFn::Min | RangeFn::Max | RangeFn::Avg,
            sampling: Some(Sampling::Fixed(width)),
        }) => *width,
        _ => {
            return Err(BaiduError::invalid(
                "the first aggregator must be Count, Sum, Min, Max or Avg with a fixed \
                 sampling (such as \"10 minutes\"): only those are kept presampled",
            ));
        }
    };
    let start_time = match present(obj, "startTime") {
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| BaiduError::invalid("startTime must be a time in milliseconds"))?;
    Ok(PresamplingRule {
        id,
        definition: definition.clone(),
        metric,
        tags: tags
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect(),
        anchor: start_time,
        width,
    })
}

fn valid_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

type TagSets = BTreeMap<String, BTreeSet<String>>;

/// A rule's `tags`: the object form of a query's tag filter.
fn rule_tags(obj: &Map<String, Value>) -> Result<Option<TagSets>, BaiduError> {
    let Some(tags) = present(obj, "tags") else {
        return Ok(None);
    };
    let Some(map) = tags.as_object() else {
        return Err(BaiduError::invalid(
            "tags must be an object of tag keys to lists of values",
        ));
    };
    if map.len() > MAX_TAG_KEYS {
        return Err(BaiduError::invalid(format!(
            "tags may name at most {MAX_TAG_KEYS} keys"
        )));
    }
    let mut out = TagSets::new();
    for (k, v) in map {
        let values = query::strings(v, "tag values")?;
        if values.is_empty() {
            return Err(BaiduError::invalid(format!("tag {k} lists no values")));
        }
        out.insert(k.clone(), values.into_iter().collect());
    }
    Ok(Some(out))
}

fn rule_aggregators(obj: &Map<String, Value>) -> Result<Vec<Aggregation>, BaiduError> {
    let Some(Value::Array(list)) = present(obj, "aggregators") else {
        return Err(BaiduError::invalid("aggregators must be an array"));
    };
    if !(1..=3).contains(&list.len()) {
        return Err(BaiduError::invalid("a rule has 1 to 3 aggregators"));
    }
    // Calendar samplings are refused for the first step; the offset only
    // matters to later ones, where UTC is as good as any for comparing.
    let ctx = Context {
        now: 0,
        utc_offset_ms: 0,
    };
    list.iter().map(|a| query::aggregator(a, ctx)).collect()
}

/// What of a query's request presampling matching looks at (spec 12).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// The tag filter in its object form; `None` when absent.
    tags: Option<TagSets>,
    /// A tag filter in the array form, `or`, value or field filters, or
    /// fill: no rule matches.
    excluded: bool,
}

/// The query's [`Shape`], from its JSON.
pub(crate) fn shape(q: &Map<String, Value>) -> Shape {
    let filters = present(q, "filters").and_then(Value::as_object);
    let tags = filters.and_then(|f| present(f, "tags"));
    let object = tags.and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| {
                let values = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                (k.clone(), values)
            })
            .collect()
    });
    let excluded = filters.is_none_or(|f| {
        ["or", "value", "fields"]
            .iter()
            .any(|k| present(f, k).is_some())
    }) || (tags.is_some() && object.is_none())
        || present(q, "fill").is_some();
    Shape {
        tags: object,
        excluded,
    }
}

/// The rule answering `p`, if one does: same metric, same object-form tag
/// filter (or none on both), the same aggregators, a start on the rule's
/// grid, and no `or`, value or field filter, or fill.
pub(crate) fn rule_for<'a>(
    rules: &'a [PresamplingRule],
    p: &Parsed,
) -> Option<&'a PresamplingRule> {
    if p.shape.excluded || p.query.fills.iter().any(Option::is_some) {
        return None;
    }
    let (start, _) = p.query.range();
    rules.iter().find(|r| {
        let Some(def) = r.definition.as_object() else {
            return false;
        };
        let tags = rule_tags(def).ok().flatten();
        r.metric.as_deref().is_none_or(|m| m == p.query.metric)
            && tags == p.shape.tags
            && rule_aggregators(def).is_ok_and(|a| a == p.query.aggregators)
            && r.width > 0
            && start.wrapping_sub(r.anchor).rem_euclid(r.width) == 0
    })
}

/// `disablePresampling` as a query parameter: `true` in any case.
pub(crate) fn disabled_by_param(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Puts the configuration's rules into their databases (replacing stored
/// rules of the same id); returns `(database, id)` of each rule applied.
/// A rule naming a database that does not exist is skipped, logged.
pub fn apply_configured(
    engine: &sundial_storage::Engine,
    configured: &[super::ConfiguredRule],
) -> Result<BTreeSet<(String, String)>, String> {
    let mut applied = BTreeSet::new();
    let mut by_db: BTreeMap<&str, Vec<PresamplingRule>> = BTreeMap::new();
    for c in configured {
        by_db.entry(c.database()).or_default().push(c.rule()?);
    }
    for (name, rules) in by_db {
        let Some(db) = engine.database(name) else {
            tracing::warn!(
                database = name,
                "presampling rules name a database that does not exist: skipped"
            );
            continue;
        };
        let mut stored = db.presampling_rules();
        let before = stored.clone();
        for rule in rules {
            applied.insert((name.to_owned(), rule.id.clone()));
            match stored.iter_mut().find(|r| r.id == rule.id) {
                Some(r) => *r = rule,
                None => stored.push(rule),
            }
        }
        if stored != before {
            db.set_presampling_rules(stored)
                .map_err(|e| format!("database {name}: cannot save presampling rules: {e}"))?;
        }
    }
    Ok(applied)
}
