//! The registry of named questions: one entry per `queries/sql/<name>.sql`, with its
//! titles (English, Italian), what it answers, its key columns and, for disclosure
//! control, which columns are counts, which are built on which counts, and along which
//! keys the cells add up to a published total.

/// One named question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryInfo {
    /// Name, also the SQL file name (`queries/sql/<name>.sql`).
    pub name: &'static str,
    /// Title in English.
    pub title_en: &'static str,
    /// Title in Italian.
    pub title_it: &'static str,
    /// What the question answers, one sentence.
    pub description: &'static str,
    /// Columns identifying a row; rows come sorted by them.
    pub key_columns: &'static [&'static str],
    /// The SQL text (with `{{births_year}}`, `{{callback_target_hours}}` placeholders).
    pub sql: &'static str,
    /// Columns holding counts of families, contacts, needs…: subject to suppression.
    pub counts: &'static [&'static str],
    /// Columns computed from counts (rates, shares, percentiles), with the counts they
    /// are built on: suppressed when any of those is.
    pub derived: &'static [(&'static str, &'static [&'static str])],
    /// Key columns along which the cells of a count add up to a total that is (or could
    /// be) published: secondary suppression works within each such group.
    pub additive_keys: &'static [&'static str],
    /// Count columns of one row that add up to another count of the row
    /// (parts, total): secondary suppression works within them too.
    pub row_parts: &'static [(&'static [&'static str], &'static str)],
    /// Whether its counts are broken down by territory, a family characteristic or a
    /// need category, and so protected across the release (contract 1.1); counts by
    /// time, source or channel alone are published as they are.
    pub protected: bool,
}

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("../sql/", $name, ".sql"))
    };
}

const NIL_RATES: &[(&str, &[&str])] = &[
    ("unmet_share", &["unmet", "needs"]),
    ("unmet_per_1000_births", &["unmet"]),
    ("ci_low", &["unmet"]),
    ("ci_high", &["unmet"]),
];

const RISK_RATES: &[(&str, &[&str])] = &[
    ("high_risk_share", &["high_risk", "families"]),
    ("families_per_1000_births", &["families"]),
    ("high_risk_per_1000_births", &["high_risk"]),
    ("ci_low", &["high_risk"]),
    ("ci_high", &["high_risk"]),
];

