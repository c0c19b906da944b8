use super::*;
use std::sync::Arc;
use sundial_model::SeriesKey;

const LIMITS: Limits = Limits {
    max_tags: 16,
    max_metric_bytes: 255,
    max_tagk_bytes: 255,
    max_tagv_bytes: 255,
};

fn failure(v: Value) -> Option<String> {
    let text = v.to_string();
    let Ok(p) = sonic_rs::from_str::<PointDto<'_>>(&text) else {
        return Some("not an object".into());
    };
    match check_point(&p, LIMITS) {
        Checked::Failed(m) => Some(m),
        Checked::Point { later_error, .. } => later_error,
    }
}

#[test]
fn presence_flags_ignore_their_value() -> Result<(), OpenTsdbError> {
    let p = PutParams::parse(Some("summary=false&sync&sync_timeout=60000"))?;
    assert!(p.summary && p.sync && !p.details);
    assert_eq!(p.sync_timeout_ms, 60000);
    assert!(PutParams::parse(Some("sync_timeout=abc")).is_err());
    assert!(PutParams::parse(Some("sync_timeout=-1")).is_err());
    Ok(())
}

#[test]
fn rule_order_of_spec_7_4() {
    let base = || json!({"metric": "m1", "timestamp": 1500000000, "value": 1, "tags": {"h": "x"}});
    let with = |k: &str, v: Value| {
        let mut p = base();
        if let Some(o) = p.as_object_mut() {
            if v.is_null() && k != "tags" {
                o.remove(k);
            } else {
                o.insert(k.into(), v);
            }
        }
        p
    };
    assert_eq!(failure(base()), None);
    assert_eq!(
        failure(with("metric", json!(""))).as_deref(),
        Some("Metric name was empty")
    );
    assert_eq!(
        failure(with("value", Value::Null)).as_deref(),
        Some("Empty value")
    );
    assert_eq!(
        failure(with("value", json!(""))).as_deref(),
        Some("Empty value")
    );
    assert_eq!(
        failure(with("tags", json!({}))).as_deref(),
        Some("Missing tags")
    );
    assert_eq!(
        failure(with("timestamp", json!("abc"))).as_deref(),
        Some("Invalid timestamp")
    );
    assert_eq!(
        failure(with("value", json!([1]))).as_deref(),
        Some("Unable to parse value to a number")
    );
    assert_eq!(
        failure(with("tags", json!({"h": null}))).as_deref(),
        Some("Invalid tag value with key [h]: not a string")
    );
    assert_eq!(
        failure(with("tags", json!({"ho*st": "a"}))).as_deref(),
        Some("Invalid tag name with value [a] (\"ho*st\"): illegal character: *")
    );
    // Metric is checked before tags; the first failing pair by key order wins.
    assert_eq!(
        failure(json!({"metric": "a@b", "timestamp": 1500000000, "value": 1, "tags": {"z": "$", "a": "%"}}))
            .as_deref(),
        Some("Invalid metric name (\"a@b\"): illegal character: @")
    );
    assert_eq!(
        failure(json!({"metric": "ab", "timestamp": 1500000000, "value": 1, "tags": {"z": "$", "a": "%"}}))
            .as_deref(),
        Some("Invalid tag value with key [a] (\"%\"): illegal character: %")
    );
}

#[test]
fn tag_count_limit_is_inclusive() {
    let tags = |n: usize| -> Value {
        Value::Object((1..=n).map(|i| (format!("t{i:02}"), json!("v"))).collect())
    };
    let p = |n| json!({"metric": "m", "timestamp": 1500000000, "value": 1, "tags": tags(n)});
    assert_eq!(failure(p(16)), None);
    assert_eq!(
        failure(p(17)).as_deref(),
        Some("Too many tags: 17 maximum allowed: 16")
    );
}

