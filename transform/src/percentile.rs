//! `percentile_exact(value, fraction)`: the exact percentile with linear interpolation
//! that EVENTS.md defines (numpy's default method), as a SQL aggregate.
//!
//! For the `n` non-null values sorted ascending `a[0..n]`, the position is
//! `h = fraction × (n − 1)` and the answer `a[⌊h⌋] + (h − ⌊h⌋) × (a[⌈h⌉] − a[⌊h⌋])`.
//! DataFusion's own `percentile_cont` rounds the interpolation weight down to six
//! decimals, which moves a p90 such as 38.9 s to 38.899997 s; this one does not round.
//! Null values are ignored; no value gives null. The aggregate keeps every value of its
//! group (the figures it serves are per month, thousands of values at most per group).

use datafusion::arrow::array::{ArrayRef, Float64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};
use datafusion::scalar::ScalarValue;
use std::sync::Arc;

/// The exact percentile of `values` (any order) at `fraction` in [0, 1]; `None` when
/// `values` is empty. Sorts `values` in place.
pub fn percentile(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let h = fraction * (values.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (a, b) = (values[lo], values[hi]);
    Some(a + (h - lo as f64) * (b - a))
}

/// The SQL aggregate `percentile_exact(value DOUBLE, fraction DOUBLE) -> DOUBLE`.
pub fn udaf() -> AggregateUDF {
    create_udaf(
        "percentile_exact",
        vec![DataType::Float64, DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(PercentileExact::default()))),
        Arc::new(vec![
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            DataType::Float64,
        ]),
    )
}

#[derive(Debug, Default)]
struct PercentileExact {
    values: Vec<f64>,
    fraction: Option<f64>,
}

impl PercentileExact {
    fn set_fraction(&mut self, fractions: &Float64Array) -> Result<()> {
        if let Some(f) = fractions.iter().flatten().next() {
            if !(0.0..=1.0).contains(&f) {
                return Err(DataFusionError::Execution(format!(
                    "percentile_exact: the fraction must be between 0 and 1, not {f}"
                )));
            }
            self.fraction = Some(f);
        }
        Ok(())
    }
}

impl Accumulator for PercentileExact {
    fn update_batch(&mut self, columns: &[ArrayRef]) -> Result<()> {
        let values = as_float64_array(&columns[0])?;
        self.set_fraction(as_float64_array(&columns[1])?)?;
        self.values.extend(values.iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = as_list_array(&states[0])?;
        self.set_fraction(as_float64_array(&states[1])?)?;
        for list in lists.iter().flatten() {
            self.values
                .extend(as_float64_array(&list)?.iter().flatten());
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.values.iter().map(|v| Some(*v)),
        )]);
        Ok(vec![
            ScalarValue::List(Arc::new(list)),
            ScalarValue::Float64(self.fraction),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = match self.fraction {
            Some(f) => percentile(&mut self.values, f),
            None => None,
        };
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;
    use datafusion::prelude::SessionContext;

    #[test]
    fn interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], 90) = 1 + 0.9 * 3 = 3.7 (h = 2.7: 3 + 0.7 * 1).
        assert!((percentile(&mut [4.0, 1.0, 3.0, 2.0], 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&mut [5.0], 0.9), Some(5.0));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [1.0, 3.0], 0.5), Some(2.0));
        assert_eq!(percentile(&mut [1.0, 3.0], 0.0), Some(1.0));
        assert_eq!(percentile(&mut [1.0, 3.0], 1.0), Some(3.0));
    }

    #[test]
    fn does_not_round_the_weight() {
        // 88 values 0..=87 with a[78] = 38 and a[79] = 41: h = 0.9 × 87 = 78.3 (in f64
        // 78.29999999999999716), so the answer is 38 + 0.3 × 3 = 38.9; percentile_cont
        // in DataFusion 55 gives 38.899997.
        let mut v: Vec<f64> = (0..88)
            .map(|i| match i {
                0..78 => f64::from(i) * 0.4,
                78 => 38.0,
                79 => 41.0,
                _ => 50.0 + f64::from(i),
            })
            .rev()
            .collect();
        let got = percentile(&mut v, 0.9).unwrap();
        assert!((got - 38.9).abs() < 1e-12, "{got}");
    }

    #[tokio::test]
    async fn the_sql_aggregate_ignores_nulls_and_merges_partitions() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(4),
        );
        ctx.register_udaf(udaf());
        let sql = "WITH t(g, x) AS (VALUES ('a', 1.0), ('a', 2.0), ('a', NULL), ('a', 4.0), \
                   ('a', 3.0), ('b', 10.0), ('c', NULL)) \
                   SELECT g, percentile_exact(x, 0.9) AS p FROM t GROUP BY g ORDER BY g";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let b = &batches[0];
        let p = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!((p.value(0) - 3.7).abs() < 1e-12);
        assert_eq!(p.value(1), 10.0);
        assert!(p.is_null(2));
        let bad = ctx
            .sql("SELECT percentile_exact(x, 1.5) FROM (VALUES (1.0)) t(x)")
            .await
            .unwrap()
            .collect()
            .await;
        assert!(bad.is_err());
    }
}
