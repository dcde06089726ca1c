//! The read caches (the consolidated copy of the event log and the persisted
//! projections) never change an answer: every question, asked through them cold, warm,
//! after more commits (the copy plus the recent files), after a compaction (a rebuilt
//! copy) and with damaged cache files, gives what reading the partitions directly gives
//! (`culla_transform::open_uncached`), to 1e-9 on rates.

use culla_queries::{Params, registry, render_query};
use culla_schemas::layout::{DataDir, Snapshot};
use culla_simulate::{SimConfig, simulate};
use culla_transform::{ProjectionOptions, Scope};
use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use std::path::{Path, PathBuf};

/// Every question's rows on `ctx`, one string per cell (floats kept as numbers).
async fn answers(ctx: &SessionContext, scope: &Scope, p: &Params) -> Vec<(String, RecordBatch)> {
    let mut out = Vec::new();
    for q in registry() {
        let sql = render_query(q, p, scope);
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap();
        out.push((q.name.to_string(), batch));
    }
    out
}

fn assert_same(label: &str, got: &[(String, RecordBatch)], want: &[(String, RecordBatch)]) {
    assert_eq!(got.len(), want.len());
    for ((name, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g.num_rows(), w.num_rows(), "{label}: {name} row count");
        assert!(w.num_rows() > 0, "{label}: {name} answered nothing");
        assert_eq!(g.num_columns(), w.num_columns(), "{label}: {name} columns");
        for c in 0..w.num_columns() {
            let (gc, wc) = (g.column(c), w.column(c));
            for r in 0..w.num_rows() {
                let col = w.schema().field(c).name().clone();
                if let (Some(gf), Some(wf)) = (
                    gc.as_any().downcast_ref::<Float64Array>(),
                    wc.as_any().downcast_ref::<Float64Array>(),
                ) {
                    assert_eq!(
                        gf.is_null(r),
                        wf.is_null(r),
                        "{label}: {name}.{col} row {r}"
                    );
                    if wf.is_valid(r) {
                        let (a, b) = (gf.value(r), wf.value(r));
                        assert!(
                            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                            "{label}: {name}.{col} row {r}: {a} vs {b}"
                        );
                    }
                } else {
                    assert_eq!(
                        array_value_to_string(gc, r).unwrap(),
                        array_value_to_string(wc, r).unwrap(),
                        "{label}: {name}.{col} row {r}"
                    );
                }
            }
        }
    }
}

async fn cached(p: &Params, opts: &ProjectionOptions) -> Vec<(String, RecordBatch)> {
    let _lock = culla_transform::read_lock(&p.data).unwrap();
    let (ctx, scope) = culla_transform::open_scoped(&p.data, opts).await.unwrap();
    answers(&ctx, &scope, p).await
}

async fn direct(p: &Params, opts: &ProjectionOptions) -> Vec<(String, RecordBatch)> {
    let (ctx, scope) = culla_transform::open_uncached(&p.data, opts).await.unwrap();
    answers(&ctx, &scope, p).await
}

fn cache_entries(data: &Path) -> (Vec<String>, Vec<PathBuf>) {
    let dir = culla_transform::eventcache::cache_dir(data);
    let mut copies = Vec::new();
    let mut projections = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("events-") {
            copies.push(name);
        } else if name.starts_with("projections-") {
            projections.push(e.path());
        }
    }
    copies.sort();
    projections.sort();
    (copies, projections)
}

