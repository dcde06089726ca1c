//! The read caches (the consolidated copy of the event log and the persisted
//! projections) never change an answer: every question, asked through them cold, warm,
//! after more commits (the copy plus the recent files), after a compaction (a rebuilt
//! copy) and with damaged cache files, gives what reading the partitions directly gives
//! (`culla_transform::open_uncached`), to 1e-9 on rates.

use culla_queries::{Params, registry, render_query};
use culla_simulate::{SimConfig, simulate};
use culla_table::{DataDir, Snapshot};
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
    compare(label, got, want, |_| false);
}

/// [`assert_same`], where the questions `may_be_empty` selects may answer no row (a
/// chat line has no calls).
fn compare(
    label: &str,
    got: &[(String, RecordBatch)],
    want: &[(String, RecordBatch)],
    may_be_empty: impl Fn(&str) -> bool,
) {
    assert_eq!(got.len(), want.len());
    for ((name, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g.num_rows(), w.num_rows(), "{label}: {name} row count");
        assert!(
            w.num_rows() > 0 || may_be_empty(name),
            "{label}: {name} answered nothing"
        );
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

/// The stem of a sealed cache file's name (`need_base-<16 hex>.parquet` → `need_base`).
fn sealed_stem(name: &str) -> String {
    let (stem, hex) = name
        .strip_suffix(".parquet")
        .and_then(|n| n.rsplit_once('-'))
        .unwrap_or_else(|| panic!("not a sealed cache file: {name}"));
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    stem.to_string()
}

/// The one sealed file of `stem` in `dir`.
fn sealed_file(dir: &Path, stem: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| sealed_stem(&p.file_name().unwrap().to_string_lossy()) == stem)
        .collect();
    assert_eq!(found.len(), 1, "{stem} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// The cache's entries: consolidated copies and base-projection directories, each
/// sorted.
fn cache_entries(data: &Path) -> (Vec<String>, Vec<PathBuf>) {
    let dir = culla_transform::eventcache::cache_dir(data);
    let mut copies = Vec::new();
    let mut base = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("events-") {
            copies.push(name);
        } else if name.starts_with("projections-") && name.contains("-base-") {
            base.push(e.path());
        } else if name.starts_with("projections-") {
            panic!("a projection directory of no layer: {name}");
        }
    }
    copies.sort();
    base.sort();
    (copies, base)
}

/// What the writer runs after a commit: the copy and every base projection.
async fn warm(data: &Path) {
    let path = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _lock = culla_transform::read_lock(&path).unwrap();
        culla_transform::warm_base(&path).unwrap();
    })
    .await
    .unwrap();
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
    let (copies, base) = cache_entries(data.path());
    assert_eq!(copies, vec![copy_name(seq2)]);
    assert_eq!(
        base.len(),
        1,
        "one source and as-of instant, one base directory"
    );
    let mut files: Vec<String> = std::fs::read_dir(&base[0])
        .unwrap()
        .flatten()
        .map(|e| sealed_stem(&e.file_name().to_string_lossy()))
        .collect();
    files.sort();
    let mut base_files: Vec<String> = culla_transform::PERSISTED_BASE
        .iter()
        .map(|n| n.to_string())
        .collect();
    base_files.sort();
    assert_eq!(
        files, base_files,
        "the base projections persisted, sealed, nothing else"
    );
    // Warm: read back from the cache.
    assert_same("warm", &cached(&p, &opts).await, &want);
    // Another period and thresholds: new option projections over the same base ones (a
    // period ending mid-year refolds the profiles of families profiled again later).
    let p_half = Params {
        year: None,
        from: chrono::NaiveDate::from_ymd_opt(2024, 3, 1),
        to: chrono::NaiveDate::from_ymd_opt(2024, 6, 30),
        risk_threshold: 2,
        callback_target_hours: 24.0,
        ..p.clone()
    };
    let opts_half = p_half.projection_options().unwrap();
    assert_same(
        "another period",
        &cached(&p_half, &opts_half).await,
        &direct(&p_half, &opts_half).await,
    );
    culla_transform::cache::wait_for_writes();
    assert_eq!(
        cache_entries(data.path()).1,
        base,
        "the base projections are shared"
    );
    // The log's only source, named: every event, so the same base projections.
    let p_src = Params {
        source: Some("milano-020202".into()),
        risk_threshold: 2,
        ..p.clone()
    };
    let opts_src = p_src.projection_options().unwrap();
    assert_same(
        "the only source",
        &cached(&p_src, &opts_src).await,
        &direct(&p_src, &opts_src).await,
    );
    culla_transform::cache::wait_for_writes();
    assert_eq!(cache_entries(data.path()).1, base);

    // A damaged persisted projection is recomputed, not trusted.
    std::fs::write(sealed_file(&base[0], "contact_base"), b"not parquet").unwrap();
    assert_same("damaged projection", &cached(&p, &opts).await, &want);
    // Damage a footer does not show: bytes flipped in the middle of one file, another
    // cut to half its length; both are recomputed and written whole again.
    culla_transform::cache::wait_for_writes();
    let flipped = sealed_file(&base[0], "profile_base");
    let cut = sealed_file(&base[0], "referral_base");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&flipped, &bytes).unwrap();
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    assert!(!culla_transform::base_is_complete(&base[0]));
    assert_same(
        "flipped and cut projections",
        &cached(&p, &opts).await,
        &want,
    );
    culla_transform::cache::wait_for_writes();
    assert!(
        culla_transform::base_is_complete(&base[0]),
        "rewritten whole"
    );

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
    let first = sealed_file(&copy, "000");
    std::fs::write(&first, b"PAR1 truncated").unwrap();
    for p in &projections {
        std::fs::remove_dir_all(p).unwrap();
    }
    assert_same("damaged copy", &cached(&p, &opts).await, &want3);
    let first = sealed_file(&copy, "000");
    assert!(std::fs::metadata(&first).unwrap().len() > 1_000);
    let types = std::fs::read_dir(&copy)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count();
    assert!(types >= 10, "one file per event type: {types}");
    // Bytes flipped inside a copy's data pages, its footer intact: rebuilt too.
    culla_transform::cache::wait_for_writes();
    let mut bytes = std::fs::read(&first).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&first, &bytes).unwrap();
    assert_same("flipped copy", &cached(&p, &opts).await, &want3);
    assert_ne!(
        std::fs::read(sealed_file(&copy, "000")).unwrap(),
        bytes,
        "the copy was rebuilt"
    );
}

