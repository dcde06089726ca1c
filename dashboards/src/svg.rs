//! Inline SVG charts: vertical bars, horizontal bars, lines with a target, heatmaps.
//!
//! Each function returns one `<svg role="img">` element carrying its own `<title>`
//! and `<desc>` (the text alternative), sized by its view box so it scales to the page
//! and prints crisply. Colours are the Okabe–Ito colour-blind-safe palette; every
//! series also differs by shape or dash, not colour alone. Missing or suppressed values
//! are drawn as gaps (bars) or hatched cells (heatmaps), never as zero; a heatmap tells
//! a small suppressed cell (striped, `<5`) from one withheld as its partner (checked,
//! `c`), by pattern and by text.

use crate::data::Hidden;
use std::fmt::Write as _;

/// Okabe–Ito colours used for series, in order (all ≥ 3:1 against white).
pub const PALETTE: [&str; 5] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8C6D00"];
/// Text and axis colour (contrast 16:1 on white).
pub const INK: &str = "#1a1a1a";
/// Gridline colour.
pub const GRID: &str = "#d0d0d0";
/// Viridis, five classes, light to dark: a sequential, colour-blind-safe scale.
pub const SEQUENTIAL: [&str; 5] = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"];

/// One data series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// One value per category; `None` is a gap.
    pub values: Vec<Option<f64>>,
}

/// One cell of a heatmap: a value, or why disclosure control hid it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// A value shown.
    Value(f64),
    /// Hidden by disclosure control.
    Hidden(Hidden),
}

/// The sum of two cells: a sum with a hidden part is hidden; it is `Small` only when
/// the other part is a known 0 (else its value may be large: `Partner`).
impl std::ops::Add for Mark {
    type Output = Mark;
    fn add(self, other: Mark) -> Mark {
        match (self, other) {
            (Mark::Value(a), Mark::Value(b)) => Mark::Value(a + b),
            (Mark::Value(z), Mark::Hidden(Hidden::Small))
            | (Mark::Hidden(Hidden::Small), Mark::Value(z))
                if z == 0.0 =>
            {
                Mark::Hidden(Hidden::Small)
            }
            _ => Mark::Hidden(Hidden::Partner),
        }
    }
}

impl Mark {
    /// The value, if shown.
    pub fn value(self) -> Option<f64> {
        match self {
            Mark::Value(v) => Some(v),
            Mark::Hidden(_) => None,
        }
    }
}

/// The texts of hidden cells: a small one (`<5`) and a withheld partner (`c`).
#[derive(Debug, Clone, Copy)]
pub struct HiddenLabels<'a> {
    /// For [`Hidden::Small`], e.g. "suppressed (<5)".
    pub small: &'a str,
    /// For [`Hidden::Partner`], e.g. "withheld (c)".
    pub partner: &'a str,
}

/// Escapes text for HTML and SVG content and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten.
pub fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p * 1.000_001 {
            return m * p;
        }
    }
    10.0 * p
}

fn open_svg(out: &mut String, id: &str, w: f64, h: f64, title: &str, desc: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-t {id}-d" font-family="inherit" font-size="12"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(desc)
    );
}

fn y_axis(
    out: &mut String,
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    max: f64,
    fmt: &dyn Fn(f64) -> String,
) {
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let y = top + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            out,
            r#"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text>"#,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
}

fn legend(out: &mut String, x: f64, y: f64, series: &[Series], lines: bool) {
    let mut cx = x;
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        if lines {
            let _ = write!(
                out,
                r#"<line x1="{cx:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="3" stroke-dasharray="{}"/>"#,
                cx + 18.0,
                y - 4.0,
                y - 4.0,
                dash(i)
            );
        } else {
            let _ = write!(
                out,
                r#"<rect x="{cx:.1}" y="{:.1}" width="12" height="12" fill="{c}"/>"#,
                y - 10.0
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{y:.1}" fill="{INK}">{}</text>"#,
            cx + 22.0,
            esc(&s.name)
        );
        cx += 34.0 + 7.0 * s.name.chars().count() as f64;
    }
}

fn dash(i: usize) -> &'static str {
    ["none", "6 3", "2 3", "8 3 2 3", "1 2"][i % 5]
}

