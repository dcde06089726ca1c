//! Secondary suppression over a system of linked counts, and the audit that drives it.
//!
//! A release's protected counts are tied together by equations: parts add up to a
//! total, all sources together are the sum of each source, a Municipio is the sum of its
//! share of each NIL, the same total is reached through several tables. [`System`] holds
//! those counts (published cells, and unpublished sums an attacker can still reason
//! about, such as a NIL's families living in one Municipio) and their equations, each
//! `Σ ±cell = 0`, checked against the true values before it is added.
//!
//! [`protect`] hides every small count (`0 < v < min`), then repeats: [`audit`] works out,
//! for every hidden cell, the tightest interval an attacker gets by propagating bounds
//! through every equation over and over (differencing any pair, a total minus its
//! visible parts, chains of them); a cell whose interval is a single value, or lies
//! within `1..min-1`, is *exposed*, and the smallest visible non-zero cell sharing an
//! equation with it is hidden too. It stops when nothing is exposed, or when an exposed
//! cell has no visible partner left (only zeros beside it: its total is itself small).
//!
//! The audit is run twice: on arithmetic alone, and knowing what the symbols say (a
//! `<5` cell is 1–4, a `c` cell is at least `min`); the second must find no exact value.
//! Bound propagation is what differencing can do; a solver of the whole linear program
//! can in principle narrow an interval further. docs/DISCLOSURE.md states both.

/// A count cell of a [`System`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Published: shown, or hidden by disclosure control.
    Shown,
    /// Published as it is, never hidden (a total by time alone, or one assumed
    /// published): known to the attacker, never a partner.
    Fixed,
    /// Never published (a sum no output shows, such as a NIL's families in one
    /// Municipio): an unknown for the attacker, never shown, never a partner.
    Unpublished,
}

/// Counts and the equations between them.
#[derive(Debug, Default, Clone)]
pub struct System {
    values: Vec<i64>,
    kinds: Vec<Kind>,
    equations: Vec<Vec<(usize, i64)>>,
    /// Equations that only bound (a part at most its whole, through a slack cell):
    /// their cells are the last partners tried, since they rarely pin a count.
    bounds_only: Vec<bool>,
    /// Equations each cell appears in.
    of_cell: Vec<Vec<usize>>,
}

impl System {
    /// A new cell holding `value`; returns its index.
    pub fn cell(&mut self, value: i64, kind: Kind) -> usize {
        self.values.push(value);
        self.kinds.push(kind);
        self.of_cell.push(Vec::new());
        self.values.len() - 1
    }

    /// The true value of a cell.
    pub fn value(&self, cell: usize) -> i64 {
        self.values[cell]
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the system has no cell.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The number of equations.
    pub fn equations(&self) -> usize {
        self.equations.len()
    }

    /// The connected parts of the system: cells that share no equation, directly or
    /// through others, are in different parts. Each part is sorted; lone cells are
    /// parts of their own.
    pub fn parts(&self) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut part = vec![usize::MAX; n];
        let mut out: Vec<Vec<usize>> = Vec::new();
        for start in 0..n {
            if part[start] != usize::MAX {
                continue;
            }
            let id = out.len();
            part[start] = id;
            let mut cells = vec![start];
            let mut stack = vec![start];
            while let Some(c) = stack.pop() {
                for &e in &self.of_cell[c] {
                    for &(m, _) in &self.equations[e] {
                        if part[m] == usize::MAX {
                            part[m] = id;
                            cells.push(m);
                            stack.push(m);
                        }
                    }
                }
            }
            cells.sort_unstable();
            out.push(cells);
        }
        out
    }

    /// The system of `cells` alone (a part from [`System::parts`]) with the equations
    /// among them, and the original index of each of its cells.
    fn restrict(&self, cells: &[usize]) -> (System, Vec<usize>) {
        let mut index = std::collections::HashMap::with_capacity(cells.len());
        let mut sub = System::default();
        for &c in cells {
            index.insert(c, sub.cell(self.values[c], self.kinds[c]));
        }
        let mut eqs: Vec<usize> = cells
            .iter()
            .flat_map(|&c| self.of_cell[c].iter().copied())
            .collect();
        eqs.sort_unstable();
        eqs.dedup();
        for e in eqs {
            let terms = self.equations[e]
                .iter()
                .map(|&(c, k)| (index[&c], k))
                .collect();
            sub.add(terms, self.bounds_only[e]);
        }
        (sub, cells.to_vec())
    }

    /// Adds `Σ coef · cell = 0` if it holds on the true values and ties at least two
    /// cells; returns whether it was added. An equation that does not hold (a family
    /// counted once in all sources but in two lines, say) is a relation the data do not
    /// have, so it is not one an attacker can use either.
    pub fn equation(&mut self, terms: Vec<(usize, i64)>) -> bool {
        self.add(terms, false)
    }