#[test]
fn tag_values_are_coerced_to_text() -> Result<(), serde_json::Error> {
    let text = |j: &str| -> Result<Option<String>, serde_json::Error> {
        Ok(tag_text(&serde_json::from_str::<Scalar<'_>>(j)?).map(String::from))
    };
    assert_eq!(text("7")?.as_deref(), Some("7"));
    assert_eq!(text("-3")?.as_deref(), Some("-3"));
    assert_eq!(text("0.5")?.as_deref(), Some("0.5"));
    assert_eq!(text("1.0")?.as_deref(), Some("1"));
    assert_eq!(text("1e20")?.as_deref(), Some("100000000000000000000"));
    assert_eq!(text("true")?.as_deref(), Some("true"));
    assert_eq!(text("null")?, None);
    assert_eq!(text("[1]")?, None);
    Ok(())
}

#[test]
fn duplicate_members_keep_the_last_occurrence() -> Result<(), sonic_rs::Error> {
    let p: PointDto<'_> = sonic_rs::from_str(
        r#"{"metric":"a","metric":"b","tags":{"h":"x","h":"y"},"extra":[1,{"k":2}]}"#,
    )?;
    assert_eq!(p.metric, Some(Scalar::Str("b".into())));
    assert_eq!(
        p.tags.as_ref().map(|t| t.parsed().into_owned()),
        Some(TagsDto::Map(vec![("h".into(), Scalar::Str("y".into()))]))
    );
    Ok(())
}

#[test]
fn number_text_classification() {
    assert_eq!(number_text("42"), NumberText::Number(FieldValue::Long(42)));
    assert_eq!(number_text("-7"), NumberText::Number(FieldValue::Long(-7)));
    assert_eq!(
        number_text("1.5e3"),
        NumberText::Number(FieldValue::Double(1500.0))
    );
    assert_eq!(
        number_text(".5"),
        NumberText::Number(FieldValue::Double(0.5))
    );
    assert_eq!(
        number_text("5."),
        NumberText::Number(FieldValue::Double(5.0))
    );
    assert_eq!(number_text("99999999999999999999"), NumberText::Invalid);
    assert_eq!(number_text("1e999"), NumberText::Invalid);
    assert_eq!(number_text("NaN"), NumberText::Invalid);
    assert_eq!(number_text("-Infinity"), NumberText::Invalid);
    assert_eq!(number_text("abc"), NumberText::NotNumeric);
    assert_eq!(number_text("e5"), NumberText::NotNumeric);
    assert_eq!(number_text("."), NumberText::NotNumeric);
    assert_eq!(number_text("1e"), NumberText::NotNumeric);
}

#[test]
fn body_parsing_keeps_last_duplicates_and_rejects_bad_json() {
    let body = br#"[{"metric":"a","metric":"b","timestamp":"1500000000","value":"x\u00e9","tags":{"h":"x","h":"y"}}]"#;
    let parsed = dto::parse_points(body, usize::MAX);
    let Ok(points) = parsed else {
        panic!("valid body rejected: {parsed:?}");
    };
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].metric, Some(Scalar::Str("b".into())));
    assert_eq!(points[0].value, Some(Scalar::Str("x\u{e9}".into())));
    assert_eq!(
        points[0].tags.as_ref().map(|t| t.parsed().into_owned()),
        Some(TagsDto::Map(vec![("h".into(), Scalar::Str("y".into()))]))
    );
    for bad in [
        &b"{\"metric\":"[..],
        b"[1]",
        b"[{\"metric\":\"\xff\"}]",
        b"nope",
    ] {
        assert!(
            matches!(
                dto::parse_points(bad, usize::MAX),
                Err(dto::ParseError::Json(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        dto::parse_points(b"5", usize::MAX).err(),
        Some(dto::ParseError::Shape)
    );
}

/// Issue 14: a small body of many elements is refused while parsing, not
/// after building them all.
#[test]
fn element_count_is_capped_while_parsing() {
    let body = format!("[{}{{}}]", "{},".repeat(99));
    assert_eq!(
        dto::parse_points(body.as_bytes(), 100).map(|p| p.len()),
        Ok(100)
    );
    assert_eq!(
        dto::parse_points(body.as_bytes(), 99).err(),
        Some(dto::ParseError::TooMany { max: 99 })
    );
    // Echoes build only the elements asked for.
    let body = br#"[{"a":1},{"b":2},{"c":3}]"#;
    let picked = dto::echo_elements(body, &[0, 2]);
    assert_eq!(
        picked,
        vec![serde_json::json!({"a":1}), serde_json::json!({"c":3})]
    );
}

/// Checks every element of `body` on its own, without a key cache; the
/// key and the name error of each point.
fn each_alone(body: &str) -> Vec<Option<(Arc<SeriesKey>, Option<String>)>> {
    dto::parse_points(body.as_bytes(), usize::MAX)
        .unwrap_or_default()
        .iter()
        .map(|p| match check_point(p, LIMITS) {
            Checked::Point { point, later_error } => Some((point.series, later_error)),
            Checked::Failed(_) => None,
        })
        .collect()
}

/// Resolves every element of `body` through `cache` as a put does; the
/// key and the name error of each point.
fn through_cache(
    cache: &keys::KeyCache,
    body: &str,
) -> Vec<Option<(Arc<SeriesKey>, Option<String>)>> {
    let Ok(parsed) = dto::parse_points(body.as_bytes(), usize::MAX) else {
        return Vec::new();
    };
    let mut keys = keys::RequestKeys::new(cache, LIMITS);
    let cached = keys.lookup_all(&parsed);
    let out = parsed
        .iter()
        .zip(cached)
        .map(|(element, cached)| {
            let known = keys.known(element, cached);
            let checked = check_point_by(element, known, |metric, tags| {
                keys.resolve(element, metric, tags)
            });
            match checked {
                Checked::Point { point, later_error } => Some((point.series, later_error)),
                Checked::Failed(_) => None,
            }
        })
        .collect();
    keys.finish();
    out
}

#[test]
fn the_key_cache_answers_as_the_checks_do() {
    let cache = keys::KeyCache::default();
    let body = json!([
        {"metric": "cpu", "timestamp": 1500000001, "value": 1, "tags": {"host": "a", "dc": "x"}},
        {"metric": "cpu", "timestamp": 1500000002, "value": 1, "tags": {"dc": "x", "host": "a"}},
        {"metric": "cpu", "timestamp": 1500000003, "value": 1, "tags": {"host": "b c", "dc": "x"}},
        {"metric": "cpu", "timestamp": 1500000004, "value": 1, "tags": {"host": 7, "dc": "x"}},
        {"metric": "mem", "timestamp": 1500000005, "value": 1, "tags": {"host": "a", "dc": "x"}},
        {"metric": "cpu", "timestamp": 1500000006, "value": 1, "tags": {"host": "a", "dc": "y"}},
    ])
    .to_string();
    // An escaped tag value: other text, same series as the first element.
    let escaped =
        r#"{"metric":"cpu","timestamp":1500000007,"value":1,"tags":{"host":"\u0061","dc":"x"}}"#;
    let body = format!("{},{escaped}]", body.trim_end_matches(']'));
    let uncached = each_alone(&body);
    // Cold (every element checked), then warm (every cacheable one known).
    let cold = through_cache(&cache, &body);
    let warm = through_cache(&cache, &body);
    assert_eq!(cold, uncached);
    assert_eq!(warm, uncached);
    // Tag order does not change the series; the illegal name keeps its
    // error; a number as tag value is converted text.
    let keys: Vec<_> = warm.iter().flatten().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys.len(), 7);
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0], keys[6]);
    assert!(warm[2].as_ref().is_some_and(|(_, e)| e.is_some()));
    assert_eq!(keys[3].tag("host"), Some("7"));
    assert_ne!(keys[0], keys[4]);
    assert_ne!(keys[0], keys[5]);
    // Warm lookups share the cached key instead of building another.
    let again = through_cache(&cache, &body);
    let (a, b) = (&again[0], &warm[0]);
    assert!(matches!((a, b), (Some((x, _)), Some((y, _))) if Arc::ptr_eq(x, y)));
}