/// Grouped vertical bars, one group per label; a `None` value (hidden by disclosure
/// control) is a hatched stub on the axis, never a zero.
pub fn bar_chart(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let (w, h) = (720.0, 300.0);
    let (left, right, top, bottom) = (64.0, 12.0, 28.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |a, &b| a.max(b)),
    );
    let mut o = String::new();
    open_svg(&mut o, id, w, h, title, desc);
    o.push_str(&hatch_pattern(&format!("{id}-hatch")));
    y_axis(&mut o, left, top, plot_w, plot_h, max, fmt);
    let n = labels.len().max(1) as f64;
    let group = plot_w / n;
    let ns = series.len().max(1) as f64;
    let bar = (group * 0.8 / ns).max(1.0);
    for (g, label) in labels.iter().enumerate() {
        let gx = left + group * g as f64 + group * 0.1;
        for (si, s) in series.iter().enumerate() {
            if s.values.get(g).is_some_and(Option::is_none) {
                // Hidden by disclosure control: a hatched stub on the axis, so the gap
                // is not read as zero (the chart's data table says why).
                let _ = write!(
                    o,
                    r#"<rect class="bar-hidden" x="{:.1}" y="{:.1}" width="{:.1}" height="8" fill="url(#{id}-hatch)" stroke="{INK}" stroke-width="0.5"><title>{}: –</title></rect>"#,
                    gx + bar * si as f64,
                    top + plot_h - 8.0,
                    bar,
                    esc(&format!("{label} · {}", s.name)),
                );
            }
            if let Some(v) = s.values.get(g).copied().flatten() {
                let bh = plot_h * v / max;
                let _ = write!(
                    o,
                    r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    gx + bar * si as f64,
                    top + plot_h - bh,
                    bar,
                    bh,
                    PALETTE[si % PALETTE.len()],
                    esc(&format!("{label} · {}", s.name)),
                    esc(&fmt(v))
                );
            }
        }
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">{}</text>"#,
            left + group * (g as f64 + 0.5),
            top + plot_h + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        o,
        r#"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{INK}"/>"#,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    legend(&mut o, left, 16.0, series, false);
    o.push_str("</svg>");
    o
}

/// Horizontal grouped bars, one group per label (long category names read well).
pub fn hbar_chart(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let left = 10.0 + 7.0 * labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as f64;
    let row = 14.0 * series.len().max(1) as f64 + 10.0;
    let (w, top) = (720.0, 30.0);
    let h = top + row * labels.len() as f64 + 24.0;
    let plot_w = w - left - 70.0;
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |a, &b| a.max(b)),
    );
    let mut o = String::new();
    open_svg(&mut o, id, w, h, title, desc);
    for (g, label) in labels.iter().enumerate() {
        let gy = top + row * g as f64;
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text>"#,
            left - 6.0,
            gy + row / 2.0,
            esc(label)
        );
        for (si, s) in series.iter().enumerate() {
            let y = gy + 4.0 + 14.0 * si as f64;
            match s.values.get(g).copied().flatten() {
                Some(v) => {
                    let bw = plot_w * v / max;
                    let _ = write!(
                        o,
                        r#"<rect class="bar" x="{left:.1}" y="{y:.1}" width="{bw:.1}" height="12" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" fill="{INK}">{}</text>"#,
                        PALETTE[si % PALETTE.len()],
                        esc(&format!("{label} · {}", s.name)),
                        esc(&fmt(v)),
                        left + bw + 4.0,
                        y + 10.0,
                        esc(&fmt(v))
                    );
                }
                None => {
                    let _ = write!(
                        o,
                        r#"<text x="{:.1}" y="{:.1}" fill="{INK}">&lt;5</text>"#,
                        left + 4.0,
                        y + 10.0
                    );
                }
            }
        }
    }
    let _ = write!(
        o,
        r#"<line x1="{left:.1}" x2="{left:.1}" y1="{top}" y2="{:.1}" stroke="{INK}"/>"#,
        h - 24.0
    );
    legend(&mut o, left, 16.0, series, false);
    o.push_str("</svg>");
    o
}

