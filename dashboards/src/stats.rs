//! The statistics behind the survey comparison, in plain Rust: log-gamma, the
//! hypergeometric distribution, Fisher's exact test, the chi-square survival function,
//! Pearson's chi-square test of a 2×2 table, Wilson score intervals and the
//! Benjamini–Hochberg false discovery rate adjustment.
//!
//! Each function follows the definition SciPy / statsmodels use, so their numbers can
//! be checked against those libraries (see the tests of this module):
//! `scipy.stats.fisher_exact(alternative="two-sided")`,
//! `scipy.stats.chi2_contingency(correction=False)`,
//! `statsmodels.stats.proportion.proportion_confint(method="wilson")` and
//! `statsmodels.stats.multitest.multipletests(method="fdr_bh")`.

/// The 97.5% quantile of the standard normal distribution (two-sided 95%).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Natural logarithm of the gamma function for `x > 0`: the one the Poisson intervals
/// of the queries use too, so both layers agree to the last digit.
pub use culla_transform::stats::ln_gamma;

/// ln(n!) for a count.
pub fn ln_factorial(n: u64) -> f64 {
    if n < 2 { 0.0 } else { ln_gamma(n as f64 + 1.0) }
}

/// ln of the binomial coefficient C(n, k).
pub fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// Hypergeometric probability of `k` successes in `draws` draws from a population of
/// `total` holding `successes` (SciPy's `hypergeom.pmf(k, total, successes, draws)`).
pub fn hypergeom_pmf(k: u64, total: u64, successes: u64, draws: u64) -> f64 {
    if k > successes || k > draws || draws - k > total - successes {
        return 0.0;
    }
    (ln_choose(successes, k) + ln_choose(total - successes, draws - k) - ln_choose(total, draws))
        .exp()
}

/// Fisher's exact test, two-sided, of the 2×2 table `[[a, b], [c, d]]`: the sum of
/// the probabilities of every table with the same margins that is no more likely than
/// the observed one (with SciPy's relative tolerance of 1e-7 for ties).
pub fn fisher_exact_two_sided(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let n = a + b + c + d;
    let row1 = a + b;
    let col1 = a + c;
    if row1 == 0 || col1 == 0 || row1 == n || col1 == n {
        return 1.0;
    }
    let lo = col1.saturating_sub(n - row1);
    let hi = row1.min(col1);
    let p_obs = hypergeom_pmf(a, n, row1, col1);
    let limit = p_obs * (1.0 + 1e-7);
    let mut p = 0.0;
    for k in lo..=hi {
        let pk = hypergeom_pmf(k, n, row1, col1);
        if pk <= limit {
            p += pk;
        }
    }
    p.min(1.0)
}

/// Regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    }
}

fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut sum = 1.0 / a;
    let mut term = sum;
    let mut ap = a;
    for _ in 0..10_000 {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if term.abs() < sum.abs() * 1e-17 {
            break;
        }
    }
    sum * (-x + a * x.ln() - ln_gamma(a)).exp()
}

fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    // Modified Lentz's method.
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x + a * x.ln() - ln_gamma(a)).exp() * h
}

/// Survival function of the chi-square distribution with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    gamma_q(df / 2.0, x / 2.0)
}

/// Pearson's chi-square test of independence of the 2×2 table `[[a, b], [c, d]]`
/// without Yates' continuity correction: `(statistic, p-value, smallest expected count)`.
pub fn chi2_2x2(a: u64, b: u64, c: u64, d: u64) -> (f64, f64, f64) {
    let obs = [[a as f64, b as f64], [c as f64, d as f64]];
    let n = (a + b + c + d) as f64;
    let rows = [obs[0][0] + obs[0][1], obs[1][0] + obs[1][1]];
    let cols = [obs[0][0] + obs[1][0], obs[0][1] + obs[1][1]];
    let mut stat = 0.0;
    let mut min_expected = f64::INFINITY;
    for i in 0..2 {
        for j in 0..2 {
            let e = if n > 0.0 { rows[i] * cols[j] / n } else { 0.0 };
            min_expected = min_expected.min(e);
            if e > 0.0 {
                stat += (obs[i][j] - e).powi(2) / e;
            }
        }
    }
    if min_expected <= 0.0 {
        return (0.0, 1.0, min_expected);
    }
    (stat, chi2_sf(stat, 1.0), min_expected)
}

