use super::*;

#[test]
fn line_values_keep_their_kind() {
    let line: SeriesLine = serde_json::from_str(
        r#"{"metric":"m","timestamps":[1,2,3,4,5],"values":[7,7.0,"7",true,18446744073709551615]}"#,
    )
    .unwrap();
    assert_eq!(line.field, DEFAULT_FIELD);
    let kinds: Vec<FieldValue> = line.values.into_iter().map(|v| v.0).collect();
    assert_eq!(
        kinds,
        vec![
            FieldValue::Long(7),
            FieldValue::Double(7.0),
            FieldValue::String("7".into()),
            FieldValue::Bool(true),
            FieldValue::Double(u64::MAX as f64),
        ]
    );
    let out: Vec<String> = kinds_out(&kinds);
    assert_eq!(out, ["7", "7.0", "\"7\"", "true", "1.8446744073709552e+19"]);
}

fn kinds_out(values: &[FieldValue]) -> Vec<String> {
    values
        .iter()
        .map(|v| serde_json::to_string(&OutValue(v)).unwrap())
        .collect()
}

#[test]
fn lines_refuse_what_they_cannot_hold() {
    for bad in [
        r#"{"metric":"m","timestamps":[1],"values":[[1]]}"#,
        r#"{"metric":"m","timestamps":[1],"values":[null]}"#,
        r#"{"metric":"m","tags":{"k":1},"timestamps":[1],"values":[1]}"#,
        r#"{"metric":"m","timestamps":[1],"values":[1],"extra":1}"#,
    ] {
        assert!(serde_json::from_str::<SeriesLine>(bad).is_err(), "{bad}");
    }
}
