//! A synthetic family survey, like the one Melzo ran with 87 families in 2022.
//!
//! The CSV format is fixed and documented in `docs/SURVEY.md`; `culla survey` (in
//! culla-dashboards) reads it and compares its need shares with the contact line's.
//! Respondents are numbered 1..n: no personal data. The shares are those of surveyed
//! families, who differ from families who call: socialisation and psychological needs
//! are reported more often in a survey, economic and documents needs less (see
//! docs/SURVEY.md for every rate).

use std::io::{self, Write};

use culla_schemas::reference;

use crate::rng::{Cumulative, Rng};

/// The header, in order.
pub const HEADER: &str = "family_id,stage,economic,health,education,childcare,socialisation,documents,housing,work,psychological,violence,other,single_parent,no_family_network,language_barrier,arrived_last_2y,first_child,no_pediatrician,nil";

/// Share of surveyed families reporting each need, in header order.
pub const NEED_SHARES: [f64; 11] = [
    0.30, 0.40, 0.22, 0.45, 0.38, 0.10, 0.12, 0.15, 0.24, 0.03, 0.06,
];

/// Share of families with each isolation item, in header order.
pub const ISOLATION_SHARES: [f64; 6] = [0.09, 0.30, 0.15, 0.10, 0.50, 0.06];

/// Probability that a need or isolation answer is left blank.
pub const NON_RESPONSE: f64 = 0.04;

/// What survey to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyConfig {
    /// Number of respondent families.
    pub families: u32,
    /// Seed: the same seed gives the same file.
    pub seed: u64,
    /// Fill the `nil` column with a Milan NIL drawn in proportion to births
    /// (a Melzo-like survey leaves it empty).
    pub with_nil: bool,
}

impl Default for SurveyConfig {
    fn default() -> Self {
        SurveyConfig {
            families: 87,
            seed: 7,
            with_nil: false,
        }
    }
}

/// Writes the survey CSV (UTF-8, comma-separated, `\n` line ends).
pub fn write_survey_csv(cfg: &SurveyConfig, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng::stream(cfg.seed, u64::MAX - 1);
    let year = reference::births_year_for(2024);
    let rows: Vec<(i32, i64)> = reference::nil_years()
        .iter()
        .filter(|r| r.year == year)
        .map(|r| (r.nil, r.births))
        .collect();
    let nils = Cumulative::new(rows.iter().map(|r| r.1 as f64));
    writeln!(out, "{HEADER}")?;
    let answer = |rng: &mut Rng, p: f64| -> &'static str {
        if rng.chance(NON_RESPONSE) {
            ""
        } else if rng.chance(p) {
            "yes"
        } else {
            "no"
        }
    };
    for id in 1..=cfg.families {
        let mut row: Vec<String> = Vec::with_capacity(20);
        row.push(id.to_string());
        let stage = ["pregnancy", "0-12m", "12-36m", ""][rng.weighted(&[0.2, 0.4, 0.35, 0.05])];
        row.push(stage.to_string());
        for p in NEED_SHARES {
            row.push(answer(&mut rng, p).to_string());
        }
        for p in ISOLATION_SHARES {
            row.push(answer(&mut rng, p).to_string());
        }
        let nil = if cfg.with_nil && !rows.is_empty() {
            rows[nils.sample(&mut rng)].0.to_string()
        } else {
            String::new()
        };
        row.push(nil);
        writeln!(out, "{}", row.join(","))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_header_width() {
        let mut buf = Vec::new();
        write_survey_csv(&SurveyConfig::default(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 88);
        assert_eq!(lines[0], HEADER);
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), 20, "{l}");
        }
        assert!(lines[87].starts_with("87,"));
    }
}