/// Smallest expected count of the 2×2 table `[[a, b], [c, d]]` under independence.
pub fn min_expected_2x2(a: u64, b: u64, c: u64, d: u64) -> f64 {
    chi2_2x2(a, b, c, d).2
}

/// Wilson score interval of `successes / n` at the normal quantile `z`;
/// `(0, 0)` when `n` is zero.
pub fn wilson(successes: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![0.0; m];
    let mut running = 1.0_f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        q[i] = running;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b} (tolerance {tol})");
    }

    // Expected values computed with Python 3 / SciPy 1.x / statsmodels:
    //   import math; math.lgamma(0.5), math.lgamma(10.5), math.lgamma(20001)
    #[test]
    fn ln_gamma_matches_math_lgamma() {
        close(ln_gamma(0.5), 0.5723649429247004, 1e-12);
        close(ln_gamma(10.5), 13.940625219403763, 1e-12);
        close(ln_gamma(1.0), 0.0, 1e-13);
        close(ln_gamma(20001.0), 178075.6217371987, 1e-7);
    }

    // from statsmodels.stats.proportion import proportion_confint
    // proportion_confint(30, 87, method="wilson") -> (0.2534266117355903, 0.4493522697298264)
    // (the brief's "Wilson 30/87 is 25.3%–44.9%").
    #[test]
    fn wilson_30_of_87() {
        let (lo, hi) = wilson(30, 87, Z_95);
        close(lo, 0.2534266117355903, 1e-9);
        close(hi, 0.4493522697298264, 1e-9);
        assert_eq!(format!("{:.1}", lo * 100.0), "25.3");
        assert_eq!(format!("{:.1}", hi * 100.0), "44.9");
        assert_eq!(wilson(0, 0, Z_95), (0.0, 0.0));
    }

    // By hand: BH on [0.01, 0.04, 0.03, 0.5] (m = 4): sorted 0.01, 0.03, 0.04, 0.5 →
    // raw 0.04, 0.06, 0.0533, 0.5 → cumulative minimum from the top: 0.04, 0.0533,
    // 0.0533, 0.5.
    #[test]
    fn bh_by_hand() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        close(q[0], 0.04, 1e-12);
        close(q[1], 0.16 / 3.0, 1e-12);
        close(q[2], 0.16 / 3.0, 1e-12);
        close(q[3], 0.5, 1e-12);
    }

    // By hand: the table [[3, 0], [0, 3]] has margins 3/3/3/3; only a = 0 and a = 3 are
    // as unlikely as observed, each with probability 1 / C(6, 3) = 1/20: p = 0.1.
    #[test]
    fn fisher_by_hand() {
        close(fisher_exact_two_sided(3, 0, 0, 3), 0.1, 1e-12);
        close(fisher_exact_two_sided(0, 0, 3, 3), 1.0, 1e-12);
    }

    // By hand: chi-square with 1 df has sf(x) = erfc(sqrt(x / 2)); sf(3.841458820694124)
    // = 0.05 (the 95% critical value), and [[10, 20], [20, 10]] has expected 15 in every
    // cell, statistic 4 · 25 / 15 = 6.6667.
    #[test]
    fn chi_square_by_hand() {
        close(chi2_sf(3.841458820694124, 1.0), 0.05, 1e-12);
        let (stat, _, min_e) = chi2_2x2(10, 20, 20, 10);
        close(stat, 100.0 / 15.0, 1e-12);
        close(min_e, 15.0, 1e-12);
    }
}
