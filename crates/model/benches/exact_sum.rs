//! The exact sum of a day of one series at 10 s (8640 2-decimal values),
//! added an hour (360 values) at a time as a fold does, against the
//! rounding running sum it replaced.
//! Run: cargo bench -p sundial-model

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use sundial_model::ExactSum;

fn day() -> Vec<f64> {
    let mut v = 50.0f64;
    let mut seed = 42u64;
    (0..8640)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let step = ((seed >> 33) % 401) as f64 / 100.0 - 2.0;
            v = ((v + step).clamp(0.0, 100.0) * 100.0).round() / 100.0;
            v
        })
        .collect()
}

fn sums(c: &mut Criterion) {
    let xs = day();
    let mut g = c.benchmark_group("hourly_sums_of_a_day");
    g.throughput(Throughput::Elements(xs.len() as u64));
    g.bench_function("exact", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(24);
            for hour in black_box(&xs).chunks(360) {
                let mut s = ExactSum::default();
                let extremes = s.add_slice(hour);
                out.push((s.value(), extremes));
            }
            out
        })
    });
    g.bench_function("exact_sum_only", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(24);
            for hour in black_box(&xs).chunks(360) {
                let mut s = ExactSum::default();
                let nans = s.add_slice_skipping_nan(hour);
                out.push((s.value(), nans));
            }
            out
        })
    });
    g.bench_function("rounding_sum_only", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(24);
            for hour in black_box(&xs).chunks(360) {
                let mut sum = 0.0;
                for x in hour {
                    sum += x;
                }
                out.push(sum);
            }
            out
        })
    });
    g.bench_function("rounding", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(24);
            for hour in black_box(&xs).chunks(360) {
                let (mut sum, mut lo, mut hi) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
                for x in hour {
                    sum += x;
                    lo = lo.min(*x);
                    hi = hi.max(*x);
                }
                out.push((sum, (lo, hi)));
            }
            out
        })
    });
    g.finish();
}

criterion_group!(benches, sums);
criterion_main!(benches);
