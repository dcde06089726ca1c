//! Properties of a simulated year, checked from the output alone.
//!
//! Every figure is recomputed here from the NDJSON lines (parsed with
//! `culla_schemas::parse_event`) and the reference births, not taken from the
//! simulator's internals, so a change in the model that breaks a property fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc, Weekday};
use culla_schemas::event::{ClosingOutcome, NeedCategory, NeedOutcome};
use culla_schemas::{Event, EventType, Payload, Reason, parse_event, reference};
use culla_simulate::{SimConfig, SimLine, SourceLine, simulate};

fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().expect("fixed instant")
}

/// The acceptance year: 2024, seed 7, Milan.
static YEAR: LazyLock<Vec<SimLine>> = LazyLock::new(|| simulate(&SimConfig::default()));

static EVENTS: LazyLock<Vec<Event>> = LazyLock::new(|| {
    YEAR.iter()
        .map(|l| {
            parse_event(&l.bytes, now()).unwrap_or_else(|e| {
                panic!("invalid line {}: {e}", String::from_utf8_lossy(&l.bytes))
            })
        })
        .collect()
});

fn is_contact(e: &Event) -> bool {
    matches!(
        e.event_type(),
        EventType::CallReceived | EventType::ChatOpened
    )
}

fn contacts() -> Vec<&'static Event> {
    EVENTS.iter().filter(|e| is_contact(e)).collect()
}

#[test]
fn every_line_is_a_valid_event_in_the_year() {
    assert!(YEAR.iter().all(|l| l.valid));
    assert!(YEAR.iter().all(|l| !l.bytes.contains(&b'\n')));
    for e in EVENTS.iter() {
        assert_eq!(e.at.year(), 2024, "{}", e.event_id);
        assert_eq!(e.source, "milano-020202");
        assert_eq!(e.family.len(), 32);
    }
    let ids: BTreeSet<&str> = EVENTS.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), EVENTS.len(), "event ids are unique");
}

#[test]
fn offsets_are_those_of_europe_rome() {
    // CET (+01:00) before 31 March 2024 02:00 and after 27 October 03:00, CEST between.
    for l in YEAR.iter().step_by(97) {
        let v: serde_json::Value = serde_json::from_slice(&l.bytes).expect("json");
        let at = v["at"].as_str().expect("at");
        let month: u32 = at[5..7].parse().expect("month");
        let offset = &at[at.len() - 6..];
        match month {
            1 | 2 | 11 | 12 => assert_eq!(offset, "+01:00", "{at}"),
            4..=9 => assert_eq!(offset, "+02:00", "{at}"),
            _ => assert!(offset == "+01:00" || offset == "+02:00", "{at}"),
        }
    }
}

#[test]
fn contact_count_is_about_fifteen_thousand() {
    let n = contacts().len();
    assert!((14_000..=16_000).contains(&n), "{n} contacts");
    let distinct: BTreeSet<&str> = contacts().iter().map(|e| e.contact_id.as_str()).collect();
    assert_eq!(distinct.len(), n, "one contact id per contact");
}

/// Pearson correlation, written out.
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    sxy / (sxx * syy).sqrt()
}

#[test]
fn pearson_helper_is_right() {
    // By hand: x = 1,2,3, y = 2,4,7 → means 2 and 13/3; sxy = 5, sxx = 2, syy = 38/3;
    // r = 5 / sqrt(76/3) = 0.99339.
    let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]);
    assert!((r - 0.993_399).abs() < 1e-5, "{r}");
}

#[test]
fn contacts_per_nil_follow_births() {
    // Latest NIL of each family from its profiles (by `at`).
    let mut nil_of: BTreeMap<&str, (DateTime<FixedOffset>, Option<i32>)> = BTreeMap::new();
    for e in EVENTS.iter() {
        if let Payload::FamilyProfiled(p) = &e.payload
            && let Some(t) = &p.territory
        {
            let entry = nil_of.entry(&e.family).or_insert((e.at, t.nil));
            if e.at >= entry.0 {
                *entry = (e.at, t.nil);
            }
        }
    }
    let mut per_nil: BTreeMap<i32, f64> = BTreeMap::new();
    for c in contacts() {
        if let Some((_, Some(nil))) = nil_of.get(c.family.as_str()) {
            *per_nil.entry(*nil).or_default() += 1.0;
        }
    }
    let births: Vec<(i32, f64)> = reference::nil_years()
        .iter()
        .filter(|r| r.year == 2024)
        .map(|r| (r.nil, r.births as f64))
        .collect();
    assert_eq!(births.len(), 88);
    let x: Vec<f64> = births.iter().map(|b| b.1).collect();
    let y: Vec<f64> = births
        .iter()
        .map(|b| per_nil.get(&b.0).copied().unwrap_or(0.0))
        .collect();
    let r = pearson(&x, &y);
    assert!(r >= 0.9, "Pearson r = {r}");
    // Some families have no NIL (no territory, or Milan without NIL): reported as unknown.
    let with_nil: f64 = y.iter().sum();
    assert!(with_nil < contacts().len() as f64);
}