    /// [`System::equation`] for a relation that only bounds its cells (it holds an
    /// unpublished slack): its cells are tried as partners after the others.
    pub fn bound(&mut self, terms: Vec<(usize, i64)>) -> bool {
        self.add(terms, true)
    }

    fn add(&mut self, terms: Vec<(usize, i64)>, bounds_only: bool) -> bool {
        let terms: Vec<(usize, i64)> = terms.into_iter().filter(|t| t.1 != 0).collect();
        if terms.len() < 2 {
            return false;
        }
        let sum: i64 = terms.iter().map(|&(c, k)| k * self.values[c]).sum();
        if sum != 0 {
            return false;
        }
        let e = self.equations.len();
        for &(c, _) in &terms {
            self.of_cell[c].push(e);
        }
        self.equations.push(terms);
        self.bounds_only.push(bounds_only);
        true
    }
}

/// Which cells are hidden, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Protection {
    /// Hidden (primary or secondary).
    pub hidden: Vec<bool>,
    /// Hidden as a partner, not for being small.
    pub secondary: Vec<bool>,
    /// Hidden cells still exposed when no partner was left (their totals are small).
    pub exposed: Vec<usize>,
}

/// An interval of an unknown cell: `None` is unbounded above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Lowest value the published cells allow.
    pub lo: i64,
    /// Highest value, if any.
    pub hi: Option<i64>,
}

/// Hides every small count and the partners the audit asks for. Cells no equation
/// ties together are protected apart, one connected part of the system at a time.
pub fn protect(sys: &System, min: i64) -> Protection {
    let n = sys.len();
    let mut out = Protection {
        hidden: vec![false; n],
        secondary: vec![false; n],
        exposed: Vec::new(),
    };
    for part in sys.parts() {
        let (sub, cells) = sys.restrict(&part);
        let p = protect_connected(&sub, min);
        for (i, &c) in cells.iter().enumerate() {
            out.hidden[c] = p.hidden[i];
            out.secondary[c] = p.secondary[i];
        }
        out.exposed.extend(p.exposed.iter().map(|&i| cells[i]));
    }
    out.exposed.sort_unstable();
    out
}

/// [`protect`] on a system whose cells are all linked.
fn protect_connected(sys: &System, min: i64) -> Protection {
    let n = sys.len();
    let mut hidden: Vec<bool> = (0..n)
        .map(|c| sys.kinds[c] == Kind::Shown && sys.values[c] > 0 && sys.values[c] < min)
        .collect();
    let mut secondary = vec![false; n];
    loop {
        let exposed = audit(sys, &hidden, &secondary, min);
        if exposed.is_empty() {
            return Protection {
                hidden,
                secondary,
                exposed,
            };
        }
        let mut added = false;
        for &c in &exposed {
            // An earlier partner of this round may have covered it already.
            if !audit(sys, &hidden, &secondary, min).contains(&c) {
                continue;
            }
            let candidates = candidates(sys, c, &hidden);
            // The smallest candidate that ends the exposure; else the smallest, so the
            // next round starts from a larger hidden set.
            let chosen = candidates
                .iter()
                .take(MAX_TRIALS)
                .copied()
                .find(|&p| {
                    hidden[p] = true;
                    secondary[p] = true;
                    let ok = !audit(sys, &hidden, &secondary, min).contains(&c);
                    hidden[p] = false;
                    secondary[p] = false;
                    ok
                })
                .or(candidates.first().copied());
            if let Some(p) = chosen {
                hidden[p] = true;
                secondary[p] = true;
                added = true;
            }
        }
        if !added {
            return Protection {
                hidden,
                secondary,
                exposed,
            };
        }
    }
}

/// How many partners are tried for one exposed cell before the smallest is taken.
const MAX_TRIALS: usize = 12;

