//! `percentile_exact(value, fraction)`: the exact percentile with linear interpolation
//! that EVENTS.md defines (numpy's default method), as a SQL aggregate.
//!
//! For the `n` non-null values sorted ascending `a[0..n]`, the position is
//! `h = fraction × (n − 1)` and the answer `a[⌊h⌋] + (h − ⌊h⌋) × (a[⌈h⌉] − a[⌊h⌋])`.
//! DataFusion's own `percentile_cont` rounds the interpolation weight down to six
//! decimals, which moves a p90 such as 38.9 s to 38.899997 s; this one does not round.
//! Null values are ignored; no value gives null. The aggregate keeps every value of its
//! group (the figures it serves are per month, thousands of values at most per group).

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use std::sync::Arc;

/// The exact percentile of `values` (any order) at `fraction` in [0, 1]; `None` when
/// `values` is empty. Reorders `values` in place: the two order statistics it needs are
/// selected in linear time, not by sorting (a month of 10M events' waits, ~30k values,
/// sorted twice per question was most of the percentiles' cost).
pub fn percentile(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let h = fraction * (values.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    // The next order statistic is the least of the values above the selected one.
    let b = if hi == lo {
        a
    } else {
        above.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    };
    Some(a + (h - lo as f64) * (b - a))
}

/// The SQL aggregate `percentile_exact(value DOUBLE, fraction DOUBLE) -> DOUBLE`.
pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(PercentileExactUdf {
        signature: Signature::exact(
            vec![DataType::Float64, DataType::Float64],
            Volatility::Immutable,
        ),
    })
}

/// `percentile_exact` for DataFusion: a row accumulator ([`PercentileExact`]) and, for
/// `GROUP BY`, a groups accumulator ([`PercentileGroups`]) that puts each value in its
/// group's list in one pass over the batch (DataFusion's adapter for a row accumulator
/// sorts and slices every batch by group first: the two percentiles of
/// `service_levels_by_month` on 10M events took ~80 ms of its ~210).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PercentileExactUdf {
    signature: Signature,
}

fn values_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        format!("{name}[values]"),
        DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
        true,
    ))
}