/// Looks `keys` up in `cache` in batches as puts do, learning the misses;
/// how many were found.
fn hits_of(cache: &keys::KeyCache, keys: &[String]) -> usize {
    let resolved = keys::Resolved {
        key: Arc::new(SeriesKey::new("m", Vec::new())),
        error: None,
    };
    let mut hits = 0;
    for batch in keys.chunks(5000) {
        let found = cache.lookup_all(batch.iter().map(|t| Some(("m", t.as_str()))));
        hits += found.iter().flatten().count();
        let learned = batch
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .filter_map(|(t, _)| cache.pending("m", t, &resolved))
            .collect();
        cache.insert_all(learned);
    }
    hits
}

#[test]
fn a_key_cache_with_more_series_than_entries_keeps_a_share_that_hits() {
    let cache = keys::KeyCache::default();
    let tags =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!(r#"{{"host":"h{i}"}}"#)).collect() };
    let many = tags(8 * keys::MAX_ENTRIES);
    // A cache admitting every key fills and starts over without a hit.
    let rounds: Vec<usize> = (0..6).map(|_| hits_of(&cache, &many)).collect();
    let last = rounds.last().copied().unwrap_or(0);
    assert!(last >= keys::MAX_ENTRIES / 4, "hits per round: {rounds:?}");
    // Fewer series again: the share widens until every key hits.
    let few = tags(1000);
    let mut rounds = 0;
    while hits_of(&cache, &few) < few.len() {
        rounds += 1;
        assert!(rounds < 10_000, "the cache never widened for 1000 series");
    }
}

#[test]
fn one_off_keys_beside_a_live_set_that_fits_do_not_narrow_the_cache() {
    let cache = keys::KeyCache::default();
    let live: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"host":"h{i}"}}"#))
        .collect();
    let mut hits = Vec::new();
    for round in 0..12 {
        // Each round: the live set, then twice as many keys never seen
        // before (pods, request ids). The table fills every few rounds and
        // starts over, so the live set hits in most rounds, not all.
        hits.push(hits_of(&cache, &live));
        let once: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"pod":"r{round}-{i}"}}"#))
            .collect();
        hits_of(&cache, &once);
    }
    let late: usize = hits[6..].iter().sum();
    assert!(late >= 3 * live.len(), "live-set hits per round: {hits:?}");
}