#[test]
fn escalation_share_is_ten_to_fifteen_percent() {
    let escalated: BTreeSet<&str> = EVENTS
        .iter()
        .filter(|e| e.event_type() == EventType::ReferralCreated)
        .map(|e| e.contact_id.as_str())
        .collect();
    let share = escalated.len() as f64 / contacts().len() as f64;
    assert!((0.10..=0.15).contains(&share), "escalation {share}");
}

#[test]
fn every_category_and_outcome_occurs() {
    let mut cats = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    let mut closings = BTreeSet::new();
    let mut types = BTreeSet::new();
    for e in EVENTS.iter() {
        types.insert(e.event_type());
        match &e.payload {
            Payload::NeedRecorded {
                category, outcome, ..
            } => {
                cats.insert(*category);
                outcomes.insert(*outcome);
            }
            Payload::ReferralClosed { outcome, .. } => {
                closings.insert(*outcome);
            }
            _ => {}
        }
    }
    assert_eq!(cats.len(), NeedCategory::ALL.len(), "{cats:?}");
    assert_eq!(outcomes.len(), NeedOutcome::ALL.len(), "{outcomes:?}");
    assert_eq!(closings.len(), ClosingOutcome::ALL.len(), "{closings:?}");
    assert!(closings.contains(&ClosingOutcome::Declined));
    assert_eq!(types.len(), EventType::ALL.len(), "{types:?}");
}

#[test]
fn some_contacts_are_out_of_hours() {
    // Outside Monday–Saturday 08:00–18:00 local time (the offset in `at` is Rome's).
    let out = contacts()
        .iter()
        .filter(|e| e.at.weekday() == Weekday::Sun || !(8..18).contains(&e.at.hour()))
        .count();
    let share = out as f64 / contacts().len() as f64;
    assert!(share > 0.0 && share < 0.2, "out of hours {share}");
}

#[test]
fn events_arrive_out_of_order_and_late() {
    let mut max_seen = EVENTS[0].at;
    let (mut late_hour, mut late_day) = (0, 0);
    for e in EVENTS.iter() {
        if e.at < max_seen - chrono::TimeDelta::hours(1) {
            late_hour += 1;
        }
        if e.at < max_seen - chrono::TimeDelta::days(1) {
            late_day += 1;
        }
        max_seen = max_seen.max(e.at);
    }
    assert!(late_hour > 10, "{late_hour} events over an hour late");
    assert!(late_day > 10, "{late_day} events over a day late");
}

#[test]
fn families_call_again_and_some_move() {
    let mut by_family: BTreeMap<&str, Vec<DateTime<FixedOffset>>> = BTreeMap::new();
    for c in contacts() {
        by_family.entry(&c.family).or_default().push(c.at);
    }
    let repeaters = by_family.values().filter(|v| v.len() >= 2).count();
    for v in by_family.values_mut() {
        v.sort();
    }
    let three_in_30 = by_family
        .values()
        .filter(|v| {
            v.windows(3)
                .any(|w| w[2] - w[0] <= chrono::TimeDelta::days(30))
        })
        .count();
    assert!(repeaters > 500, "{repeaters} families with 2+ contacts");
    assert!(
        three_in_30 > 50,
        "{three_in_30} families with 3 contacts in 30 days"
    );
    let mut territories: BTreeMap<&str, BTreeSet<Option<i32>>> = BTreeMap::new();
    for e in EVENTS.iter() {
        if let Payload::FamilyProfiled(p) = &e.payload
            && let Some(t) = &p.territory
        {
            territories.entry(&e.family).or_default().insert(t.nil);
        }
    }
    assert!(
        territories.values().any(|s| s.len() >= 2),
        "a family that moved"
    );
}

