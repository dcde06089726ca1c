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
//!
//! A view can also be **persisted** (the base projections are): its rows are then
//! written to a Parquet file in `_culla/cache/projections-<seq>-base-<key>/` the first
//! time they are computed, and every later session of the same table version and the
//! same projection SQL (source and as-of instant: rendered into it) reads that file
//! instead, through [`persisted_table`]: DataFusion scans only the columns and row
//! groups a question needs, on every core. The file is an exact copy of rows computed
//! from exactly that state of the log. A file that cannot be written or read is ignored:
//! the rows are then computed. The file is written on a thread of its own, at the lowest
//! priority, while the question goes on (writing a projection of 10 million events takes
//! 0.5–1.6 s, which no answer should wait for); that thread holds a shared read lock of
//! its own until the file is complete, and [`wait_for_writes`] waits for every such
//! write (the CLI calls it before exiting).

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, TableType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::collect;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Writes of persisted projections still running.
static WRITES: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits until every projection file being written in the background is complete (or
/// has failed, which is only logged). Call it before the process exits.
pub fn wait_for_writes() {
    loop {
        let pending = std::mem::take(&mut *WRITES.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        for h in pending {
            let _ = h.join();
        }
    }
}

/// Directory name prefix of persisted projections.
const PROJECTIONS_PREFIX: &str = "projections-";

/// The directory the base projections of table version `seq` live in when built
/// from the SQL texts `sql` (their rendering carries the source and as-of instant),
/// under `cache_dir`: `projections-<seq>-base-<hash>`.
pub fn projection_dir<'a>(
    cache_dir: &Path,
    seq: u64,
    sql: impl IntoIterator<Item = &'a str>,
) -> PathBuf {
    // FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION").as_bytes());
    for s in sql {
        eat(s.as_bytes());
        eat(&[0]);
    }
    cache_dir.join(format!("{PROJECTIONS_PREFIX}{seq:020}-base-{h:016x}"))
}

/// The table version of a persisted-projections directory name.
pub fn projection_seq(name: &str) -> Option<u64> {
    name.strip_prefix(PROJECTIONS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The persisted rows of a view with schema `view_schema`, as a table DataFusion scans
/// directly (only the columns and row groups a question needs, on every core), if
/// `file` (found whole by [`crate::sealed::find_whole`]) has exactly the view's columns
/// and types in its footer; `None` otherwise (the caller computes the rows instead).
///
/// With `views`, string columns are read as string views (`Utf8View`, see `nullable`):
/// only when every base projection is read from its file, so no fold mixes them with
/// the plain strings of the events.
pub fn persisted_table(
    file: &Path,
    view_schema: &Schema,
    views: bool,
) -> Option<Arc<dyn TableProvider>> {
    let f = std::fs::File::open(file).ok()?;
    let footer = ParquetRecordBatchReaderBuilder::try_new(f).ok()?;
    let stored = footer.schema();
    let same = stored.fields().len() == view_schema.fields().len()
        && stored
            .fields()
            .iter()
            .zip(view_schema.fields())
            .all(|(a, b)| {
                // The view reads the other base projections' strings as views, if so.
                let plain = crate::plain_type(b.data_type());
                a.name() == b.name() && a.data_type() == plain.as_ref().unwrap_or(b.data_type())
            });
    if !same {
        tracing::debug!(file = %file.display(), "persisted projection ignored: other columns");
        return None;
    }
    let schema = nullable(view_schema, views);
    let url = ListingTableUrl::parse(file.to_string_lossy()).ok()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Some(Arc::new(ListingTable::try_new(config).ok()?))
}

/// `schema` with every column nullable (what persisted files and views declare) and,
/// with `views`, its string columns read as string views (`Utf8View`): the Parquet
/// reader then decodes a dictionary page into 16-byte views of the dictionary's values
/// (short strings inline) instead of copying every value's bytes, and comparisons,
/// hashing and grouping on those columns work on the views — the light questions over
/// the base projections on 10M events ~25 % faster. Answers are cast back to plain
/// strings ([`crate::collect_plain`]), the type of every string culla stores.
fn nullable(schema: &Schema, views: bool) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Utf8 if views => DataType::Utf8View,
                    t => t.clone(),
                };
                Field::new(f.name(), t, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// A view whose rows are computed on first use and then kept for the session.
#[derive(Debug)]
pub struct MaterializedView {
    name: String,
    /// The view's plan only, not the `DataFrame`: a `DataFrame` holds its session, whose
    /// catalog holds this view, and that cycle would keep every computed row alive after
    /// the session is dropped (a leak per opening in `culla serve` and benches).
    plan: LogicalPlan,
    schema: SchemaRef,
    rows: OnceCell<Arc<MemTable>>,
    persist: Option<Persist>,
}

/// Where a view's rows are persisted, and the data directory whose read lock covers it.
#[derive(Debug)]
struct Persist {
    /// The base-projection directory the file goes to, named after the view.
    dir: PathBuf,
    data: PathBuf,
}

impl MaterializedView {
    /// Wraps `df` (not run yet) as the table `name`.
    ///
    /// Every column is declared nullable: the logical plan's nullability is not always
    /// what execution produces, and the projections' readers never rely on it.
    pub fn new(name: &str, df: DataFrame) -> Self {
        MaterializedView {
            name: name.to_string(),
            plan: df.logical_plan().clone(),
            schema: nullable(df.schema().as_arrow(), false),
            rows: OnceCell::new(),
            persist: None,
        }
    }

    /// Like [`MaterializedView::new`], with the rows written to `file` once computed, in
    /// the background under a shared read lock of the data directory `data` (readers
    /// read that file through [`persisted_table`], not through this view).
    pub fn persisted(name: &str, df: DataFrame, dir: PathBuf, data: &Path) -> Self {
        MaterializedView {
            persist: Some(Persist {
                dir,
                data: data.to_path_buf(),
            }),
            ..MaterializedView::new(name, df)
        }
    }

    /// Writes the rows to the persist file (complete or not at all) on a thread of its
    /// own, which takes a shared read lock first (the caller holds one, so it is granted
    /// at once) and keeps it until the file is in place.
    fn store(&self, batches: &[RecordBatch]) {
        let Some(persist) = self.persist.as_ref() else {
            return;
        };
        let lock = match culla_schemas::layout::read_lock_shared(
            &culla_schemas::layout::DataDir::new(&persist.data),
        ) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(view = %self.name, error = %e, "projection not persisted: no read lock");
                return;
            }
        };
        let (name, schema, path) = (self.name.clone(), self.schema.clone(), persist.dir.clone());
        let batches = batches.to_vec();
        let write = move || {
            // Below the questions: on a machine of few cores the write must not take
            // the CPU from the answer it follows.
            lower_priority();
            let started = std::time::Instant::now();
            match write_file(&name, &schema, &path, &batches) {
                Ok(()) => tracing::debug!(
                    view = %name,
                    ms = started.elapsed().as_millis() as u64,
                    "projection persisted"
                ),
                Err(e) => {
                    tracing::debug!(view = %name, file = %path.display(), error = %e, "projection not persisted")
                }
            }
            drop(lock);
        };
        match std::thread::Builder::new()
            .name(format!("persist-{}", self.name))
            .spawn(write)
        {
            Ok(h) => {
                let mut writes = WRITES.lock().unwrap_or_else(|e| e.into_inner());
                // Writes already done are let go (a long-running `culla serve` would
                // otherwise keep every finished thread until it exits).
                writes.retain(|w| !w.is_finished());
                writes.push(h);
            }
            Err(e) => {
                tracing::debug!(view = %self.name, error = %e, "projection not persisted: no thread")
            }
        }
    }

    /// The rows, computing them on the first call.
    async fn rows(&self, state: &dyn Session) -> Result<Arc<MemTable>> {
        let partitions = state.config().target_partitions();
        self.rows
            .get_or_try_init(|| async {
                let started = std::time::Instant::now();
                let physical = state.create_physical_plan(&self.plan).await?;
                // The view's schema (every column nullable) on the rows once, for both
                // the file and the session.
                let batches = collect(physical, state.task_ctx())
                    .await?
                    .into_iter()
                    .map(|b| RecordBatch::try_new(self.schema.clone(), b.columns().to_vec()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.store(&batches);
                let parts = partitions.max(1);
                let mut split: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
                let mut rows = 0usize;
                for (i, b) in batches.into_iter().enumerate() {
                    rows += b.num_rows();
                    if b.num_rows() == 0 {
                        continue;
                    }
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

/// Lowers the calling thread's scheduling priority to the lowest (nice 19; Linux gives
/// each thread its own, and threads it starts afterwards inherit it). Best effort:
/// elsewhere, or if refused, nothing changes.
#[allow(unsafe_code)] // one FFI call, no pointer: std has no safe way to set a nice value
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours; who = 0
    // names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Rows per row group of a persisted projection: several groups per file, so a scan
/// of it runs on every core.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writes `batches` (with the view's schema `schema`) to the view's file in `dir`
/// through a temporary file, sealed ([`crate::sealed`]) under a name carrying its hash
/// once complete. Nothing is written when a whole file of the view is there already.
fn write_file(
    name: &str,
    schema: &SchemaRef,
    dir: &Path,
    batches: &[RecordBatch],
) -> std::result::Result<(), String> {
    if crate::sealed::find_whole(dir, name).is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Unique per write, not only per process: two openings of one process can persist
    // the same view at once, and a shared temporary name let the later writer's bytes
    // land in the file the earlier one had renamed into place (a corrupt footer).
    static WRITE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = WRITE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{}-{seq}-{name}", std::process::id()));
    let written = (|| -> std::result::Result<(), String> {
        let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let props = culla_schemas::layout::parquet_writer_properties()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let out = crate::sealed::SealWriter::new(std::io::BufWriter::new(file));
        let mut w =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        let (buf, hash) = w.into_inner().map_err(|e| e.to_string())?.finish();
        let file = buf.into_inner().map_err(|e| e.to_string())?;
        crate::sealed::seal(file, &tmp, dir, name, hash)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
        let table = self.rows(state).await?;
        table.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::prelude::SessionContext;

    /// A session with table `t` holding `values` (one column, `column1`).
    async fn session_with(values: &str) -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql(&format!("CREATE TABLE t AS VALUES {values}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ctx
    }

    #[tokio::test]
    async fn computes_once_and_answers_like_the_view() {
        let ctx = session_with("(1), (2), (3), (4)").await;
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

    #[tokio::test]
    async fn dropping_the_session_frees_the_rows() {
        let ctx = session_with("(1), (2), (3)").await;
        let df = ctx.sql("SELECT column1 + 1 AS y FROM t").await.unwrap();
        let view = Arc::new(MaterializedView::new("plus", df));
        ctx.register_table("plus", view.clone()).unwrap();
        ctx.sql("SELECT sum(y) FROM plus")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let rows = Arc::downgrade(view.rows.get().expect("computed"));
        let weak = Arc::downgrade(&view);
        drop(view);
        drop(ctx);
        assert!(weak.upgrade().is_none(), "the view outlives its session");
        assert!(
            rows.upgrade().is_none(),
            "the computed rows outlive the session"
        );
    }
}
