//! An attacker against a whole release: Milan and Melzo in 2024 and Milan in 2023 in one
//! data directory, made the user's way (`culla simulate`, `produce`, `ingest`). Every
//! protected question is collected with `--public` for all lines and for each line, both
//! years; then every linked pair is subtracted — all lines minus the other lines, a
//! Municipio minus its visible NIL cells, totals reached through several tables minus
//! their visible parts, a row's needs minus its visible outcomes — and the same cell is
//! compared across outputs (the library, `culla query`). No hidden count may come out
//! exactly, no `c` cell may be narrowed to 1–4, and at least half of the NIL cells of
//! the all-lines tables must stay visible. `culla disclosure` must find nothing to
//! recover.
//!
//! The attacker only uses relations that hold on the data (checked here on the
//! unprotected answers): a relation that does not hold would mislead it, not help it.

use culla_queries::release::protected;
use culla_queries::{Params, RecordBatch, run_many};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use std::collections::BTreeMap;
use std::process::Command;

/// (question, year, source, row key, column).
type Key = (String, i32, Option<String>, Vec<String>, String);

/// A published cell: its value when shown, and its symbol when hidden (`true`: `c`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Shown(i64),
    Hidden { partner: bool },
}

fn culla(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "culla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len())
        .map(|i| {
            if c.is_valid(i) {
                c.value(i).to_string()
            } else {
                String::new()
            }
        })
        .collect()
}

fn ints(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().iter().collect()
}

/// Every count cell of `b` (question `q`), keyed.
fn cells(
    q: &culla_queries::QueryInfo,
    year: i32,
    source: &Option<String>,
    b: &RecordBatch,
    public: bool,
    out: &mut BTreeMap<Key, Seen>,
) {
    let keys: Vec<Vec<String>> = {
        let cols: Vec<Vec<String>> = q.key_columns.iter().map(|k| texts(b, k)).collect();
        (0..b.num_rows())
            .map(|r| cols.iter().map(|c| c[r].clone()).collect())
            .collect()
    };
    for c in q.counts {
        for (r, v) in ints(b, c).into_iter().enumerate() {
            let seen = match v {
                Some(v) => Seen::Shown(v),
                None if public => Seen::Hidden {
                    partner: culla_queries::disclosure::is_secondary(b, r, c),
                },
                None => continue,
            };
            let key = (
                q.name.to_string(),
                year,
                source.clone(),
                keys[r].clone(),
                c.to_string(),
            );
            out.insert(key, seen);
        }
    }
}

/// A count column of a question: (question, column).
type Col = (&'static str, &'static str);

/// One attacker's equation: Σ cells (+1/−1) = 0, or ≥ 0 when `at_least`.
struct Relation {
    what: String,
    terms: Vec<(Key, i64)>,
    at_least: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn no_linked_pair_of_a_release_recovers_a_hidden_count() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    for (year, seed, source, contacts) in [
        (2024, 7, "milano-020202", "4000"),
        (2024, 11, "melzo-1000giorni", "600"),
        (2023, 5, "milano-020202", "3000"),
    ] {
        let f = tmp.path().join(format!("{source}-{year}.ndjson"));
        let f = f.to_str().unwrap();
        let (y, s) = (year.to_string(), seed.to_string());
        culla(&[
            "simulate",
            "--year",
            &y,
            "--seed",
            &s,
            "--source",
            source,
            "--contacts",
            contacts,
            "--out",
            f,
        ]);
        culla(&["produce", "--from", f, "--data", d]);
    }
    culla(&["ingest", "--until-idle", "--data", d]);

    let sources = ["milano-020202", "melzo-1000giorni"];
    let infos = protected();
    let names: Vec<&str> = infos.iter().map(|q| q.name).collect();
    let mut published: BTreeMap<Key, Seen> = BTreeMap::new();
    let mut truth: BTreeMap<Key, Seen> = BTreeMap::new();
    for year in [2023, 2024] {
        let scopes: Vec<Option<String>> = std::iter::once(None)
            .chain(sources.iter().map(|s| Some(s.to_string())))
            .collect();
        for source in &scopes {
            for public in [false, true] {
                let p = Params {
                    data: data.clone(),
                    year: Some(year),
                    source: source.clone(),
                    public,
                    ..Params::default()
                };
                let answers = run_many(&names, &p).await.unwrap();
                for (q, b) in infos.iter().zip(&answers) {
                    let into = if public { &mut published } else { &mut truth };
                    cells(q, year, source, b, public, into);
                }
            }
        }
    }
    assert_eq!(published.len(), truth.len());
    let hidden = published
        .values()
        .filter(|s| matches!(s, Seen::Hidden { .. }))
        .count();
    assert!(
        hidden > 50,
        "only {hidden} hidden cells: the attack proves little"
    );
    // Every hidden cell hides a count the truth has (and a small one as `<5`).
    for (k, s) in &published {
        if let Seen::Hidden { partner } = s {
            let Seen::Shown(v) = truth[k] else {
                unreachable!()
            };
            assert!(v > 0, "{k:?}: a zero is never hidden");
            assert!(partner == &(v >= 5), "{k:?} = {v} shown as {s:?}");
        }
    }

