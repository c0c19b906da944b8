//! Encode and decode a day of one series at 10 s (8640 points): regular
//! timestamps and 2-decimal random-walk values, as agents send.
//! Run: cargo bench -p sundial-codec

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use sundial_codec::{
    Num, decode_numbers, decode_timestamps, encode_numbers_into, encode_timestamps_into,
};

fn day() -> (Vec<i64>, Vec<Num>) {
    let ts: Vec<i64> = (0..8640).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let mut v = 50.0f64;
    let mut seed = 42u64;
    let nums = (0..8640)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let step = ((seed >> 33) % 401) as f64 / 100.0 - 2.0;
            v = ((v + step).clamp(0.0, 100.0) * 100.0).round() / 100.0;
            Num::Double(v)
        })
        .collect();
    (ts, nums)
}

fn columns(c: &mut Criterion) {
    let (ts, nums) = day();
    let mut g = c.benchmark_group("day_of_points");
    g.throughput(Throughput::Elements(ts.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            let _ = encode_timestamps_into(black_box(&ts), &mut out);
            let _ = encode_numbers_into(black_box(&nums), &mut out);
            out
        })
    });
    let mut bytes = Vec::new();
    let _ = encode_timestamps_into(&ts, &mut bytes);
    let _ = encode_numbers_into(&nums, &mut bytes);
    eprintln!(
        "encoded {} points in {} bytes ({:.3} B/point)",
        ts.len(),
        bytes.len(),
        bytes.len() as f64 / ts.len() as f64
    );
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut input = black_box(bytes.as_slice());
            let t = decode_timestamps(&mut input);
            let n = decode_numbers(&mut input);
            (t, n)
        })
    });
    g.finish();
}

criterion_group!(benches, columns);
criterion_main!(benches);
