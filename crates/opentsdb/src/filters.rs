//! Tag value filters (spec 9.5): the v2.2 filter objects, the conversion of
//! v1 `tags` and brace lists, and `/api/config/filters`.

use super::error::{OpenTsdbError, json_response};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use sundial_model::TagMatch;

/// Filter types, in `/api/config/filters` order, with their example and
/// description texts.
const TYPES: [(&str, &str, &str); 8] = [
    (
        "literal_or",
        "host=literal_or(web01|web02)  {\"type\":\"literal_or\",\"tagk\":\"host\",\"filter\":\"web01|web02\",\"groupBy\":false}",
        "Matches series whose tag value equals one of the pipe-separated literals. Case sensitive.",
    ),
    (
        "iliteral_or",
        "host=iliteral_or(web01|web02)  {\"type\":\"iliteral_or\",\"tagk\":\"host\",\"filter\":\"web01|web02\",\"groupBy\":false}",
        "Like literal_or but case insensitive.",
    ),
    (
        "not_literal_or",
        "host=not_literal_or(web01|web02)  {\"type\":\"not_literal_or\",\"tagk\":\"host\",\"filter\":\"web01|web02\",\"groupBy\":false}",
        "Matches series that have the tag key but none of the pipe-separated values. Case sensitive.",
    ),
    (
        "not_iliteral_or",
        "host=not_iliteral_or(web01|web02)  {\"type\":\"not_iliteral_or\",\"tagk\":\"host\",\"filter\":\"web01|web02\",\"groupBy\":false}",
        "Like not_literal_or but case insensitive.",
    ),
    (
        "wildcard",
        "host=wildcard(web*)  {\"type\":\"wildcard\",\"tagk\":\"host\",\"filter\":\"web*\",\"groupBy\":false}",
        "Glob match with * as the wildcard; at least one * required; * alone matches any value. Case sensitive.",
    ),
    (
        "iwildcard",
        "host=iwildcard(web*)  {\"type\":\"iwildcard\",\"tagk\":\"host\",\"filter\":\"web*\",\"groupBy\":false}",
        "Like wildcard but case insensitive.",
    ),
    (
        "regexp",
        "host=regexp(web[0-9]+)  {\"type\":\"regexp\",\"tagk\":\"host\",\"filter\":\"web[0-9]+\",\"groupBy\":false}",
        "Regular expression searched anywhere in the tag value.",
    ),
    (
        "not_key",
        "host=not_key()  {\"type\":\"not_key\",\"tagk\":\"host\",\"filter\":\"\",\"groupBy\":false}",
        "Matches series that do not have the tag key. The filter must be empty.",
    ),
];

/// `GET|POST /api/config/filters`.
pub(crate) async fn config() -> Response {
    let body: serde_json::Map<String, Value> = TYPES
        .iter()
        .map(|(t, ex, desc)| {
            (
                (*t).to_owned(),
                json!({"examples": ex, "description": desc}),
            )
        })
        .collect();
    json_response(StatusCode::OK, &Value::Object(body))
}

/// The `a|b|c` values of a literal filter.
fn literals(expr: &str) -> Result<Vec<String>, OpenTsdbError> {
    if expr.is_empty() {
        return Err(OpenTsdbError::bad_request("Filter cannot be null or empty"));
    }
    if expr == "|" {
        return Err(OpenTsdbError::bad_request(
            "Filter must contain more than just a pipe",
        ));
    }
    Ok(expr.split('|').map(str::to_owned).collect())
}

/// `(?i)^(?:a|b)$`: the case-insensitive literal lists as one pattern.
fn any_of(values: &[String]) -> String {
    let alts: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    format!("(?i)^(?:{})$", alts.join("|"))
}

/// One filter as predicates (all must hold).
pub(crate) fn build(kind: &str, key: &str, expr: &str) -> Result<Vec<TagMatch>, OpenTsdbError> {
    let bad = |m: &str| Err(OpenTsdbError::bad_request(m));
    if key.is_empty() {
        return bad("The tagk cannot be null or empty");
    }
    let key = key.to_owned();
    let literals = || literals(expr);
    Ok(match kind {
        "" => return bad("The filter type cannot be null or empty"),
        "literal_or" => vec![TagMatch::In {
            key,
            values: literals()?,
        }],
        "not_literal_or" => vec![
            TagMatch::Exists { key: key.clone() },
            TagMatch::NotIn {
                key,
                values: literals()?,
            },
        ],
        "iliteral_or" => vec![TagMatch::Regex {
            key,
            pattern: any_of(&literals()?),
        }],
        "not_iliteral_or" => vec![TagMatch::NotRegex {
            key,
            pattern: any_of(&literals()?),
        }],
        "wildcard" | "iwildcard" => {
            if !expr.contains('*') {
                return bad("Filter must contain an asterisk");
            }
            if expr.chars().all(|c| c == '*') {
                vec![TagMatch::Exists { key }]
            } else {
                vec![TagMatch::Wildcard {
                    key,
                    pattern: expr.to_owned(),
                    case_insensitive: kind == "iwildcard",
                }]
            }
        }
        "regexp" => {
            if expr.is_empty() || regex::Regex::new(expr).is_err() {
                return Err(OpenTsdbError::bad_request(format!(
                    "Invalid regular expression: {expr}"
                )));
            }
            vec![TagMatch::Regex {
                key,
                pattern: expr.to_owned(),
            }]
        }
        "not_key" => {
            if !expr.is_empty() {
                return bad("The filter must be empty for the not_key filter");
            }
            vec![TagMatch::Absent { key }]
        }
        other => {
            return Err(OpenTsdbError::bad_request(format!(
                "Could not find a tag value filter of the type: {other}"
            )));
        }
    })
}

/// A filter object: its predicates, its key, and whether it groups.
pub(crate) fn from_object(f: &Value) -> Result<(Vec<TagMatch>, String, bool), OpenTsdbError> {
    let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default();
    let group = ["groupBy", "group_by"]
        .iter()
        .filter_map(|k| f.get(*k))
        .any(super::query::lenient_bool);
    let key = text("tagk");
    Ok((
        build(text("type"), key, text("filter"))?,
        key.to_owned(),
        group,
    ))
}

/// A v1 `tags` entry or brace-list entry (spec 9.5.2).
pub(crate) fn from_tag_expr(key: &str, expr: &str) -> Result<Vec<TagMatch>, OpenTsdbError> {
    if expr == "*" {
        return build("wildcard", key, "*");
    }
    if let Some(open) = expr.find('(') {
        let inner = expr
            .get(open + 1..)
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| {
                OpenTsdbError::bad_request(format!("Filter must end with a ')': {expr}"))
            })?;
        return build(expr.get(..open).unwrap_or_default(), key, inner);
    }
    if expr.contains('*') {
        return build("iwildcard", key, expr);
    }
    build("literal_or", key, expr)
}

/// How a v1 tag entry is shown by `showQuery`: the filter it became.
pub(crate) fn describe_tag_expr(key: &str, expr: &str) -> Value {
    let (kind, filter) = if expr == "*" {
        ("wildcard", expr)
    } else if let Some(open) = expr.find('(') {
        (
            expr.get(..open).unwrap_or_default(),
            expr.get(open + 1..expr.len().saturating_sub(1))
                .unwrap_or_default(),
        )
    } else if expr.contains('*') {
        ("iwildcard", expr)
    } else {
        ("literal_or", expr)
    };
    json!({"tagk": key, "filter": filter, "group_by": true, "type": kind})
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
