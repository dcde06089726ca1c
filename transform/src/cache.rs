//! Projections computed at most once per session.
//!
//! A plain DataFusion view is inlined into every query that names it, so a question
//! reading `families` (which reads `profiles`, `contact_history` and `needs`, which read
//! `scoped_events`) would scan the Parquet files once per reference, and the report's
//! eleven questions would fold the same log dozens of times. A [`MaterializedView`]
//! instead runs its plan the first time any query scans it, keeps the rows in memory
//! (split into as many partitions as the session runs in parallel) and serves every
//! later scan from there. Nothing is computed for a projection no query reads.
//!
//! The rows are a snapshot of the data directory taken under the caller's read lock:
//! a session sees one consistent state; open a new session to see newer commits.

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A view whose rows are computed on first use and then kept for the session.
#[derive(Debug)]
pub struct MaterializedView {
    name: String,
    df: DataFrame,
    schema: SchemaRef,
    rows: OnceCell<Arc<MemTable>>,
}

impl MaterializedView {
    /// Wraps `df` (not run yet) as the table `name`.
    ///
    /// Every column is declared nullable: the logical plan's nullability is not always
    /// what execution produces, and the projections' readers never rely on it.
    pub fn new(name: &str, df: DataFrame) -> Self {
        let fields: Vec<Field> = df
            .schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect();
        MaterializedView {
            name: name.to_string(),
            df,
            schema: Arc::new(Schema::new(fields)),
            rows: OnceCell::new(),
        }
    }

    /// The rows, computing them on the first call.
    async fn rows(&self, partitions: usize) -> Result<Arc<MemTable>> {
        self.rows
            .get_or_try_init(|| async {
                let started = std::time::Instant::now();
                let batches = self.df.clone().collect().await?;
                let parts = partitions.max(1);
                let mut split: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
                let mut rows = 0usize;
                for (i, b) in batches.into_iter().enumerate() {
                    rows += b.num_rows();
                    if b.num_rows() == 0 {
                        continue;
                    }
                    let b = RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())?;
                    split[i % parts].push(b);
                }
                tracing::debug!(
                    view = %self.name,
                    rows,
                    ms = started.elapsed().as_millis() as u64,
                    "projection materialised"
                );
                Ok(Arc::new(MemTable::try_new(self.schema.clone(), split)?))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl TableProvider for MaterializedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions = state.config().target_partitions();
        let table = self.rows(partitions).await?;
        table.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn computes_once_and_answers_like_the_view() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1), (2), (3), (4)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let df = ctx.sql("SELECT column1 * 10 AS x FROM t").await.unwrap();
        let view = Arc::new(MaterializedView::new("tens", df));
        ctx.register_table("tens", view.clone()).unwrap();
        assert!(view.rows.get().is_none(), "nothing computed before a scan");

        let sum = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                b[0].column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            }
        };
        assert_eq!(sum("SELECT sum(x) FROM tens").await, 100);
        let first = Arc::as_ptr(view.rows.get().expect("computed by the scan"));

        // The source changes; the session keeps its snapshot (computed once).
        ctx.sql("INSERT INTO t VALUES (5)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            sum("SELECT count(*) FROM tens a JOIN tens b ON a.x = b.x").await,
            4
        );
        assert_eq!(Arc::as_ptr(view.rows.get().unwrap()), first);
    }
}