/// Visible non-zero published cells that share an equation with `cell`, directly or
/// through unpublished cells. Nearest first, then those of equations (not bounds) with
/// the fewest unknowns (the ones that pin the cell down), then the smallest.
fn candidates(sys: &System, cell: usize, hidden: &[bool]) -> Vec<usize> {
    let unknown = |c: usize| hidden[c] || sys.kinds[c] == Kind::Unpublished;
    let mut seen = vec![false; sys.len()];
    seen[cell] = true;
    let mut level = vec![cell];
    let mut found: Vec<((usize, bool, usize, i64), usize)> = Vec::new();
    for depth in 0..4 {
        let mut next = Vec::new();
        for &c in &level {
            for &e in &sys.of_cell[c] {
                let eq = &sys.equations[e];
                let unknowns = eq.iter().filter(|t| unknown(t.0)).count();
                for &(m, _) in eq {
                    if seen[m] {
                        continue;
                    }
                    match sys.kinds[m] {
                        Kind::Unpublished => {
                            seen[m] = true;
                            next.push(m);
                        }
                        Kind::Shown if !hidden[m] && sys.values[m] > 0 => {
                            seen[m] = true;
                            found.push(((depth, sys.bounds_only[e], unknowns, sys.values[m]), m));
                        }
                        Kind::Shown | Kind::Fixed => {}
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    found.sort_unstable();
    found.into_iter().map(|(_, m)| m).collect()
}

/// The hidden published cells an attacker can pin to one value or narrow to within
/// `1..min-1`, on arithmetic alone or knowing the symbols.
pub fn audit(sys: &System, hidden: &[bool], secondary: &[bool], min: i64) -> Vec<usize> {
    let plain = intervals(sys, hidden, |_| Bounds { lo: 0, hi: None });
    let symbols = intervals(sys, hidden, |c| {
        if sys.kinds[c] == Kind::Unpublished {
            Bounds { lo: 0, hi: None }
        } else if secondary[c] {
            Bounds { lo: min, hi: None }
        } else {
            Bounds {
                lo: 1,
                hi: Some(min - 1),
            }
        }
    });
    (0..sys.len())
        .filter(|&c| hidden[c] && sys.kinds[c] == Kind::Shown)
        .filter(|&c| {
            let p = plain[c];
            let exact = |b: Bounds| b.hi == Some(b.lo);
            let small = p.lo >= 1 && p.hi.is_some_and(|h| h < min);
            exact(p) || small || exact(symbols[c])
        })
        .collect()
}

/// The interval of every cell an attacker gets by propagating bounds through the
/// equations until nothing tightens: shown cells are known, the others start at
/// `start(cell)`.
pub fn intervals(sys: &System, hidden: &[bool], start: impl Fn(usize) -> Bounds) -> Vec<Bounds> {
    let n = sys.len();
    let unknown = |c: usize| hidden[c] || sys.kinds[c] == Kind::Unpublished;
    let mut b: Vec<Bounds> = (0..n)
        .map(|c| {
            if unknown(c) {
                start(c)
            } else {
                Bounds {
                    lo: sys.values[c],
                    hi: Some(sys.values[c]),
                }
            }
        })
        .collect();
    // Each pass can only tighten integer bounds; a cap keeps a slow creep finite.
    for _ in 0..200 {
        let mut changed = false;
        for eq in &sys.equations {
            if !eq.iter().any(|t| unknown(t.0)) {
                continue;
            }
            // Σ k·x over the equation = 0: the range of the whole sum, with the number of
            // unbounded terms on each side.
            let (mut lo_sum, mut lo_inf, mut hi_sum, mut hi_inf) = (0i64, 0usize, 0i64, 0usize);
            for &(c, k) in eq {
                let (lo, hi) = term_range(b[c], k);
                match lo {
                    Some(v) => lo_sum += v,
                    None => lo_inf += 1,
                }
                match hi {
                    Some(v) => hi_sum += v,
                    None => hi_inf += 1,
                }
            }
            for &(c, k) in eq {
                if !unknown(c) {
                    continue;
                }
                let (tlo, thi) = term_range(b[c], k);
                // The rest of the sum lies in [rest_lo, rest_hi], so k·x = -rest.
                let rest_lo = match tlo {
                    Some(v) if lo_inf == 0 => Some(lo_sum - v),
                    None if lo_inf == 1 => Some(lo_sum),
                    _ => None,
                };
                let rest_hi = match thi {
                    Some(v) if hi_inf == 0 => Some(hi_sum - v),
                    None if hi_inf == 1 => Some(hi_sum),
                    _ => None,
                };
                // k·x ∈ [-rest_hi, -rest_lo]; k is ±1.
                let (x_lo, x_hi) = if k > 0 {
                    (rest_hi.map(|h| -h), rest_lo.map(|l| -l))
                } else {
                    (rest_lo, rest_hi)
                };
                let cur = b[c];
                let mut next = cur;
                if let Some(l) = x_lo
                    && l > next.lo
                {
                    next.lo = l;
                }
                if let Some(h) = x_hi
                    && next.hi.is_none_or(|cur_h| h < cur_h)
                {
                    next.hi = Some(h);
                }
                if next != cur {
                    b[c] = next;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    b
}

/// The range of `k · x` for `x` in `b` (`None`: unbounded on that side); `k` is ±1.
fn term_range(b: Bounds, k: i64) -> (Option<i64>, Option<i64>) {
    if k > 0 {
        (Some(k * b.lo), b.hi.map(|h| k * h))
    } else {
        (b.hi.map(|h| k * h), Some(k * b.lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts `values` and their published total.
    fn parts_and_total(values: &[i64]) -> (System, Vec<usize>) {
        let mut s = System::default();
        let cells: Vec<usize> = values.iter().map(|&v| s.cell(v, Kind::Shown)).collect();
        let total = s.cell(values.iter().sum(), Kind::Shown);
        let mut eq: Vec<(usize, i64)> = cells.iter().map(|&c| (c, 1)).collect();
        eq.push((total, -1));
        assert!(s.equation(eq));
        (s, cells)
    }

    #[test]
    fn a_lone_small_part_of_a_published_total_gets_the_smallest_partner() {
        let (s, cells) = parts_and_total(&[2, 30, 7]);
        let p = protect(&s, 5);
        assert_eq!(
            cells.iter().map(|&c| p.hidden[c]).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(p.secondary[cells[2]] && !p.secondary[cells[0]]);
        assert!(p.exposed.is_empty());
    }

    #[test]
    fn two_small_parts_that_sum_small_need_a_third() {
        // 1 + 1 = 2 beside 40 and 50: the two 1s alone would be pinned (each is at least
        // 1 by its symbol, and they add up to 2), and on arithmetic alone each is in
        // 0..2, not small enough to count as narrowed; the symbol audit asks for more.
        let (s, cells) = parts_and_total(&[1, 1, 40, 50]);
        let p = protect(&s, 5);
        assert_eq!(
            cells.iter().map(|&c| p.hidden[c]).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn differencing_two_tables_is_caught() {
        // all = a + b per row; a row of b is 3, and both a's and all's rows are shown:
        // all − a gives the 3. Protection hides a partner in the same equation.
        let mut s = System::default();
        let all = s.cell(194, Kind::Shown);
        let a = s.cell(190, Kind::Shown);
        let b = s.cell(4, Kind::Shown);
        assert!(s.equation(vec![(all, 1), (a, -1), (b, -1)]));
        let p = protect(&s, 5);
        assert!(p.hidden[b] && (p.hidden[a] || p.hidden[all]));
        let plain = intervals(&s, &p.hidden, |_| Bounds { lo: 0, hi: None });
        assert!(plain[b].hi.is_none_or(|h| h >= 5), "{:?}", plain[b]);
    }

    #[test]
    fn an_equation_that_does_not_hold_is_not_added() {
        let mut s = System::default();
        let x = s.cell(3, Kind::Shown);
        let y = s.cell(4, Kind::Shown);
        assert!(!s.equation(vec![(x, 1), (y, -1)]));
        assert_eq!(s.equations(), 0);
    }

    #[test]
    fn a_chain_through_unpublished_cells_is_followed() {
        // NIL 1 (3) and NIL 2 (40) lie in Municipio A (43, shown): the unpublished
        // interior cells link them; with NIL 2 shown, A − NIL 2 = NIL 1.
        let mut s = System::default();
        let nil1 = s.cell(3, Kind::Shown);
        let nil2 = s.cell(40, Kind::Shown);
        let mun = s.cell(43, Kind::Shown);
        let x1 = s.cell(3, Kind::Unpublished);
        let x2 = s.cell(40, Kind::Unpublished);
        assert!(s.equation(vec![(nil1, 1), (x1, -1)]));
        assert!(s.equation(vec![(nil2, 1), (x2, -1)]));
        assert!(s.equation(vec![(mun, 1), (x1, -1), (x2, -1)]));
        let only_small: Vec<bool> = (0..s.len()).map(|c| c == nil1).collect();
        assert_eq!(audit(&s, &only_small, &vec![false; s.len()], 5), vec![nil1]);
        let p = protect(&s, 5);
        assert!(p.hidden[nil1] && p.exposed.is_empty());
        assert!(p.hidden[nil2] || p.hidden[mun]);
    }

    #[test]
    fn zero_is_never_hidden_and_a_total_minus_shown_parts_gets_a_partner() {
        // 3 + 0 + 9 = 12, all shown but the 3: the zero is never a partner, the 9 is.
        let mut s = System::default();
        let small = s.cell(3, Kind::Shown);
        let zero = s.cell(0, Kind::Shown);
        let total = s.cell(12, Kind::Shown);
        let other = s.cell(9, Kind::Shown);
        assert!(s.equation(vec![(small, 1), (zero, 1), (other, 1), (total, -1)]));
        let p = protect(&s, 5);
        assert!(p.hidden[small] && !p.hidden[zero]);
        assert!(p.hidden[other], "the 9 is the partner");
        assert!(p.exposed.is_empty());
    }

    #[test]
    fn parts_are_protected_apart() {
        let (mut s, _) = parts_and_total(&[2, 30, 7]);
        let lone = s.cell(3, Kind::Shown);
        assert_eq!(s.parts().len(), 2);
        let p = protect(&s, 5);
        assert!(p.hidden[lone] && p.exposed.is_empty());
    }
}