/// Lines over categories, with an optional dashed horizontal target line.
#[allow(clippy::too_many_arguments)]
pub fn line_chart(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    target: Option<(f64, &str)>,
    max: Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let (w, h) = (720.0, 300.0);
    let (left, right, top, bottom) = (64.0, 12.0, 28.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let data_max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(target.map(|t| t.0).unwrap_or(0.0), |a: f64, &b| a.max(b));
    let max = max.unwrap_or_else(|| nice_max(data_max));
    let mut o = String::new();
    open_svg(&mut o, id, w, h, title, desc);
    o.push_str(&hatch_pattern(&format!("{id}-hatch")));
    y_axis(&mut o, left, top, plot_w, plot_h, max, fmt);
    let n = labels.len().max(1) as f64;
    let step = plot_w / n;
    let x = |i: usize| left + step * (i as f64 + 0.5);
    let y = |v: f64| top + plot_h - plot_h * (v / max).clamp(0.0, 1.0);
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">{}</text>"#,
            x(i),
            top + plot_h + 16.0,
            esc(label)
        );
    }
    if let Some((t, label)) = target {
        let _ = write!(
            o,
            r#"<line class="target" x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{INK}" stroke-width="1.5" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}" font-weight="bold">{}</text>"#,
            left + plot_w,
            y(t),
            y(t),
            left + plot_w - 4.0,
            y(t) - 5.0,
            esc(label)
        );
    }
    for (si, s) in series.iter().enumerate() {
        let c = PALETTE[si % PALETTE.len()];
        let mut d = String::new();
        let mut pen = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(d, "{}{:.1},{:.1}", if pen { 'L' } else { 'M' }, x(i), y(*v));
                    pen = true;
                }
                None => pen = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                o,
                r#"<path class="series" d="{d}" fill="none" stroke="{c}" stroke-width="2.5" stroke-dasharray="{}"/>"#,
                dash(si)
            );
        }
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{}: {}</title></circle>"#,
                    x(i),
                    y(*v),
                    esc(&format!(
                        "{} · {}",
                        labels.get(i).map(String::as_str).unwrap_or(""),
                        s.name
                    )),
                    esc(&fmt(*v))
                );
            }
        }
    }
    let _ = write!(
        o,
        r#"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{INK}"/>"#,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    legend(&mut o, left, 16.0, series, true);
    o.push_str("</svg>");
    o
}

/// A grid of cells coloured by value (rows × columns); hidden cells are hatched:
/// striped when small (`<5`), checked when withheld as a partner (`c`).
#[allow(clippy::too_many_arguments)]
pub fn heatmap(
    id: &str,
    title: &str,
    desc: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[Vec<Mark>],
    fmt: &dyn Fn(f64) -> String,
    hidden: HiddenLabels<'_>,
) -> String {
    let (left, top) = (48.0, 30.0);
    let cell_w = 27.0;
    let cell_h = 26.0;
    let w = left + cell_w * col_labels.len() as f64 + 10.0;
    let h = top + cell_h * row_labels.len() as f64 + 72.0;
    let max = values
        .iter()
        .flatten()
        .filter_map(|m| m.value())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut o = String::new();
    open_svg(&mut o, id, w, h, title, desc);
    o.push_str(&hatch_pattern(&format!("{id}-hatch")));
    o.push_str(&check_pattern(&format!("{id}-check")));
    for (j, c) in col_labels.iter().enumerate() {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}" font-size="10">{}</text>"#,
            left + cell_w * (j as f64 + 0.5),
            top - 6.0,
            esc(c)
        );
    }
    for (i, r) in row_labels.iter().enumerate() {
        let y = top + cell_h * i as f64;
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text>"#,
            left - 6.0,
            y + cell_h / 2.0 + 4.0,
            esc(r)
        );
        for (j, col_label) in col_labels.iter().enumerate() {
            let x = left + cell_w * j as f64;
            let v = values
                .get(i)
                .and_then(|row| row.get(j))
                .copied()
                .unwrap_or(Mark::Value(0.0));
            let (fill, label) = match v {
                Mark::Value(v) => (
                    SEQUENTIAL[class_of(v, max)].to_string(),
                    format!("{r} {col_label}: {}", fmt(v)),
                ),
                Mark::Hidden(Hidden::Small) => (
                    format!("url(#{id}-hatch)"),
                    format!("{r} {col_label}: {}", hidden.small),
                ),
                Mark::Hidden(Hidden::Partner) => (
                    format!("url(#{id}-check)"),
                    format!("{r} {col_label}: {}", hidden.partner),
                ),
            };
            let _ = write!(
                o,
                r##"<rect class="cell" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#ffffff"><title>{}</title></rect>"##,
                cell_w,
                cell_h,
                esc(&label)
            );
        }
    }
    // Legend: the five classes with their lower bounds.
    let ly = top + cell_h * row_labels.len() as f64 + 18.0;
    for (k, c) in SEQUENTIAL.iter().enumerate() {
        let lo = max * k as f64 / 5.0;
        let x = left + 96.0 * k as f64;
        let _ = write!(
            o,
            r#"<rect x="{x:.1}" y="{ly:.1}" width="14" height="14" fill="{c}" stroke="{INK}" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" fill="{INK}">≥ {}</text>"#,
            x + 18.0,
            ly + 11.0,
            esc(&fmt(lo))
        );
    }
    // Second legend line: the two kinds of hidden cell.
    let ly = ly + 22.0;
    for (k, (pattern, text)) in [("hatch", hidden.small), ("check", hidden.partner)]
        .into_iter()
        .enumerate()
    {
        let x = left + 192.0 * k as f64;
        let _ = write!(
            o,
            r#"<rect x="{x:.1}" y="{ly:.1}" width="14" height="14" fill="url(#{id}-{pattern})" stroke="{INK}" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" fill="{INK}">{}</text>"#,
            x + 18.0,
            ly + 11.0,
            esc(text)
        );
    }
    o.push_str("</svg>");
    o
}