fn copy_name(seq: u64) -> String {
    format!("events-{seq:020}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_never_change_an_answer() {
    let data = tempfile::tempdir().unwrap();
    let lines = simulate(&SimConfig {
        year: 2024,
        seed: 20241129,
        contacts: Some(1_500),
        ..SimConfig::default()
    });
    let valid: Vec<String> = lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| String::from_utf8_lossy(&l.bytes).to_string())
        .collect();
    // Three commits whose files share days (every third line each), so the compaction
    // below has several files per partition to merge.
    let part = |k: usize| -> String {
        valid
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == k)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    };
    let p = Params {
        data: data.path().to_path_buf(),
        year: Some(2024),
        ..Params::default()
    };
    let opts = p.projection_options().unwrap();
    let dir = DataDir::new(data.path());
    for k in 0..2 {
        culla_queries::fixture::write_ndjson_part(&part(k), data.path(), &format!("part-{k}"))
            .unwrap();
    }
    let seq2 = Snapshot::load(&dir).unwrap().seq;

    // Cold: the copy is made, the projections persisted.
    let want = direct(&p, &opts).await;
    assert_same("cold", &cached(&p, &opts).await, &want);
    // The projections are written in the background, and are complete once waited for.
    culla_transform::cache::wait_for_writes();
    let (copies, projections) = cache_entries(data.path());
    assert_eq!(copies, vec![copy_name(seq2)]);
    assert_eq!(
        projections.len(),
        1,
        "one option set, one projection directory"
    );
    for view in ["contacts", "needs", "referrals", "families"] {
        assert!(
            projections[0].join(format!("{view}.parquet")).is_file(),
            "{view} persisted"
        );
    }
    // Warm: read back from the cache.
    assert_same("warm", &cached(&p, &opts).await, &want);
    // Other options: another projection directory, right answers too.
    let p_src = Params {
        source: Some("milano-020202".into()),
        risk_threshold: 2,
        ..p.clone()
    };
    let opts_src = p_src.projection_options().unwrap();
    assert_same(
        "other options",
        &cached(&p_src, &opts_src).await,
        &direct(&p_src, &opts_src).await,
    );
    assert_eq!(cache_entries(data.path()).1.len(), 2);

    // A damaged persisted projection is recomputed, not trusted.
    std::fs::write(projections[0].join("contacts.parquet"), b"not parquet").unwrap();
    assert_same("damaged projection", &cached(&p, &opts).await, &want);

    // Many added files: the copy is rebuilt for the new sequence.
    let (tail, rest): (Vec<String>, Vec<String>) =
        part(2).lines().map(|l| format!("{l}\n")).partition(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["at"].as_str().is_some_and(|at| at >= "2024-12-26")
        });
    assert!(!tail.is_empty() && !rest.is_empty());
    culla_queries::fixture::write_ndjson_part(&rest.concat(), data.path(), "part-2").unwrap();
    let seq3 = Snapshot::load(&dir).unwrap().seq;
    assert_same(
        "after a large commit",
        &cached(&p, &opts).await,
        &direct(&p, &opts).await,
    );
    assert!(cache_entries(data.path()).0.contains(&copy_name(seq3)));

    // A small commit only adds files: the copy plus the new files, no new copy.
    culla_queries::fixture::write_ndjson_part(&tail.concat(), data.path(), "part-3").unwrap();
    let want3 = direct(&p, &opts).await;
    let total: usize = want3
        .iter()
        .find(|(n, _)| n == "contacts_by_weekday_hour")
        .map(|(_, b)| {
            let c = b
                .column_by_name("contacts")
                .unwrap()
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            c.iter().flatten().sum::<i64>() as usize
        })
        .unwrap();
    assert!(total > 1_400, "all contacts of the year are there: {total}");
    assert_same("after a small commit", &cached(&p, &opts).await, &want3);
    assert_eq!(cache_entries(data.path()).0, vec![copy_name(seq3)]);

    // A compaction removes files: the copy is rebuilt for the new sequence.
    let summary = culla_ingest::compact::compact(&dir, &Default::default()).unwrap();
    assert!(summary.files_in > summary.files_out, "{summary:?}");
    let seq4 = Snapshot::load(&dir).unwrap().seq;
    assert_same("after a compaction", &cached(&p, &opts).await, &want3);
    assert_eq!(
        direct(&p, &opts).await.len(),
        want3.len(),
        "direct reading still works"
    );
    // The read lock, taken when no one else reads, deletes what is stale.
    drop(culla_transform::read_lock(data.path()).unwrap());
    let (copies, projections) = cache_entries(data.path());
    assert_eq!(copies, vec![copy_name(seq4)]);
    assert!(
        projections
            .iter()
            .all(|p| p.to_string_lossy().contains(&format!("{seq4:020}"))),
        "{projections:?}"
    );

    // A damaged copy is rebuilt.
    let copy = culla_transform::eventcache::cache_dir(data.path()).join(copy_name(seq4));
    let first = copy.join("000.parquet");
    std::fs::write(&first, b"PAR1 truncated").unwrap();
    for p in &projections {
        std::fs::remove_dir_all(p).unwrap();
    }
    assert_same("damaged copy", &cached(&p, &opts).await, &want3);
    assert!(std::fs::metadata(&first).unwrap().len() > 1_000);
    let types = std::fs::read_dir(&copy).unwrap().count();
    assert!(types >= 10, "one file per event type: {types}");
}
