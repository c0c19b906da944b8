//! The slice a plain one-field read keeps is what testing each row keeps.

use super::*;
use proptest::prelude::*;

fn branch(start: Timestamp, end: Timestamp) -> Branch {
    Branch {
        start,
        end,
        tags: Vec::new(),
        values: Vec::new(),
    }
}

/// The tests' one-field query over `branches`.
fn query(branches: Vec<Branch>) -> SeriesQuery {
    SeriesQuery {
        branches,
        ..super::tests::query(0, 0)
    }
}

proptest! {
    /// Two branches (the query's range is their union); the series is
    /// selected by one of them, as a tag filter would leave it.
    #[test]
    fn a_plain_read_keeps_what_the_row_by_row_test_keeps(
        times in proptest::collection::btree_set(-20i64..80, 0..40),
        ranges in proptest::collection::vec((-30i64..90, 0i64..60), 2),
        by in 0usize..2,
    ) {
        let q = query(ranges.iter().map(|(s, len)| branch(*s, s + len)).collect());
        let col: Vec<(Timestamp, FieldValue)> = times
            .iter()
            .map(|t| (*t, if t % 3 == 0 { FieldValue::String(format!("v{t}")) } else { FieldValue::Long(t * 7) }))
            .collect();
        let key = SeriesKey::new("cpu", Vec::new());
        let branches = [by];
        let plain = plain_branch(&q, std::slice::from_ref(&col), &branches);
        prop_assert!(plain.is_some());
        if let Some(b) = plain {
            let fast = select_plain(&q, b, vec![col.clone()]);
            let joined = select_joined(&q, &key, vec![col], &branches);
            prop_assert_eq!(fast, joined);
        }
    }
}

/// Value conditions, several fields or several branches go row by row.
#[test]
fn reads_with_conditions_or_several_fields_are_not_plain() {
    let col = vec![(1, FieldValue::Long(1))];
    let mut q = query(vec![branch(0, 10)]);
    assert!(plain_branch(&q, std::slice::from_ref(&col), &[0]).is_some());
    assert!(plain_branch(&q, &[col.clone(), col.clone()], &[0]).is_none());
    let two = query(vec![branch(0, 10), branch(5, 20)]);
    assert!(plain_branch(&two, std::slice::from_ref(&col), &[0, 1]).is_none());
    q.branches[0]
        .values
        .push(sundial_model::series_query::ValuePredicate {
            field: None,
            op: sundial_model::series_query::CmpOp::Gt,
            operand: sundial_model::series_query::Operand::Long(0),
        });
    assert!(plain_branch(&q, std::slice::from_ref(&col), &[0]).is_none());
}