/// With two sources, `warm_base` folds the base projections of both together and of
/// each alone; every question of either source (any period, thresholds) then reads
/// them, folds nothing more, and answers what reading the partitions answers. A family
/// that called both lines is one family of each source's base, with only that source's
/// profiles (its territory differs between the two), and one family overall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_has_its_own_base_made_by_the_writer() {
    let data = tempfile::tempdir().unwrap();
    let valid = |source, seed, contacts| -> Vec<String> {
        simulate(&SimConfig {
            year: 2024,
            seed,
            contacts: Some(contacts),
            source: culla_simulate::SourceLine::parse(source).unwrap(),
            ..SimConfig::default()
        })
        .into_iter()
        .filter(|l| l.valid)
        .map(|l| String::from_utf8_lossy(&l.bytes).to_string())
        .collect()
    };
    let milano = valid("milano-020202", 31, 800);
    let melzo = valid("melzo-1000giorni", 32, 300);
    // One Melzo family also on Milan's line: give a Milan family's events its key.
    let profiled = |lines: &[String]| -> String {
        lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["type"] == "family.profiled")
            .and_then(|v| v["family"].as_str().map(str::to_string))
            .unwrap()
    };
    let (shared, renamed) = (profiled(&melzo), profiled(&milano));
    let milano: Vec<String> = milano
        .iter()
        .map(|l| l.replace(&renamed, &shared))
        .collect();
    for (k, lines) in [milano, melzo].iter().enumerate() {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        culla_queries::fixture::write_ndjson_part(&text, data.path(), &format!("part-{k}"))
            .unwrap();
    }
    warm(data.path()).await;
    let (_, base) = cache_entries(data.path());
    assert_eq!(base.len(), 3, "every source, and each alone: {base:?}");
    let p = Params {
        data: data.path().to_path_buf(),
        year: Some(2024),
        ..Params::default()
    };
    for source in [None, Some("milano-020202"), Some("melzo-1000giorni")] {
        for (label, p) in [
            (
                "year",
                Params {
                    source: source.map(str::to_string),
                    ..p.clone()
                },
            ),
            (
                "spring, other thresholds",
                Params {
                    source: source.map(str::to_string),
                    year: None,
                    from: chrono::NaiveDate::from_ymd_opt(2024, 3, 1),
                    to: chrono::NaiveDate::from_ymd_opt(2024, 5, 31),
                    risk_threshold: 2,
                    callback_target_hours: 24.0,
                    ..p.clone()
                },
            ),
            (
                // After the latest event (31 December 2024): the same events, so the
                // warmed base serves it; callbacks still overdue by then are judged so.
                "as of two months after the latest event",
                Params {
                    source: source.map(str::to_string),
                    as_of: chrono::DateTime::parse_from_rfc3339("2025-03-01T00:00:00Z")
                        .ok()
                        .map(|t| t.to_utc()),
                    ..p.clone()
                },
            ),
        ] {
            let opts = p.projection_options().unwrap();
            let label = format!("{source:?}, {label}");
            let want = direct(&p, &opts).await;
            // Melzo's line is chats only: no calls, so no service levels.
            let chats_only = source == Some("melzo-1000giorni");
            compare(&label, &cached(&p, &opts).await, &want, |q| {
                chats_only && q == "service_levels_by_month"
            });
        }
    }
    culla_transform::cache::wait_for_writes();
    assert_eq!(
        cache_entries(data.path()).1,
        base,
        "no base folded by a question"
    );
    // The later as-of instant is not lost on the way: with a 60-day callback target, a
    // referral never reached and created in the last 60 days of the year is not overdue
    // at the latest event, and is five months later.
    let unmet = |p: Params| async move {
        let opts = p.projection_options().unwrap();
        let got = cached(&p, &opts).await;
        let (_, b) = got.iter().find(|(n, _)| n == "needs_by_category").unwrap();
        let col = b.column_by_name("unmet").unwrap();
        (0..b.num_rows())
            .map(|r| {
                array_value_to_string(col, r)
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum::<i64>()
    };
    let slow = Params {
        callback_target_hours: 24.0 * 60.0,
        ..p.clone()
    };
    let later = Params {
        as_of: chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
            .ok()
            .map(|t| t.to_utc()),
        ..slow.clone()
    };
    let (at_latest, months_on) = (unmet(slow).await, unmet(later).await);
    assert!(
        months_on > at_latest,
        "unmet needs as of the latest event {at_latest}, five months on {months_on}"
    );
    // The shared family: one family of every base, its own profiles in each.
    let profiles = |source: Option<&'static str>| {
        let p = Params {
            source: source.map(str::to_string),
            ..p.clone()
        };
        let shared = shared.clone();
        async move {
            let opts = p.projection_options().unwrap();
            let _lock = culla_transform::read_lock(&p.data).unwrap();
            let (ctx, _) = culla_transform::open_scoped(&p.data, &opts).await.unwrap();
            let b = culla_transform::sql_one_batch(
                &ctx,
                &format!("SELECT profiles FROM profile_base WHERE family = '{shared}'"),
            )
            .await
            .unwrap();
            assert_eq!(b.num_rows(), 1, "{source:?}");
            array_value_to_string(b.column(0), 0)
                .unwrap()
                .parse::<i64>()
                .unwrap()
        }
    };
    let (all, mi, me) = (
        profiles(None).await,
        profiles(Some("milano-020202")).await,
        profiles(Some("melzo-1000giorni")).await,
    );
    assert!(mi > 0 && me > 0, "profiled on both lines: {mi}, {me}");
    assert_eq!(all, mi + me);
}

