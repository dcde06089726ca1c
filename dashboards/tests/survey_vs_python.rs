//! The survey statistics against SciPy and statsmodels, computed live.
//!
//! The interpreter is `$CULLA_PYTHON` (the test script points it at the project's
//! venv), else `python3`; it must have scipy and statsmodels, or the test fails saying
//! so. For each 2×2 table below Python computes Fisher's exact two-sided p-value
//! (`scipy.stats.fisher_exact`), Pearson's chi-square without continuity correction
//! (`scipy.stats.chi2_contingency(correction=False)`), the Wilson 95% intervals of both
//! rows (`statsmodels…proportion_confint(method="wilson")`) and the Benjamini–Hochberg
//! q-values of the chosen p-values (`statsmodels…multipletests(method="fdr_bh")`);
//! the Rust results must agree within 1e-6.

use culla_dashboards::stats::{Z_95, benjamini_hochberg, chi2_2x2, fisher_exact_two_sided, wilson};
use culla_dashboards::survey::{CATEGORIES, ContactShares, Survey, Test, compare};
use std::process::Command;

/// (survey yes, survey answered, contact yes, contact families): a Melzo-like survey of
/// 87 families against 1,200 families in contact, with small, zero and large cells.
const TABLES: [(u64, u64, u64, u64); 11] = [
    (30, 87, 310, 1200),
    (12, 87, 95, 1200),
    (2, 86, 40, 1200),
    (41, 85, 402, 1200),
    (0, 87, 3, 1200),
    (9, 80, 260, 1200),
    (18, 87, 120, 1200),
    (5, 87, 61, 1200),
    (25, 84, 150, 1200),
    (1, 87, 12, 1200),
    (87, 87, 1150, 1200),
];

const SCRIPT: &str = r#"
import json, sys
try:
    from scipy.stats import fisher_exact, chi2_contingency
    from statsmodels.stats.proportion import proportion_confint
    from statsmodels.stats.multitest import multipletests
except ImportError as e:
    print("MISSING " + str(e)); sys.exit(3)
tables = json.loads(sys.argv[1])
out = []
for sy, sn, cy, cn in tables:
    t = [[sy, sn - sy], [cy, cn - cy]]
    fisher = fisher_exact(t, alternative="two-sided")[1]
    r = chi2_contingency(t, correction=False)
    chi2, pchi, exp = float(r[0]), float(r[1]), r[3]
    min_e = float(exp.min())
    s_lo, s_hi = proportion_confint(sy, sn, alpha=0.05, method="wilson")
    c_lo, c_hi = proportion_confint(cy, cn, alpha=0.05, method="wilson")
    p = pchi if min_e >= 5 else fisher
    out.append(dict(fisher=float(fisher), chi2=chi2, pchi=pchi, min_e=min_e, p=float(p),
                    s=[float(s_lo), float(s_hi)], c=[float(c_lo), float(c_hi)]))
q = multipletests([o["p"] for o in out], method="fdr_bh")[1]
for o, qq in zip(out, q):
    o["q"] = float(qq)
print(json.dumps(out))
"#;

fn python() -> String {
    std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn close(what: &str, a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-6, "{what}: Rust {a} vs Python {b}");
}

#[test]
fn statistics_match_scipy_and_statsmodels() {
    let py = python();
    let arg = serde_json::to_string(
        &TABLES
            .iter()
            .map(|t| [t.0, t.1, t.2, t.3])
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&arg)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {py} (set CULLA_PYTHON to a Python with scipy and statsmodels): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{py} lacks scipy/statsmodels or failed (set CULLA_PYTHON): {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).unwrap();

    // The building blocks, table by table.
    for (t, e) in TABLES.iter().zip(&expected) {
        let (sy, sn, cy, cn) = *t;
        let (a, b, c, d) = (sy, sn - sy, cy, cn - cy);
        close(
            "fisher",
            fisher_exact_two_sided(a, b, c, d),
            e["fisher"].as_f64().unwrap(),
        );
        let (stat, p, min_e) = chi2_2x2(a, b, c, d);
        close("min expected", min_e, e["min_e"].as_f64().unwrap());
        if min_e > 0.0 {
            close("chi2 statistic", stat, e["chi2"].as_f64().unwrap());
            close("chi2 p", p, e["pchi"].as_f64().unwrap());
        }
        let (lo, hi) = wilson(sy, sn, Z_95);
        close("wilson survey low", lo, e["s"][0].as_f64().unwrap());
        close("wilson survey high", hi, e["s"][1].as_f64().unwrap());
        let (lo, hi) = wilson(cy, cn, Z_95);
        close("wilson contacts low", lo, e["c"][0].as_f64().unwrap());
        close("wilson contacts high", hi, e["c"][1].as_f64().unwrap());
    }
    let p: Vec<f64> = expected.iter().map(|e| e["p"].as_f64().unwrap()).collect();
    for (q, e) in benjamini_hochberg(&p).iter().zip(&expected) {
        close("BH q", *q, e["q"].as_f64().unwrap());
    }

    // The whole comparison: one category per table.
    let mut survey = Survey {
        families: 87,
        ..Default::default()
    };
    let mut contacts = ContactShares {
        families: 1200,
        ..Default::default()
    };
    for (cat, t) in CATEGORIES.iter().zip(TABLES) {
        survey.needs.insert(cat.to_string(), (t.0, t.1));
        contacts.needs.insert(cat.to_string(), t.2);
    }
    let rows = compare(&survey, &contacts);
    for (r, e) in rows.iter().zip(&expected) {
        close("comparison p", r.p_value, e["p"].as_f64().unwrap());
        close("comparison q", r.q_value, e["q"].as_f64().unwrap());
        let chi = e["min_e"].as_f64().unwrap() >= 5.0;
        assert_eq!(
            r.test == Test::ChiSquare,
            chi,
            "test choice for {}",
            r.category
        );
        assert_eq!(r.significant, e["q"].as_f64().unwrap() < 0.05);
    }
}