#[test]
fn elements_repeating_the_tags_text_before_them_get_what_the_checks_give() {
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let tagged = |metric: &str, tags: Value| json!({"metric": metric, "timestamp": 1500000000, "value": 1, "tags": tags});
    let (good, bad) = (
        json!({"host": "a", "dc": "x"}),
        json!({"host": "a b", "dc": "x"}),
    );
    let body = Value::Array(vec![
        tagged("cpu", good.clone()),
        tagged("mem", good.clone()),
        tagged("bad metric", good.clone()),
        tagged("disk", bad.clone()),
        tagged("bad metric", bad.clone()),
        tagged("net", bad),
        tagged("cpu", Value::Object(many.clone())),
        tagged("bad metric", Value::Object(many)),
        tagged("cpu", json!({})),
        tagged("cpu", json!({})),
        tagged("swap", good),
    ])
    .to_string();
    let uncached = each_alone(&body);
    // A cold cache: every repeat comes from the element before it.
    let repeated = through_cache(&keys::KeyCache::default(), &body);
    assert_eq!(repeated, uncached);
    let error = |i: usize| repeated[i].as_ref().and_then(|(_, e)| e.clone());
    let key = |i: usize| repeated[i].as_ref().map(|(k, _)| k.clone());
    assert_eq!(error(0), None);
    assert_eq!(error(1), None);
    assert!(error(2).is_some_and(|e| e.starts_with("Invalid metric name")));
    assert!(error(3).is_some_and(|e| e.starts_with("Invalid tag value")));
    // The tag count and the metric come before the pairs.
    assert!(error(4).is_some_and(|e| e.starts_with("Invalid metric name")));
    assert!(error(5).is_some_and(|e| e.starts_with("Invalid tag value")));
    assert!(error(6).is_some_and(|e| e.starts_with("Too many tags")));
    assert!(error(7).is_some_and(|e| e.starts_with("Too many tags")));
    assert_eq!((key(8), key(9)), (None, None));
    let (cpu, mem, swap) = (key(0), key(1), key(10));
    assert_eq!(mem.as_ref().map(|k| k.metric.as_str()), Some("mem"));
    assert_eq!(cpu.map(|k| k.tags.clone()), mem.map(|k| k.tags.clone()));
    assert_eq!(swap.as_ref().and_then(|k| k.tag("host")), Some("a"));
}