    // The same cell through `culla query --public` (the CLI) is the library's.
    for (year, source) in [(2024, None), (2024, Some("melzo-1000giorni")), (2023, None)] {
        for q in [
            "unmet_needs_by_nil",
            "isolation_risk_by_municipio",
            "needs_by_category",
        ] {
            let y = year.to_string();
            let mut args = vec![
                "query", q, "--data", d, "--year", &y, "--public", "--format", "json",
            ];
            if let Some(s) = source {
                args.extend(["--source", s]);
            }
            let rows: Vec<serde_json::Value> = serde_json::from_str(&culla(&args)).unwrap();
            let info = culla_queries::find(q).unwrap();
            for row in &rows {
                let key: Vec<String> = info
                    .key_columns
                    .iter()
                    .map(|k| match &row[k] {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect();
                for c in info.counts {
                    let k: Key = (
                        q.into(),
                        year,
                        source.map(str::to_string),
                        key.clone(),
                        c.to_string(),
                    );
                    let cli = row[c].as_i64();
                    let lib = match published[&k] {
                        Seen::Shown(v) => Some(v),
                        Seen::Hidden { .. } => None,
                    };
                    assert_eq!(cli, lib, "{k:?}: the CLI and the library differ");
                }
            }
        }
    }

    // The attacker's relations.
    let mut rel: Vec<Relation> = Vec::new();
    let keys_of = |q: &str, year: i32, source: &Option<String>, col: &str| -> Vec<Key> {
        truth
            .keys()
            .filter(|k| k.0 == q && k.1 == year && &k.2 == source && k.4 == col)
            .cloned()
            .collect()
    };
    for year in [2023, 2024] {
        // All lines minus each line, cell by cell.
        for k in truth.keys().filter(|k| k.1 == year && k.2.is_none()) {
            let mut terms = vec![(k.clone(), 1)];
            for s in sources {
                let mut ks = k.clone();
                ks.2 = Some(s.to_string());
                if truth.contains_key(&ks) {
                    terms.push((ks, -1));
                }
            }
            rel.push(Relation {
                what: format!("all lines − each line at {k:?}"),
                terms,
                at_least: false,
            });
        }
        let scopes: Vec<Option<String>> = std::iter::once(None)
            .chain(sources.iter().map(|s| Some(s.to_string())))
            .collect();
        for source in &scopes {
            // A Municipio is at least the sum of its NIL cells (its families of an
            // unknown NIL are not in them).
            for (nil_q, mun_q, cols) in [
                (
                    "unmet_needs_by_nil",
                    "unmet_needs_by_municipio",
                    ["needs", "unmet"],
                ),
                (
                    "isolation_risk_by_nil",
                    "isolation_risk_by_municipio",
                    ["families", "high_risk"],
                ),
            ] {
                let p = Params {
                    data: data.clone(),
                    year: Some(year),
                    source: source.clone(),
                    ..Params::default()
                };
                let nil_b = culla_queries::run(nil_q, &p).await.unwrap();
                let (nils, muns, comuni) = (
                    texts(&nil_b, "nil"),
                    texts(&nil_b, "municipio"),
                    texts(&nil_b, "comune"),
                );
                for col in cols {
                    for mk in keys_of(mun_q, year, source, col) {
                        let mut terms = vec![(mk.clone(), 1)];
                        for r in 0..nils.len() {
                            if comuni[r] == mk.3[0] && muns[r] == mk.3[1] && nils[r] != "unknown" {
                                terms.push((
                                    (
                                        nil_q.into(),
                                        year,
                                        source.clone(),
                                        vec![comuni[r].clone(), nils[r].clone()],
                                        col.into(),
                                    ),
                                    -1,
                                ));
                            }
                        }
                        rel.push(Relation {
                            what: format!("Municipio − its NIL cells at {mk:?}"),
                            terms,
                            at_least: true,
                        });
                    }
                }
            }
            // One total through several tables.
            let total = |q: &str, col: &str, sign: i64| -> Vec<(Key, i64)> {
                keys_of(q, year, source, col)
                    .into_iter()
                    .map(|k| (k, sign))
                    .collect()
            };
            let pairs: [(Col, Col); 6] = [
                (
                    ("isolation_risk_by_nil", "families"),
                    ("isolation_risk_by_municipio", "families"),
                ),
                (
                    ("isolation_risk_by_nil", "high_risk"),
                    ("isolation_risk_by_municipio", "high_risk"),
                ),
                (
                    ("unmet_needs_by_nil", "needs"),
                    ("unmet_needs_by_municipio", "needs"),
                ),
                (
                    ("unmet_needs_by_nil", "needs"),
                    ("needs_by_category", "needs"),
                ),
                (
                    ("unmet_needs_by_nil", "unmet"),
                    ("unmet_needs_by_reason", "needs"),
                ),
                (
                    ("needs_by_category", "unmet"),
                    ("unmet_needs_by_reason", "needs"),
                ),
            ];
            for ((qa, ca), (qb, cb)) in pairs {
                let mut terms = total(qa, ca, 1);
                terms.extend(total(qb, cb, -1));
                rel.push(Relation {
                    what: format!("{qa}.{ca} − {qb}.{cb} ({year}, {source:?})"),
                    terms,
                    at_least: false,
                });
            }
            // Families in contact: the flags table's of_families minus the NIL cells.
            if let Some(of) = keys_of("isolation_risk_flags", year, source, "of_families").first() {
                let mut terms = vec![(of.clone(), 1)];
                terms.extend(total("isolation_risk_by_nil", "families", -1));
                rel.push(Relation {
                    what: format!("families in contact − NIL cells ({year}, {source:?})"),
                    terms,
                    at_least: false,
                });
            }
            // A category's unmet needs by stage and by reason; a row's needs and outcomes.
            let cats: std::collections::BTreeSet<String> =
                keys_of("needs_by_category", year, source, "unmet")
                    .iter()
                    .map(|k| k.3[0].clone())
                    .collect();
            for c in cats {
                let mut terms: Vec<(Key, i64)> =
                    keys_of("needs_by_category", year, source, "unmet")
                        .into_iter()
                        .filter(|k| k.3[0] == c)
                        .map(|k| (k, 1))
                        .collect();
                terms.extend(
                    keys_of("unmet_needs_by_reason", year, source, "needs")
                        .into_iter()
                        .filter(|k| k.3[0] == c)
                        .map(|k| (k, -1)),
                );
                rel.push(Relation {
                    what: format!("{c}: unmet by stage − by reason ({year}, {source:?})"),
                    terms,
                    at_least: false,
                });
            }
            for k in keys_of("needs_by_category", year, source, "needs") {
                let mut terms = vec![(k.clone(), 1)];
                for part in ["met", "unmet", "declined", "open"] {
                    let mut kp = k.clone();
                    kp.4 = part.into();
                    terms.push((kp, -1));
                }
                rel.push(Relation {
                    what: format!("needs − outcomes at {k:?}"),
                    terms,
                    at_least: false,
                });
            }
        }
    }

    let value = |k: &Key| match truth.get(k) {
        Some(Seen::Shown(v)) => *v,
        _ => 0,
    };
    let mut used = 0;
    let mut attacked = 0;
    for r in &rel {
        // Only relations that hold on the data.
        let sum: i64 = r.terms.iter().map(|(k, s)| s * value(k)).sum();
        if (r.at_least && sum < 0) || (!r.at_least && sum != 0) {
            continue;
        }
        used += 1;
        let (mut known, mut unknown) = (0i64, Vec::new());
        for (k, s) in &r.terms {
            match published.get(k).copied().unwrap_or(Seen::Shown(0)) {
                Seen::Shown(v) => known += s * v,
                Seen::Hidden { partner } => unknown.push((k, *s, partner)),
            }
        }
        if unknown.is_empty() {
            continue;
        }
        attacked += 1;
        if unknown.len() == 1 {
            let (k, s, partner) = unknown[0];
            // s·x + known = 0 (or ≥ 0): x = −known/s, or a bound.
            let x = -known * s;
            if r.at_least {
                // A hidden NIL (s = −1) is at most `known`: narrowed when that leaves
                // a `c` cell within 1–4, or a `<5` cell at exactly 1.
                if s < 0 {
                    assert!(
                        // A `c` is at least 5: at most 5 pins it; a `<5` at most 1.
                        if partner { known > 5 } else { known > 1 },
                        "{}: {k:?} is at most {known}",
                        r.what
                    );
                }
            } else {
                panic!("{}: {k:?} recovered as {x} (true {})", r.what, value(k));
            }
        }
    }
    assert!(
        used > 1000 && attacked > 100,
        "{used} relations used, {attacked} with a hidden cell"
    );

    // At least half of the NIL cells of the all-lines tables stay visible.
    for year in [2023, 2024] {
        for q in ["unmet_needs_by_nil", "isolation_risk_by_nil"] {
            let all: Vec<&Seen> = published
                .iter()
                .filter(|(k, _)| k.0 == q && k.1 == year && k.2.is_none())
                .map(|(_, s)| s)
                .collect();
            let shown = all.iter().filter(|s| matches!(s, Seen::Shown(_))).count();
            assert!(
                2 * shown >= all.len(),
                "{q} {year}: {shown} of {} shown",
                all.len()
            );
        }
    }

    // The pre-publication check agrees: nothing to recover, exit 0.
    let check = culla(&[
        "disclosure",
        "--data",
        d,
        "--year",
        "2023",
        "--year",
        "2024",
    ]);
    assert!(
        check.contains("2024: 2 sources") && check.contains("; 0 recoverable"),
        "{check}"
    );
}