/// `profiles` as of a period end (the base fold for families whose latest profile is on
/// or before it, a new fold for those profiled again after it) equals a fold of every
/// profile event up to the period end, rendered from the same fold template over a
/// plainly filtered input; and the territory (and stage) that contacts and needs carry
/// is that fold's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_at_a_period_end_are_a_fold_of_the_profiles_up_to_it() {
    let data = tempfile::tempdir().unwrap();
    let lines = simulate(&SimConfig {
        year: 2024,
        seed: 20241130,
        contacts: Some(2_000),
        ..SimConfig::default()
    });
    let text: String = lines
        .iter()
        .filter(|l| l.valid)
        .map(|l| format!("{}\n", String::from_utf8_lossy(&l.bytes)))
        .collect();
    culla_queries::fixture::write_ndjson_part(&text, data.path(), "part-0").unwrap();
    let template = |name: &str| {
        culla_transform::PROJECTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    for to in ["2024-03-31", "2024-06-30", "2024-10-15"] {
        let opts = ProjectionOptions {
            to: Some(to.parse().unwrap()),
            ..ProjectionOptions::default()
        };
        let _lock = culla_transform::read_lock(data.path()).unwrap();
        let (ctx, scope) = culla_transform::open_scoped(data.path(), &opts)
            .await
            .unwrap();
        assert!(scope.latest_date.unwrap() > scope.to);
        let vars = [("to", to.to_string())];
        let naive_events = culla_transform::render(
            &culla_transform::render(
                template("profile_events"),
                &[("profile_filter", "AND event_date <= '{{to}}'".to_string())],
            ),
            &vars,
        );
        ctx.register_table(
            "naive_events",
            ctx.sql(&naive_events).await.unwrap().into_view(),
        )
        .unwrap();
        let naive = culla_transform::render(
            template("profile_base"),
            &[("input", "naive_events".to_string())],
        );
        ctx.register_table("naive", ctx.sql(&naive).await.unwrap().into_view())
            .unwrap();
        let rows = |sql: String| {
            let ctx = ctx.clone();
            async move {
                let b = culla_transform::sql_one_batch(&ctx, &sql).await.unwrap();
                (0..b.num_rows())
                    .map(|r| {
                        (0..b.num_columns())
                            .map(|c| array_value_to_string(b.column(c), r).unwrap())
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect::<Vec<_>>()
            }
        };
        let got = rows("SELECT * FROM profiles ORDER BY family".into()).await;
        let want = rows("SELECT * FROM naive ORDER BY family".into()).await;
        assert!(want.len() > 200, "{to}: {} profiles", want.len());
        assert_eq!(got, want, "{to}");
        // Contacts and needs carry the family's territory (and a need its stage) as of
        // the period end: the plain fold's, joined by family.
        for (view, key, cols) in [
            ("contacts", "contact_id", "comune, nil, municipio"),
            ("needs", "need_id", "stage, comune, nil, municipio"),
        ] {
            let got = rows(format!("SELECT {key}, {cols} FROM {view} ORDER BY {key}")).await;
            let qualified = cols
                .split(", ")
                .map(|c| format!("n.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let want = rows(format!(
                "SELECT v.{key}, {qualified} FROM {view} v LEFT JOIN naive n \
                 ON n.family = v.family ORDER BY v.{key}"
            ))
            .await;
            assert!(want.len() > 100, "{to}: {} {view}", want.len());
            assert_eq!(got, want, "{to}: {view}");
        }
        // The case the test is for: families profiled before and after the period end.
        let refolded = rows(format!(
            "SELECT family FROM profile_base WHERE last_profile_date > '{to}' \
             AND family IN (SELECT family FROM naive)"
        ))
        .await;
        assert!(!refolded.is_empty(), "{to}: no family profiled across it");
        let changed = rows(format!(
            "SELECT n.family FROM naive n JOIN profile_base b ON b.family = n.family \
             WHERE b.last_profile_date > '{to}' AND ((n.nil IS DISTINCT FROM b.nil) \
             OR n.profiles <> b.profiles)"
        ))
        .await;
        assert!(
            !changed.is_empty(),
            "{to}: no profile differs from the latest"
        );
    }
}

/// The base projections read from their files give their strings as string views (the
/// faster reading), and every answer still has plain strings (`Utf8`), in its schema and
/// in its columns: for the whole log and for periods whose territory and stage come
/// from a fold of the profiles up to their end (there a `coalesce` over a view is
/// declared a plain string by the plan and is a view), with and without `--public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_have_plain_strings_when_the_base_is_read_as_views() {
    use datafusion::arrow::datatypes::DataType;
    let data = tempfile::tempdir().unwrap();
    let text: String = simulate(&SimConfig {
        year: 2024,
        seed: 20261130,
        contacts: Some(900),
        ..SimConfig::default()
    })
    .iter()
    .filter(|l| l.valid)
    .map(|l| format!("{}\n", String::from_utf8_lossy(&l.bytes)))
    .collect();
    culla_queries::fixture::write_ndjson_part(&text, data.path(), "part-0").unwrap();
    warm(data.path()).await;
    let has_view = |t: &DataType| t.to_string().contains("View");
    {
        let _lock = culla_transform::read_lock(data.path()).unwrap();
        let ctx = culla_transform::open(data.path(), &ProjectionOptions::default())
            .await
            .unwrap();
        let plan = ctx.sql("SELECT category, stage FROM needs LIMIT 1").await;
        let b = plan.unwrap().collect().await.unwrap();
        assert_eq!(
            b[0].column(0).data_type(),
            &DataType::Utf8View,
            "base read as views"
        );
        let all = culla_transform::sql_one_batch(&ctx, "SELECT * FROM needs")
            .await
            .unwrap();
        assert!(all.num_rows() > 500);
        for c in all.columns() {
            assert!(!has_view(c.data_type()), "culla sql answers plain strings");
        }
    }
    let names: Vec<&str> = registry().iter().map(|q| q.name).collect();
    for (to, public) in [
        (None, false),
        (Some("2024-06-30"), false),
        (Some("2024-06-30"), true),
    ] {
        let p = Params {
            data: data.path().to_path_buf(),
            // Public tables answer a calendar year.
            to: to.filter(|_| !public).map(|t| t.parse().unwrap()),
            year: public.then_some(2024),
            public,
            ..Params::default()
        };
        let answers = culla_queries::run_many(&names, &p).await.unwrap();
        for (name, b) in names.iter().zip(&answers) {
            assert!(b.num_rows() > 0, "{name} {to:?}");
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                assert!(
                    !has_view(f.data_type()) && !has_view(c.data_type()),
                    "{name} {to:?} public={public}: {} is {} / {}",
                    f.name(),
                    f.data_type(),
                    c.data_type()
                );
            }
        }
    }
}