/// Which of the five sequential classes `v` falls in, on equal intervals of `[0, max]`.
pub fn class_of(v: f64, max: f64) -> usize {
    if max <= 0.0 {
        return 0;
    }
    (((v / max) * 5.0).floor() as usize).min(4)
}

/// A `<defs>` with a grey diagonal hatch pattern (for suppressed or missing values).
pub fn hatch_pattern(id: &str) -> String {
    format!(
        r##"<defs><pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#6b6b6b" stroke-width="2"/></pattern></defs>"##
    )
}

/// A `<defs>` with a grey check pattern (for values withheld as the partner of a small
/// one), distinct from [`hatch_pattern`] without relying on colour.
pub fn check_pattern(id: &str) -> String {
    format!(
        r##"<defs><pattern id="{id}" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#eeeeee"/><rect width="4" height="4" fill="#6b6b6b"/><rect x="4" y="4" width="4" height="4" fill="#6b6b6b"/></pattern></defs>"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1234.0), 2000.0);
        assert_eq!(nice_max(0.85), 1.0);
        assert_eq!(nice_max(220.0), 250.0);
    }

    #[test]
    fn bars_skip_missing_values_and_escape_labels() {
        let s = Series {
            name: "a<b".into(),
            values: vec![Some(10.0), None, Some(5.0)],
        };
        let svg = bar_chart(
            "x",
            "T",
            "D",
            &["j".into(), "f".into(), "m".into()],
            &[s],
            &|v| format!("{v}"),
        );
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        // The hidden value is a hatched stub, not a zero-height bar.
        assert_eq!(svg.matches("class=\"bar-hidden\"").count(), 1);
        assert!(svg.contains("fill=\"url(#x-hatch)\"") && svg.contains("id=\"x-hatch\""));
        assert!(svg.contains("<title>f · a&lt;b: –</title>"));
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains(r#"role="img""#) && svg.contains("<title id=\"x-t\">T</title>"));
    }

    #[test]
    fn heatmap_tells_small_from_withheld_cells() {
        let values = vec![vec![
            Mark::Value(40.0),
            Mark::Hidden(Hidden::Small),
            Mark::Hidden(Hidden::Partner),
        ]];
        let svg = heatmap(
            "h",
            "T",
            "D",
            &["Sun".into()],
            &["07".into(), "08".into(), "09".into()],
            &values,
            &|v| format!("{v}"),
            HiddenLabels {
                small: "suppressed (<5)",
                partner: "withheld (c)",
            },
        );
        assert_eq!(svg.matches("class=\"cell\"").count(), 3);
        assert!(
            svg.contains("<title>Sun 08: suppressed (&lt;5)</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>Sun 09: withheld (c)</title>"), "{svg}");
        assert!(svg.contains("<title>Sun 07: 40</title>"), "{svg}");
        // Cells use the pattern of their kind; the legend shows both.
        assert_eq!(svg.matches("fill=\"url(#h-hatch)\"").count(), 2);
        assert_eq!(svg.matches("fill=\"url(#h-check)\"").count(), 2);
    }

    #[test]
    fn sums_with_a_hidden_part() {
        let small = Mark::Hidden(Hidden::Small);
        let partner = Mark::Hidden(Hidden::Partner);
        assert_eq!(Mark::Value(2.0) + Mark::Value(3.0), Mark::Value(5.0));
        assert_eq!(Mark::Value(0.0) + small, small);
        assert_eq!(small + Mark::Value(0.0), small);
        // 3 + 100 is not "fewer than 5"; two small parts may add up to 5 or more.
        assert_eq!(Mark::Value(100.0) + small, partner);
        assert_eq!(small + small, partner);
        assert_eq!(partner + Mark::Value(0.0), partner);
    }

    #[test]
    fn heatmap_classes() {
        assert_eq!(class_of(0.0, 10.0), 0);
        assert_eq!(class_of(10.0, 10.0), 4);
        assert_eq!(class_of(4.0, 10.0), 2);
    }
}
