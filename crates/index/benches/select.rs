//! Series selection over one million series of one metric: an exact host,
//! a datacenter (100k series), a regular expression over all host values.
//! Run: cargo bench -p sundial-index

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use sundial_index::Postings;
use sundial_model::{SeriesKey, TagMatch};

const SERIES: u32 = 1_000_000;

fn postings() -> Postings {
    let mut p = Postings::default();
    for i in 0..SERIES {
        let key = SeriesKey::new(
            "cpu.usage_user",
            vec![
                ("host".into(), format!("host_{i}")),
                ("dc".into(), format!("dc{}", i % 10)),
                ("rack".into(), (i % 1000).to_string()),
            ],
        );
        p.add(i, &key);
    }
    p
}

fn select(c: &mut Criterion) {
    let p = postings();
    let mut g = c.benchmark_group("select_1m_series");
    g.sample_size(20);
    let exact = [TagMatch::Eq {
        key: "host".into(),
        value: "host_123456".into(),
    }];
    g.bench_function("eq_host", |b| {
        b.iter(|| p.select("cpu.usage_user", black_box(&exact)))
    });
    let dc = [TagMatch::Eq {
        key: "dc".into(),
        value: "dc3".into(),
    }];
    g.bench_function("eq_dc_100k", |b| {
        b.iter(|| p.select("cpu.usage_user", black_box(&dc)))
    });
    let both = [
        TagMatch::Eq {
            key: "dc".into(),
            value: "dc3".into(),
        },
        TagMatch::In {
            key: "rack".into(),
            values: vec!["3".into(), "13".into()],
        },
    ];
    g.bench_function("dc_and_rack", |b| {
        b.iter(|| p.select("cpu.usage_user", black_box(&both)))
    });
    let re = [TagMatch::Regex {
        key: "host".into(),
        pattern: "^host_12345".into(),
    }];
    g.bench_function("regex_host_scan_1m_values", |b| {
        b.iter(|| p.select("cpu.usage_user", black_box(&re)))
    });
    g.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