#[test]
fn callbacks_appointments_and_closings_play_out() {
    let mut created: BTreeMap<&str, DateTime<FixedOffset>> = BTreeMap::new();
    let mut first_reached: BTreeMap<&str, DateTime<FixedOffset>> = BTreeMap::new();
    let mut missed = BTreeSet::new();
    let mut booked_per_referral: BTreeMap<&str, usize> = BTreeMap::new();
    for e in EVENTS.iter() {
        match &e.payload {
            Payload::ReferralCreated {
                referral_id,
                need_ids,
                ..
            } => {
                assert!(!need_ids.is_empty());
                created.insert(referral_id, e.at);
            }
            Payload::ReferralCallback {
                referral_id,
                reached: true,
            } => {
                let r = first_reached.entry(referral_id).or_insert(e.at);
                *r = (*r).min(e.at);
            }
            Payload::AppointmentMissed { appointment_id } => {
                missed.insert(appointment_id.as_str());
            }
            Payload::AppointmentBooked {
                referral_id: Some(r),
                ..
            } => {
                *booked_per_referral.entry(r).or_default() += 1;
            }
            _ => {}
        }
    }
    let target = chrono::TimeDelta::hours(72);
    let late = first_reached
        .iter()
        .filter(|(r, t)| created.get(*r).is_some_and(|c| **t - *c > target))
        .count();
    let never = created
        .keys()
        .filter(|r| !first_reached.contains_key(*r))
        .count();
    assert!(late > 0, "some referrals reached after 72 hours");
    assert!(never > 0, "some referrals never reached");
    assert!(late + never < created.len() / 2);
    assert!(!missed.is_empty(), "missed appointments");
    assert!(
        booked_per_referral.values().any(|n| *n >= 2),
        "a rebooked appointment"
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = SimConfig {
        contacts: Some(800),
        ..SimConfig::default()
    };
    let a = simulate(&cfg);
    assert_eq!(a, simulate(&cfg));
    let b = simulate(&SimConfig {
        seed: 8,
        ..cfg.clone()
    });
    assert_ne!(a, b);
    // The first contacts of the default year are the same families as in a small run.
    assert!(!a.is_empty());
}

#[test]
fn bad_lines_cover_at_least_twelve_reasons_and_leave_valid_lines_alone() {
    let clean = SimConfig {
        contacts: Some(600),
        ..SimConfig::default()
    };
    let dirty = SimConfig {
        bad_rate: 0.05,
        ..clean.clone()
    };
    let lines = simulate(&dirty);
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    for l in &lines {
        match parse_event(&l.bytes, now()) {
            Ok(_) => assert!(l.valid, "a line marked bad is valid"),
            Err(e) => {
                assert!(!l.valid, "a line marked valid is bad: {}", e.message);
                *reasons.entry(e.reason).or_default() += 1;
            }
        }
    }
    assert!(reasons.len() >= 12, "{reasons:?}");
    let bad = lines.iter().filter(|l| !l.valid).count() as f64;
    let share = bad / lines.len() as f64;
    assert!((0.03..=0.07).contains(&share), "bad share {share}");
    let valid: Vec<SimLine> = lines.into_iter().filter(|l| l.valid).collect();
    assert_eq!(valid, simulate(&clean));
}

#[test]
fn melzo_is_a_whatsapp_line() {
    let lines = simulate(&SimConfig {
        source: SourceLine::Melzo,
        ..SimConfig::default()
    });
    let events: Vec<Event> = lines
        .iter()
        .map(|l| parse_event(&l.bytes, now()).expect("valid"))
        .collect();
    let opened: Vec<&Event> = events.iter().filter(|e| is_contact(e)).collect();
    assert_eq!(opened.len(), 600);
    assert!(opened.iter().all(|e| matches!(
        e.payload,
        Payload::ChatOpened {
            channel: culla_schemas::event::Channel::Whatsapp
        }
    )));
    assert!(
        events
            .iter()
            .any(|e| e.event_type() == EventType::ChatMessage)
    );
    assert!(events.iter().all(|e| e.source == "melzo-1000giorni"));
}
