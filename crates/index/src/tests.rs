use super::*;
use proptest::prelude::*;

/// Host `h5` stands for "no host tag", so predicates meet series without
/// the key.
fn key(host: &str, dc: &str) -> SeriesKey {
    let mut tags = vec![("dc".into(), dc.into())];
    if host != "h5" {
        tags.push(("host".into(), host.into()));
    }
    SeriesKey::new("cpu", tags)
}

fn ids(b: &RoaringBitmap) -> Vec<u32> {
    b.iter().collect()
}

fn index(keys: &[SeriesKey]) -> Postings {
    let mut p = Postings::default();
    for (i, k) in keys.iter().enumerate() {
        p.add(i as u32, k);
    }
    p
}

#[test]
fn predicates_select_series() -> Result<()> {
    let keys = [
        key("web01", "lga"),
        key("web02", "lga"),
        key("db01", "sjc"),
        key("Web03", "sjc"),
    ];
    let p = index(&keys);
    let sel = |m: Vec<TagMatch>| p.select("cpu", &m).map(|b| ids(&b));
    let k = |s: &str| s.to_owned();
    assert_eq!(
        sel(vec![TagMatch::Eq {
            key: k("dc"),
            value: k("lga")
        }])?,
        vec![0, 1]
    );
    assert_eq!(
        sel(vec![TagMatch::In {
            key: k("host"),
            values: vec![k("web01"), k("db01")]
        }])?,
        vec![0, 2]
    );
    assert_eq!(
        sel(vec![TagMatch::NotIn {
            key: k("host"),
            values: vec![k("web01")]
        }])?,
        vec![1, 2, 3]
    );
    assert_eq!(
        sel(vec![TagMatch::Wildcard {
            key: k("host"),
            pattern: k("web*"),
            case_insensitive: false
        }])?,
        vec![0, 1]
    );
    assert_eq!(
        sel(vec![TagMatch::Wildcard {
            key: k("host"),
            pattern: k("web*"),
            case_insensitive: true
        }])?,
        vec![0, 1, 3]
    );
    assert_eq!(
        sel(vec![TagMatch::Like {
            key: k("host"),
            pattern: k("_eb0%"),
            escape: Some('/')
        }])?,
        vec![0, 1, 3]
    );
    assert_eq!(
        sel(vec![TagMatch::Regex {
            key: k("host"),
            pattern: k("^db")
        }])?,
        vec![2]
    );
    assert_eq!(
        sel(vec![
            TagMatch::Eq {
                key: k("dc"),
                value: k("sjc")
            },
            TagMatch::Regex {
                key: k("host"),
                pattern: k("0[13]$")
            },
        ])?,
        vec![2, 3]
    );
    assert_eq!(
        sel(vec![TagMatch::Exists { key: k("rack") }])?,
        Vec::<u32>::new()
    );
    assert!(
        p.select(
            "cpu",
            &[TagMatch::Regex {
                key: k("host"),
                pattern: k("(")
            }]
        )
        .is_err()
    );
    assert!(p.select("nope", &[])?.is_empty());
    Ok(())
}

#[test]
fn like_escape_makes_wildcards_literal() -> Result<()> {
    let p = index(&[key("a%b", "x"), key("axb", "x")]);
    let like = |pat: &str| {
        p.select(
            "cpu",
            &[TagMatch::Like {
                key: "host".into(),
                pattern: pat.into(),
                escape: Some('/'),
            }],
        )
        .map(|b| ids(&b))
    };
    assert_eq!(like("a/%b")?, vec![0]);
    assert_eq!(like("a%b")?, vec![0, 1]);
    Ok(())
}

proptest! {
    /// Bitmap selection equals filtering every series one by one.
    #[test]
    fn select_equals_brute_force(
        hosts in proptest::collection::vec(0u8..6, 1..40),
        wanted in proptest::collection::vec(0u8..6, 0..4),
        negate in any::<bool>(),
    ) {
        let keys: Vec<SeriesKey> = hosts.iter().enumerate()
            .map(|(i, h)| key(&format!("h{h}"), if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        let p = index(&keys);
        let values: Vec<String> = wanted.iter().map(|w| format!("h{w}")).collect();
        let pred = if negate {
            TagMatch::NotIn { key: "host".into(), values: values.clone() }
        } else {
            TagMatch::In { key: "host".into(), values: values.clone() }
        };
        let got = ids(&p.select("cpu", &[pred, TagMatch::Eq { key: "dc".into(), value: "a".into() }])
            .map_err(|e| TestCaseError::fail(e.to_string()))?);
        // NotIn also matches series without the key (host "h5" is left out
        // of the key below, so some series have no host at all).
        let expected: Vec<u32> = keys.iter().enumerate()
            .filter(|(_, k)| k.tag("dc") == Some("a"))
            .filter(|(_, k)| match k.tag("host") {
                Some(h) => values.iter().any(|v| v == h) != negate,
                None => negate,
            })
            .map(|(i, _)| i as u32)
            .collect();
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn removed_series_leave_no_names_behind() -> Result<()> {
    let keys = [key("a", "x"), key("b", "x"), key("c", "y")];
    let mut p = index(&keys);
    p.remove(2, &keys[2]);
    assert_eq!(ids(&p.select("cpu", &[])?), vec![0, 1]);
    let dcs: Vec<&str> = p
        .tag_values("cpu", "dc")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert_eq!(dcs, vec!["x"]);
    p.remove(0, &keys[0]);
    p.remove(1, &keys[1]);
    assert!(p.metrics().is_empty());
    assert!(p.tag_keys("cpu").is_empty());
    p.add(1, &keys[1]);
    assert_eq!(ids(&p.select("cpu", &[])?), vec![1]);
    Ok(())
}
