use super::*;

const ZONE: Zone = Zone {
    may_drop_before: 1_000,
    prune_before: 700,
};

fn columns() -> Vec<Column> {
    vec![Column {
        metric: "m".into(),
        field: "value".into(),
        tags: vec![("s".into(), "0".into())],
        read: ReadApi::OpenTsdb,
    }]
}

fn seen(points: &[(i64, u64)]) -> Observed {
    let mut o = Observed::new();
    o.insert(0, points.iter().copied().collect());
    o
}

fn p(ts: i64, value: u64) -> Point {
    Point { col: 0, ts, value }
}

#[test]
fn acknowledged_points_must_hold_their_last_value() {
    let mut m = Points::default();
    m.write(&[p(2_000, 1), p(3_000, 2)], Outcome::Acked);
    m.write(&[p(2_000, 3)], Outcome::Acked);
    let t = m.check(&mut seen(&[(2_000, 3), (3_000, 2)]), ZONE, &columns());
    assert_eq!((t.acked_points, t.lost, t.stray), (2, 0, 0));
    // The overwritten value back is a loss, not a stray point.
    let t = m.check(&mut seen(&[(2_000, 1)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (2, 0), "{:?}", t.notes);
}

#[test]
fn unacknowledged_effects_may_or_may_not_be_there_then_stay() {
    let mut m = Points::default();
    m.write(&[p(2_000, 1)], Outcome::Acked);
    m.write(&[p(2_000, 2), p(3_000, 3)], Outcome::Unknown);
    let t = m.check(&mut seen(&[(2_000, 2)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (0, 0), "{:?}", t.notes);
    // Resolved: 2 is now what must be there, and 3 must not come back.
    let t = m.check(&mut seen(&[(2_000, 2), (3_000, 3)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (0, 1), "{:?}", t.notes);
    // After a report the model goes on from what was stored (3 at 3000).
    let t = m.check(&mut seen(&[(2_000, 9)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (2, 1), "{:?}", t.notes);
}

#[test]
fn deletes_stay_deleted_and_retention_may_drop_old_points() {
    let mut m = Points::default();
    m.write(&[p(600, 1), p(2_000, 2), p(2_500, 3)], Outcome::Acked);
    m.delete(&[0], 1_900, 2_100, Outcome::Acked);
    let t = m.check(&mut seen(&[(2_500, 3)]), ZONE, &columns());
    assert_eq!((t.acked_points, t.deleted_points), (1, 1));
    assert_eq!((t.lost, t.stray), (0, 0), "{:?}", t.notes);
    let t = m.check(&mut seen(&[(2_000, 2), (2_500, 3)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (0, 1), "{:?}", t.notes);
    assert!(t.notes[0].contains("back"), "{:?}", t.notes);
    // An unknown delete may have happened.
    m.delete(&[0], 2_500, 2_500, Outcome::Unknown);
    let t = m.check(&mut seen(&[(2_000, 2)]), ZONE, &columns());
    assert_eq!((t.lost, t.stray), (0, 0), "{:?}", t.notes);
    // 600 was pruned with the first check: it is unknown now.
    let mut o = seen(&[(600, 1)]);
    let t = m.check(&mut o, ZONE, &columns());
    assert_eq!((t.lost, t.stray), (1, 0), "2000 is gone: {:?}", t.notes);
    assert_eq!(leftovers(&o, &columns()).stray, 1);
}

#[test]
fn values_name_their_write() {
    let v = value_of(3, 2, 77);
    assert!(v < 1 << 52);
    assert_eq!(describe(v), format!("{v} (round 3 writer 2 seq 77)"));
}