impl AggregateUDFImpl for PercentileExactUdf {
    fn name(&self) -> &str {
        "percentile_exact"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PercentileExact::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            values_field(args.name),
            Arc::new(Field::new(
                format!("{}[fraction]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PercentileGroups::default()))
    }
}

/// Keeps the fraction of a batch (a literal: its first non-null value) in `slot`,
/// checked; a batch without one leaves `slot` as it is.
fn set_fraction(slot: &mut Option<f64>, fractions: &ArrayRef) -> Result<()> {
    match as_float64_array(fractions)?.iter().flatten().next() {
        Some(f) if !(0.0..=1.0).contains(&f) => Err(DataFusionError::Execution(format!(
            "percentile_exact: the fraction must be between 0 and 1, not {f}"
        ))),
        Some(f) => {
            *slot = Some(f);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Every group's non-null values, and the fraction.
#[derive(Debug, Default)]
struct PercentileGroups {
    values: Vec<Vec<f64>>,
    fraction: Option<f64>,
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        set_fraction(&mut self.fraction, &values[1])?;
        self.values.resize_with(total_num_groups, Vec::new);
        let v = as_float64_array(&values[0])?;
        for (row, &g) in group_indices.iter().enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if kept && v.is_valid(row) {
                self.values[g].push(v.value(row));
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        set_fraction(&mut self.fraction, &values[1])?;
        self.values.resize_with(total_num_groups, Vec::new);
        let lists = as_list_array(&values[0])?;
        let items = as_float64_array(lists.values())?;
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_valid(row) {
                let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
                self.values[g].extend(
                    (from..to)
                        .filter(|&i| items.is_valid(i))
                        .map(|i| items.value(i)),
                );
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.values);
        let fraction = self.fraction;
        Ok(Arc::new(
            groups
                .into_iter()
                .map(|mut g| fraction.and_then(|f| percentile(&mut g, f)))
                .collect::<Float64Array>(),
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.values);
        let n = groups.len();
        let lists = ListArray::from_iter_primitive::<Float64Type, _, _>(
            groups.iter().map(|g| Some(g.iter().map(|v| Some(*v)))),
        );
        Ok(vec![
            Arc::new(lists),
            Arc::new(Float64Array::from(vec![self.fraction; n])),
        ])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let v = as_float64_array(&values[0])?;
        // Each row its own group: a list of its value, or an empty list.
        let lists = ListArray::from_iter_primitive::<Float64Type, _, _>((0..v.len()).map(|row| {
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            Some((kept && v.is_valid(row)).then(|| Some(v.value(row))))
        }));
        Ok(vec![Arc::new(lists), values[1].clone()])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.values.capacity() * std::mem::size_of::<Vec<f64>>()
            + self
                .values
                .iter()
                .map(|g| g.capacity() * std::mem::size_of::<f64>())
                .sum::<usize>()
    }
}

#[derive(Debug, Default)]
struct PercentileExact {
    values: Vec<f64>,
    fraction: Option<f64>,
}

impl Accumulator for PercentileExact {
    fn update_batch(&mut self, columns: &[ArrayRef]) -> Result<()> {
        let values = as_float64_array(&columns[0])?;
        set_fraction(&mut self.fraction, &columns[1])?;
        self.values.extend(values.iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = as_list_array(&states[0])?;
        set_fraction(&mut self.fraction, &states[1])?;
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

    /// The two order statistics selected in linear time are those of the sorted values:
    /// checked against sorting, on values with ties, at many fractions and lengths.
    #[test]
    fn selects_what_sorting_gives() {
        let mut seed = 20261130u64;
        for n in [1usize, 2, 3, 10, 101, 1000] {
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 33) % 97) as f64 / 3.0
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for k in 0..=20 {
                let f = f64::from(k) / 20.0;
                let h = f * (n - 1) as f64;
                let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
                let want = sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]);
                let got = percentile(&mut values.clone(), f).unwrap();
                assert!((got - want).abs() < 1e-12, "n={n} f={f}: {got} != {want}");
            }
        }
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

    /// Registers `rows` as table `t (g BIGINT, x DOUBLE)`.
    async fn table_t(ctx: &SessionContext, rows: &[(i64, Option<f64>)]) {
        let values = rows
            .iter()
            .map(|(g, x)| format!("({g}, {})", x.map_or("NULL".into(), |x| format!("{x:?}"))))
            .collect::<Vec<_>>()
            .join(", ");
        ctx.sql(&format!(
            "CREATE TABLE t AS SELECT column1 AS g, CAST(column2 AS DOUBLE) AS x FROM (VALUES {values})"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    }

    /// Many groups over several batches and partitions (the groups accumulator, its
    /// state and merge), nulls and a `FILTER` clause: each group's answer is the
    /// percentile of the values the test kept for it.
    #[tokio::test]
    async fn grouped_percentiles_follow_each_groups_values() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(64),
        );
        ctx.register_udaf(udaf());
        let rows: Vec<(i64, Option<f64>)> = (0..5_000i64)
            .map(|i| {
                (
                    i % 37,
                    (i % 11 != 0).then(|| ((i * 7919) % 1009) as f64 / 4.0),
                )
            })
            .collect();
        table_t(&ctx, &rows).await;
        let sql = "SELECT g, percentile_exact(x, 0.9) AS p90, \
                   percentile_exact(x, 0.5) FILTER (WHERE x >= 100) AS p50_big \
                   FROM t GROUP BY g ORDER BY g";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(b.num_rows(), 37);
        let p90 = as_float64_array(b.column(1)).unwrap();
        let p50 = as_float64_array(b.column(2)).unwrap();
        for g in 0..37 {
            let mut all: Vec<f64> = rows
                .iter()
                .filter(|r| r.0 == g)
                .filter_map(|r| r.1)
                .collect();
            let mut big: Vec<f64> = all.iter().copied().filter(|x| *x >= 100.0).collect();
            let want90 = percentile(&mut all, 0.9).unwrap();
            let want50 = percentile(&mut big, 0.5).unwrap();
            assert!((p90.value(g as usize) - want90).abs() < 1e-12, "group {g}");
            assert!((p50.value(g as usize) - want50).abs() < 1e-12, "group {g}");
        }
    }

    /// With nearly one group per row, DataFusion stops pre-aggregating and hands each
    /// row to the final phase as its own state (`convert_to_state`): the answers are
    /// still each group's percentile, nulls and the `FILTER` clause still apply.
    #[tokio::test]
    async fn rows_passed_on_as_states_give_the_same_percentiles() {
        let mut config = datafusion::prelude::SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(16);
        let exec = &mut config.options_mut().execution;
        exec.skip_partial_aggregation_probe_rows_threshold = 8;
        exec.skip_partial_aggregation_probe_ratio_threshold = 0.1;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udaf(udaf());
        // 400 rows, groups of one or two rows: g = i / 2 for i < 200, g = i after.
        let rows: Vec<(i64, Option<f64>)> = (0..400i64)
            .map(|i| {
                let g = if i < 200 { i / 2 } else { i };
                (g, (i % 7 != 0).then(|| (i * 13 % 101) as f64))
            })
            .collect();
        table_t(&ctx, &rows).await;
        let sql = "SELECT g, percentile_exact(x, 0.5) AS p50, \
                   percentile_exact(x, 0.5) FILTER (WHERE x >= 50) AS p50_big \
                   FROM t GROUP BY g ORDER BY g";
        let plan = ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap();
        let shown =
            datafusion::arrow::util::pretty::pretty_format_batches(&plan.collect().await.unwrap())
                .unwrap()
                .to_string();
        assert!(
            shown.contains("skipped_aggregation_rows")
                && !shown.contains("skipped_aggregation_rows=0"),
            "pre-aggregation was not skipped: {shown}"
        );
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let groups: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(b.num_rows(), groups.len());
        let gs = b
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        let p50 = as_float64_array(b.column(1)).unwrap();
        let big = as_float64_array(b.column(2)).unwrap();
        for r in 0..b.num_rows() {
            let g = gs.value(r);
            let mut all: Vec<f64> = rows
                .iter()
                .filter(|x| x.0 == g)
                .filter_map(|x| x.1)
                .collect();
            let mut over: Vec<f64> = all.iter().copied().filter(|x| *x >= 50.0).collect();
            let want = |v: &mut Vec<f64>| percentile(v, 0.5);
            let got = |a: &Float64Array| a.is_valid(r).then(|| a.value(r));
            assert_eq!(got(p50), want(&mut all), "group {g}");
            assert_eq!(got(big), want(&mut over), "group {g} over 50");
        }
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