static REGISTRY: &[QueryInfo] = &[
    QueryInfo {
        name: "contacts_by_month",
        title_en: "Contacts by month and channel",
        title_it: "Contatti per mese e canale",
        description: "Contacts (calls and chats) per month, line and channel, the families behind them and how many came out of service hours.",
        key_columns: &["month", "source", "channel"],
        sql: sql!("contacts_by_month"),
        counts: &["contacts", "families", "out_of_hours"],
        derived: &[("out_of_hours_share", &["out_of_hours", "contacts"])],
        additive_keys: &["month", "channel"],
        row_parts: &[],
        protected: false,
    },
    QueryInfo {
        name: "service_levels_by_month",
        title_en: "Phone service levels by month",
        title_it: "Livelli di servizio telefonico per mese",
        description: "Answer and abandonment rates, speed of answer (median, p90) and calls answered within 30 s against the 85% target, per month.",
        key_columns: &["month", "source"],
        sql: sql!("service_levels_by_month"),
        counts: &["calls", "answered", "abandoned", "answered_within_30s"],
        derived: &[
            ("answer_rate", &["answered", "calls"]),
            ("abandonment_rate", &["abandoned", "calls"]),
            ("wait_p50_s", &["answered"]),
            ("wait_p90_s", &["answered"]),
            ("service_level", &["answered_within_30s", "calls"]),
        ],
        additive_keys: &["month"],
        row_parts: &[],
        protected: false,
    },
    QueryInfo {
        name: "escalations_by_month",
        title_en: "Escalations and callbacks by month",
        title_it: "Invii al secondo livello e richiamate per mese",
        description: "Contacts escalated to the second level, first-level resolution (target 98%), referrals, time to the first reached callback and the share reached within the target (goal 95%), per month.",
        key_columns: &["month", "source"],
        sql: sql!("escalations_by_month"),
        counts: &[
            "contacts",
            "escalated",
            "referrals",
            "referrals_reached",
            "callback_within_target",
        ],
        derived: &[
            ("escalation_rate", &["escalated", "contacts"]),
            ("first_level_resolution", &["escalated", "contacts"]),
            ("callback_p50_h", &["referrals_reached"]),
            ("callback_p90_h", &["referrals_reached"]),
            (
                "callback_within_target_share",
                &["callback_within_target", "referrals"],
            ),
        ],
        additive_keys: &["month"],
        row_parts: &[],
        protected: false,
    },
    QueryInfo {
        name: "contacts_by_weekday_hour",
        title_en: "Contacts by weekday and hour",
        title_it: "Contatti per giorno della settimana e ora",
        description: "Contacts per ISO weekday (1 = Monday) and hour of the day, Europe/Rome time, all 168 cells.",
        key_columns: &["weekday", "hour"],
        sql: sql!("contacts_by_weekday_hour"),
        counts: &["contacts"],
        derived: &[],
        additive_keys: &["weekday", "hour"],
        row_parts: &[],
        protected: false,
    },
    QueryInfo {
        name: "needs_by_category",
        title_en: "Needs by category and stage",
        title_it: "Bisogni per categoria e fase",
        description: "Needs recorded per category and the family's stage, and how many were met, unmet, declined or are still open.",
        key_columns: &["category", "stage"],
        sql: sql!("needs_by_category"),
        counts: &["needs", "met", "unmet", "declined", "open"],
        derived: &[("unmet_share", &["unmet", "needs"])],
        additive_keys: &["category", "stage"],
        row_parts: &[(&["met", "unmet", "declined", "open"], "needs")],
        protected: true,
    },
    QueryInfo {
        name: "unmet_needs_by_reason",
        title_en: "Unmet needs by reason",
        title_it: "Bisogni non soddisfatti per motivo",
        description: "Unmet needs per category and reason (no_resource, waiting_list, not_eligible, service_unavailable, unreachable, no_callback, missed_appointment).",
        key_columns: &["category", "reason"],
        sql: sql!("unmet_needs_by_reason"),
        counts: &["needs"],
        derived: &[],
        additive_keys: &["category", "reason"],
        row_parts: &[],
        protected: true,
    },
    QueryInfo {
        name: "unmet_needs_by_nil",
        title_en: "Unmet needs by neighbourhood (NIL)",
        title_it: "Bisogni non soddisfatti per quartiere (NIL)",
        description: "Needs and unmet needs per Milan NIL, per 1,000 live births with a 95% exact Poisson interval.",
        key_columns: &["comune", "nil"],
        sql: sql!("unmet_needs_by_nil"),
        counts: &["needs", "unmet"],
        derived: NIL_RATES,
        additive_keys: &["nil"],
        row_parts: &[],
        protected: true,
    },
    QueryInfo {
        name: "unmet_needs_by_municipio",
        title_en: "Unmet needs by Municipio",
        title_it: "Bisogni non soddisfatti per Municipio",
        description: "Needs and unmet needs per Milan Municipio, per 1,000 live births with a 95% exact Poisson interval.",
        key_columns: &["comune", "municipio"],
        sql: sql!("unmet_needs_by_municipio"),
        counts: &["needs", "unmet"],
        derived: NIL_RATES,
        additive_keys: &["municipio"],
        row_parts: &[],
        protected: true,
    },
    QueryInfo {
        name: "isolation_risk_flags",
        title_en: "Isolation-risk flags",
        title_it: "Indicatori di rischio di isolamento",
        description: "Families in contact carrying each isolation-risk flag, and their share of all families in contact.",
        key_columns: &["flag"],
        sql: sql!("isolation_risk_flags"),
        counts: &["families", "of_families"],
        derived: &[("share", &["families", "of_families"])],
        additive_keys: &[],
        row_parts: &[],
        protected: true,
    },
    QueryInfo {
        name: "isolation_risk_by_nil",
        title_en: "Families at risk of isolation by neighbourhood (NIL)",
        title_it: "Famiglie a rischio di isolamento per quartiere (NIL)",
        description: "Families in contact and high-risk families per Milan NIL, per 1,000 live births with a 95% exact Poisson interval.",
        key_columns: &["comune", "nil"],
        sql: sql!("isolation_risk_by_nil"),
        counts: &["families", "high_risk"],
        derived: RISK_RATES,
        additive_keys: &["nil"],
        row_parts: &[],
        protected: true,
    },
    QueryInfo {
        name: "isolation_risk_by_municipio",
        title_en: "Families at risk of isolation by Municipio",
        title_it: "Famiglie a rischio di isolamento per Municipio",
        description: "Families in contact and high-risk families per Milan Municipio, per 1,000 live births with a 95% exact Poisson interval.",
        key_columns: &["comune", "municipio"],
        sql: sql!("isolation_risk_by_municipio"),
        counts: &["families", "high_risk"],
        derived: RISK_RATES,
        additive_keys: &["municipio"],
        row_parts: &[],
        protected: true,
    },
];

/// Every named question, in a stable order.
pub fn registry() -> &'static [QueryInfo] {
    REGISTRY
}

/// The question called `name`.
pub fn find(name: &str) -> Option<&'static QueryInfo> {
    REGISTRY.iter().find(|q| q.name == name)
}

/// The registered name closest to `name` (edit distance), for "did you mean".
pub fn closest(name: &str) -> Option<&'static str> {
    REGISTRY
        .iter()
        .map(|q| (levenshtein(name, q.name), q.name))
        .min()
        .filter(|(d, n)| *d <= n.len() / 2 + 2)
        .map(|(_, n)| n)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_sql_file_is_registered_and_every_entry_has_its_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let files: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".sql")
                    .map(str::to_string)
            })
            .collect();
        let names: BTreeSet<String> = registry().iter().map(|q| q.name.to_string()).collect();
        assert_eq!(files, names, "queries/sql/*.sql and the registry disagree");
        for q in registry() {
            let text = std::fs::read_to_string(dir.join(format!("{}.sql", q.name))).unwrap();
            assert_eq!(text, q.sql, "{}: embedded SQL is stale", q.name);
            assert!(
                text.starts_with(&format!("-- {}:", q.name)),
                "{}: the file must open with a header comment naming it",
                q.name
            );
            assert!(
                text.contains("Parameters:"),
                "{}: header must list its parameters",
                q.name
            );
            for k in q.key_columns {
                assert!(
                    text.contains(k),
                    "{}: key column {k} not in its SQL",
                    q.name
                );
            }
            for k in q.additive_keys {
                assert!(
                    q.key_columns.contains(k),
                    "{}: additive key {k} is not a key",
                    q.name
                );
            }
        }
    }

    #[test]
    fn closest_names_are_suggested() {
        assert_eq!(closest("contacts_by_mnth"), Some("contacts_by_month"));
        assert_eq!(
            closest("isolation_risk_by_nl"),
            Some("isolation_risk_by_nil")
        );
        assert_eq!(closest("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), None);
    }
}
