//! The model of a service year: families, their contacts, and what follows.
//!
//! Families are drawn one at a time, each from its own random stream (so changing how
//! one family behaves does not reshuffle the others). A family gets a territory (a NIL
//! drawn in proportion to that year's births, for Milan), a profile, and one or more
//! contacts through the year; each contact is a call or a chat with waits and
//! durations, and an answered one records needs and may raise a referral, which then
//! runs its own course (callbacks, appointments, closing). Every event gets an arrival
//! time (when the producer delivered it); the stream is sorted by arrival, not by `at`.
//! Every rate used here is listed, with its source, in docs/SIMULATION.md.

use chrono::{Datelike, NaiveDate, Weekday};
use culla_schemas::event::{
    Channel, ClosingOutcome, Direction, Event, NeedCategory, NeedOutcome, Payload, Profile, Stage,
    Territory, Urgency,
};
use culla_schemas::reference;

use crate::calendar::{self, YearDays, in_service_hours, next_working, rome};
use crate::rng::{Cumulative, Rng};
use crate::{SimConfig, SourceLine};

const MIN: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// One valid event, serialised, with its arrival time.
pub(crate) struct Timed {
    arrival: i64,
    seq: u64,
    pub(crate) json: String,
}

/// Per-line parameters (docs/SIMULATION.md, "Service lines").
struct LineParams {
    source: SourceLine,
    prefix: &'static str,
    /// Share of contacts that are chats (the rest are calls).
    chat_share: f64,
    /// Channel of those chats.
    chat_channel: Channel,
    /// Share of contacts attempted outside Mon–Sat 08–18.
    out_of_hours: f64,
    /// Share of contacts raising a referral, before the per-need adjustments.
    escalation: f64,
}

impl LineParams {
    fn of(source: SourceLine) -> Self {
        match source {
            SourceLine::Milano => LineParams {
                source,
                prefix: "mi",
                chat_share: 0.03,
                chat_channel: Channel::Webchat,
                out_of_hours: 0.04,
                escalation: 0.115,
            },
            SourceLine::Melzo => LineParams {
                source,
                prefix: "mz",
                chat_share: 1.0,
                chat_channel: Channel::Whatsapp,
                out_of_hours: 0.22,
                escalation: 0.10,
            },
        }
    }
}

/// Need categories in contract order with their base weights among recorded needs.
const CATEGORY_WEIGHTS: [(NeedCategory, f64); 11] = [
    (NeedCategory::Economic, 24.0),
    (NeedCategory::Health, 16.0),
    (NeedCategory::Education, 8.0),
    (NeedCategory::Childcare, 17.0),
    (NeedCategory::Socialisation, 6.0),
    (NeedCategory::Documents, 10.0),
    (NeedCategory::Housing, 6.0),
    (NeedCategory::Work, 4.5),
    (NeedCategory::Psychological, 4.5),
    (NeedCategory::Violence, 0.8),
    (NeedCategory::Other, 3.2),
];

/// Languages other than Italian, with relative weights (see docs/SIMULATION.md).
const LANGUAGES: [(&str, f64); 12] = [
    ("ar", 18.0),
    ("es", 14.0),
    ("en", 10.0),
    ("zh", 9.0),
    ("tl", 8.0),
    ("ro", 7.0),
    ("bn", 6.0),
    ("uk", 6.0),
    ("fr", 6.0),
    ("si", 5.0),
    ("sq", 5.0),
    ("ru", 6.0),
];

/// Who a family is: drawn once, used for every contact.
struct Family {
    key: String,
    territory: Option<Territory>,
    moved_to: Option<Territory>,
    stage: Stage,
    first_child: bool,
    single_parent: bool,
    family_network: bool,
    language: &'static str,
    interpreter_needed: bool,
    arrived_last_2y: bool,
    has_pediatrician: bool,
    category_weights: [f64; 11],
}

/// A planned contact: when, and how the call goes (chats are always answered).
#[derive(Clone, Copy)]
struct Planned {
    at: i64,
    chat: bool,
    out_of_hours: bool,
}

/// Milan NIL drawn in proportion to births, and their Municipio.
struct NilTable {
    ids: Vec<i32>,
    municipio: Vec<Option<i32>>,
    by_births: Cumulative,
}

impl NilTable {
    fn new(year: i32) -> Self {
        let by = reference::births_year_for(year);
        let mut rows: Vec<(i32, i64)> = reference::nil_years()
            .iter()
            .filter(|r| r.year == by)
            .map(|r| (r.nil, r.births))
            .collect();
        rows.sort_unstable();
        let municipio = rows
            .iter()
            .map(|(nil, _)| {
                reference::nils()
                    .iter()
                    .find(|n| n.nil == *nil)
                    .and_then(|n| n.municipio)
            })
            .collect();
        NilTable {
            ids: rows.iter().map(|r| r.0).collect(),
            municipio,
            by_births: Cumulative::new(rows.iter().map(|r| r.1 as f64)),
        }
    }

    fn draw(&self, rng: &mut Rng) -> Territory {
        if self.ids.is_empty() {
            return milano_without_nil();
        }
        let i = self.by_births.sample(rng);
        Territory {
            comune: Some(reference::MILANO_ISTAT.to_string()),
            nil: Some(self.ids[i]),
            municipio: self.municipio[i],
        }
    }
}

fn milano_without_nil() -> Territory {
    Territory {
        comune: Some(reference::MILANO_ISTAT.to_string()),
        nil: None,
        municipio: None,
    }
}

/// ISTAT code of the Comune di Melzo.
const MELZO_ISTAT: &str = "015142";

/// Generates the valid events of a year, sorted by arrival.
pub(crate) fn generate(cfg: &SimConfig) -> Vec<Timed> {
    let line = LineParams::of(cfg.source);
    let days = YearDays::new(cfg.year);
    let target = cfg.contacts.unwrap_or(cfg.source.default_contacts()) as usize;
    if days.days.is_empty() || target == 0 {
        return Vec::new();
    }
    let nils = NilTable::new(cfg.year);
    let end = calendar::year_end(cfg.year);
    let mut out: Vec<Timed> = Vec::with_capacity(target * 7);
    let mut seq = 0u64;
    let mut contacts = 0usize;
    let mut family_no = 0u64;
    let mut contact_no = 0usize;
    while contacts < target {
        let mut rng = Rng::stream(cfg.seed, family_no);
        family_no += 1;
        let family = draw_family(&mut rng, &line, &nils);
        let mut plan = plan_contacts(&mut rng, &line, &days, end);
        let mut em = Emitter {
            out: &mut out,
            seq: &mut seq,
            source: line.source.as_str(),
            family: &family.key,
            end,
        };
        let mut profiled = false;
        let mut moved = false;
        let first_at = plan.first().map_or(0, |p| p.at);
        let mut stage_updated = false;
        let mut j = 0;
        while j < plan.len() && contacts < target {
            let p = plan[j];
            j += 1;
            contacts += 1;
            contact_no += 1;
            let contact_id = format!("{}-{}-{:06}", line.prefix, cfg.year, contact_no);
            let Some(done) = run_contact(&mut rng, &mut em, &line, &contact_id, &p) else {
                // Some callers who got no answer try again: later that day, or when the
                // service opens.
                if rng.chance(0.45) {
                    let retry = if p.out_of_hours {
                        next_working(p.at, 6, 8, 18) + rng.range(0, 2 * HOUR)
                    } else {
                        p.at + rng.range(3 * MIN, 90 * MIN)
                    };
                    if retry < end {
                        let again = Planned {
                            at: retry,
                            chat: false,
                            out_of_hours: !in_service_hours(retry),
                        };
                        plan.insert(j, again);
                    }
                }
                continue;
            };
            // What the operator records, during the conversation.
            let mut t = done.record_at;
            if !profiled {
                profiled = true;
                let pr = first_profile(&mut rng, &family);
                em.emit(
                    &mut rng,
                    t,
                    &contact_id,
                    Payload::FamilyProfiled(pr),
                    Lag::Operator,
                );
            } else if !moved && family.moved_to.is_some() {
                moved = true;
                let pr = Profile {
                    territory: family.moved_to.clone(),
                    ..Profile::default()
                };
                em.emit(
                    &mut rng,
                    t,
                    &contact_id,
                    Payload::FamilyProfiled(pr),
                    Lag::Operator,
                );
            } else if family.stage == Stage::Pregnancy
                && !stage_updated
                && p.at - first_at > 150 * DAY
            {
                stage_updated = true;
                let pr = Profile {
                    stage: Some(Stage::Months0To12),
                    ..Profile::default()
                };
                em.emit(
                    &mut rng,
                    t,
                    &contact_id,
                    Payload::FamilyProfiled(pr),
                    Lag::Operator,
                );
            }
            t += rng.range(20, 90);
            record_needs(
                &mut rng,
                &mut em,
                &line,
                &family,
                &contact_id,
                t,
                done.end_at,
            );
        }
    }
    out.sort_unstable_by_key(|e| (e.arrival, e.seq));
    out
}

fn draw_family(rng: &mut Rng, line: &LineParams, nils: &NilTable) -> Family {
    let key = rng.hex(32);
    let (territory, moved_to) = match line.source {
        SourceLine::Milano => {
            let u = rng.f64();
            let t = if u < 0.93 {
                Some(nils.draw(rng))
            } else if u < 0.96 {
                Some(milano_without_nil())
            } else {
                None
            };
            let moved = (t.is_some() && rng.chance(0.03)).then(|| nils.draw(rng));
            (t, moved)
        }
        SourceLine::Melzo => {
            let t = rng.chance(0.9).then(|| Territory {
                comune: Some(MELZO_ISTAT.to_string()),
                nil: None,
                municipio: None,
            });
            (t, None)
        }
    };
    let stage = [Stage::Pregnancy, Stage::Months0To12, Stage::Months12To36]
        [rng.weighted(&[0.25, 0.45, 0.30])];
    let foreign = rng.chance(match line.source {
        SourceLine::Milano => 0.25,
        SourceLine::Melzo => 0.18,
    });
    let language = if foreign {
        LANGUAGES[rng.weighted(&LANGUAGES.map(|l| l.1))].0
    } else {
        "it"
    };
    let arrived_last_2y = rng.chance(if foreign { 0.40 } else { 0.05 });
    let interpreter_needed = foreign && rng.chance(0.35);
    let single_parent = rng.chance(0.10);
    let family_network = !rng.chance(if arrived_last_2y { 0.60 } else { 0.28 });
    let first_child = rng.chance(if stage == Stage::Pregnancy {
        0.55
    } else {
        0.48
    });
    let has_pediatrician = !rng.chance(if arrived_last_2y { 0.25 } else { 0.05 });
    let mut w = CATEGORY_WEIGHTS.map(|c| c.1);
    let mut scale = |c: NeedCategory, f: f64| {
        if let Some(i) = NeedCategory::ALL.iter().position(|x| *x == c) {
            w[i] *= f;
        }
    };
    if foreign {
        scale(NeedCategory::Documents, 2.5);
        scale(NeedCategory::Work, 1.5);
    }
    if single_parent {
        scale(NeedCategory::Economic, 1.5);
        scale(NeedCategory::Housing, 1.5);
        scale(NeedCategory::Violence, 2.0);
    }
    if !family_network {
        scale(NeedCategory::Socialisation, 1.8);
        scale(NeedCategory::Psychological, 1.5);
        scale(NeedCategory::Childcare, 1.3);
    }
    if stage == Stage::Pregnancy {
        scale(NeedCategory::Health, 1.5);
        scale(NeedCategory::Childcare, 0.5);
    }
    if !has_pediatrician {
        scale(NeedCategory::Health, 2.0);
    }
    Family {
        key,
        territory,
        moved_to,
        stage,
        first_child,
        single_parent,
        family_network,
        language,
        interpreter_needed,
        arrived_last_2y,
        has_pediatrician,
        category_weights: w,
    }
}

/// The first profile: each field asked with probability 0.85, territory whenever known.
fn first_profile(rng: &mut Rng, f: &Family) -> Profile {
    let mut ask = |p: f64| rng.chance(p);
    Profile {
        territory: f.territory.clone(),
        stage: ask(0.92).then_some(f.stage),
        first_child: ask(0.85).then_some(f.first_child),
        single_parent: ask(0.85).then_some(f.single_parent),
        family_network: ask(0.85).then_some(f.family_network),
        language: ask(0.90).then(|| f.language.to_string()),
        interpreter_needed: (f.language != "it" && ask(0.9)).then_some(f.interpreter_needed),
        arrived_last_2y: ask(0.80).then_some(f.arrived_last_2y),
        has_pediatrician: (f.stage != Stage::Pregnancy && ask(0.85)).then_some(f.has_pediatrician),
    }
}

/// When a family gets in touch over the year (sorted, all inside the year).
fn plan_contacts(rng: &mut Rng, line: &LineParams, days: &YearDays, end: i64) -> Vec<Planned> {
    let extra = match rng.weighted(&[0.66, 0.26, 0.08]) {
        0 => 0,
        1 => rng.range(1, 2) as usize,
        _ => rng.range(2, 5) as usize,
    };
    let frequent = extra >= 2 && rng.chance(0.5);
    let mut day = days.service_day(rng);
    let mut plan = Vec::with_capacity(1 + extra);
    for k in 0..=extra {
        if k > 0 {
            let gap = if frequent {
                1.0 + rng.exponential(6.0)
            } else {
                1.0 + rng.exponential(45.0)
            };
            day += gap as usize;
            if day >= days.days.len() {
                break;
            }
            if days.days[day].weekday() == Weekday::Sun {
                day += 1;
                if day >= days.days.len() {
                    break;
                }
            }
        }
        let chat = rng.chance(line.chat_share);
        let ooh = rng.chance(line.out_of_hours);
        let at = if ooh {
            days.out_of_hours_time(day, rng)
        } else {
            days.service_time(days.days[day], rng)
        };
        if at >= end {
            break;
        }
        plan.push(Planned {
            at,
            chat,
            out_of_hours: !in_service_hours(at),
        });
    }
    plan.sort_by_key(|p| p.at);
    plan
}

/// When an answered contact records, and when it ended.
struct Answered {
    record_at: i64,
    end_at: i64,
}

/// Emits the telephony or chat events of one contact; `None` if nobody answered.
fn run_contact(
    rng: &mut Rng,
    em: &mut Emitter,
    line: &LineParams,
    id: &str,
    p: &Planned,
) -> Option<Answered> {
    if p.chat {
        let channel = line.chat_channel;
        em.emit(
            rng,
            p.at,
            id,
            Payload::ChatOpened { channel },
            Lag::Telephony,
        );
        let mut t = p.at + rng.range(5, 60);
        em.emit(
            rng,
            t,
            id,
            Payload::ChatMessage {
                direction: Direction::In,
            },
            Lag::Telephony,
        );
        if rng.chance(0.3) {
            t += rng.range(10, 120);
            em.emit(
                rng,
                t,
                id,
                Payload::ChatMessage {
                    direction: Direction::In,
                },
                Lag::Telephony,
            );
        }
        // The operator answers now, or when the service opens.
        let open = next_working(t, 6, 8, 18);
        t = if open > t {
            open + rng.range(2 * MIN, 40 * MIN)
        } else {
            t + rng.lognormal(240.0, 0.8) as i64
        };
        em.emit(
            rng,
            t,
            id,
            Payload::ChatMessage {
                direction: Direction::Out,
            },
            Lag::Telephony,
        );
        let exchanges = rng.range(1, 5);
        let mut record_at = t;
        for _ in 0..exchanges {
            t += rng.range(MIN, 25 * MIN);
            em.emit(
                rng,
                t,
                id,
                Payload::ChatMessage {
                    direction: Direction::In,
                },
                Lag::Telephony,
            );
            t += rng.range(MIN, 12 * MIN);
            em.emit(
                rng,
                t,
                id,
                Payload::ChatMessage {
                    direction: Direction::Out,
                },
                Lag::Telephony,
            );
            record_at = t - rng.range(10, 50);
        }
        t += rng.range(10 * MIN, 60 * MIN);
        em.emit(rng, t, id, Payload::ChatClosed, Lag::Telephony);
        return Some(Answered {
            record_at,
            end_at: t,
        });
    }
    em.emit(
        rng,
        p.at,
        id,
        Payload::CallReceived {
            ivr_path: "4-3".into(),
        },
        Lag::Telephony,
    );
    if p.out_of_hours {
        // The closed-hours message plays; the caller hangs up.
        let wait_s = rng.range(15, 60) as f64;
        em.emit(
            rng,
            p.at + wait_s as i64,
            id,
            Payload::CallAbandoned { wait_s },
            Lag::Telephony,
        );
        return None;
    }
    let wait = rng.lognormal(14.0, 1.0).clamp(1.0, 1_800.0).round();
    let patience = rng.lognormal(90.0, 1.0).max(3.0).round();
    if patience < wait {
        em.emit(
            rng,
            p.at + patience as i64,
            id,
            Payload::CallAbandoned { wait_s: patience },
            Lag::Telephony,
        );
        return None;
    }
    let answered = p.at + wait as i64;
    let operator = format!("op-{:02}", rng.range(1, 28));
    em.emit(
        rng,
        answered,
        id,
        Payload::CallAnswered {
            operator,
            wait_s: wait,
        },
        Lag::Telephony,
    );
    let duration = rng.lognormal(330.0, 0.55).clamp(45.0, 3_600.0).round();
    let end_at = answered + duration as i64;
    em.emit(
        rng,
        end_at,
        id,
        Payload::CallEnded {
            duration_s: duration,
        },
        Lag::Telephony,
    );
    Some(Answered {
        record_at: answered + (duration * 0.5) as i64,
        end_at,
    })
}

/// Records 1–3 needs of an answered contact and, for some, a referral and its course.
fn record_needs(
    rng: &mut Rng,
    em: &mut Emitter,
    line: &LineParams,
    f: &Family,
    id: &str,
    at: i64,
    end_at: i64,
) {
    let n = 1 + rng.weighted(&[0.60, 0.30, 0.10]);
    let mut weights = f.category_weights;
    let mut cats = Vec::with_capacity(n);
    for _ in 0..n {
        let i = rng.weighted(&weights);
        weights[i] = 0.0;
        cats.push(NeedCategory::ALL[i]);
    }
    let serious = |c: &NeedCategory| {
        matches!(
            c,
            NeedCategory::Violence | NeedCategory::Psychological | NeedCategory::Housing
        )
    };
    let p_escalate = if cats.contains(&NeedCategory::Violence) {
        0.9
    } else if cats.iter().any(serious) {
        (line.escalation * 2.2).min(1.0)
    } else {
        line.escalation
    };
    let escalate = rng.chance(p_escalate);
    let municipio = f.territory.as_ref().and_then(|t| t.municipio);
    let mut escalated: Vec<(String, NeedCategory, NeedOutcome)> = Vec::new();
    let mut t = at;
    for (k, cat) in cats.iter().enumerate() {
        let need_id = format!("{id}-n{}", k + 1);
        let this_escalates = escalate && (escalated.is_empty() || serious(cat) || rng.chance(0.4));
        let outcome = if this_escalates {
            if line.source == SourceLine::Milano && municipio.is_some() && rng.chance(0.25) {
                NeedOutcome::Booked
            } else {
                NeedOutcome::Referred
            }
        } else {
            [
                NeedOutcome::Informed,
                NeedOutcome::NoResource,
                NeedOutcome::WaitingList,
                NeedOutcome::NotEligible,
            ][rng.weighted(&[0.86, 0.05, 0.05, 0.04])]
        };
        let resource = (outcome == NeedOutcome::Informed && rng.chance(0.7))
            .then(|| resource_for(*cat, line.source).to_string());
        em.emit(
            rng,
            t,
            id,
            Payload::NeedRecorded {
                need_id: need_id.clone(),
                category: *cat,
                outcome,
                resource,
            },
            Lag::Operator,
        );
        if this_escalates {
            escalated.push((need_id, *cat, outcome));
        }
        t += rng.range(15, 60);
    }
    if !escalated.is_empty() {
        let created = end_at + rng.range(2 * MIN, 15 * MIN);
        referral(rng, em, line, id, municipio, &escalated, created);
    }
}

/// A named resource an operator points to, per category (no personal data).
fn resource_for(c: NeedCategory, source: SourceLine) -> &'static str {
    match (source, c) {
        (_, NeedCategory::Economic) => "bonus-nuovi-nati",
        (SourceLine::Milano, NeedCategory::Health) => "consultorio-familiare",
        (SourceLine::Melzo, NeedCategory::Health) => "consultorio-melzo",
        (_, NeedCategory::Education) => "scuole-infanzia",
        (_, NeedCategory::Childcare) => "nidi-comunali",
        (_, NeedCategory::Socialisation) => "spazio-mamme",
        (_, NeedCategory::Documents) => "anagrafe",
        (_, NeedCategory::Housing) => "sportello-casa",
        (_, NeedCategory::Work) => "centro-per-l-impiego",
        (_, NeedCategory::Psychological) => "sostegno-psicologico",
        (_, NeedCategory::Violence) => "centro-antiviolenza",
        (_, NeedCategory::Other) => "sportello-informativo",
    }
}

fn referral_target(line: &LineParams, municipio: Option<i32>, cat: NeedCategory) -> String {
    match line.source {
        SourceLine::Milano => match cat {
            NeedCategory::Violence => "centro-antiviolenza".into(),
            NeedCategory::Psychological | NeedCategory::Health => "consultorio-familiare".into(),
            _ => match municipio {
                Some(m) => format!("servizio-sociale-municipio-{m}"),
                None => "welfare-secondo-livello".into(),
            },
        },
        SourceLine::Melzo => match cat {
            NeedCategory::Health | NeedCategory::Psychological | NeedCategory::Violence => {
                "consultorio-melzo".into()
            }
            NeedCategory::Economic => "cav-melzo".into(),
            NeedCategory::Socialisation | NeedCategory::Other => "fondazione-tuendelee".into(),
            _ => "servizi-sociali-melzo".into(),
        },
    }
}

/// A referral from creation to closing: callbacks, appointments, the closing outcome.
fn referral(
    rng: &mut Rng,
    em: &mut Emitter,
    line: &LineParams,
    id: &str,
    municipio: Option<i32>,
    needs: &[(String, NeedCategory, NeedOutcome)],
    created: i64,
) {
    let referral_id = format!("{id}-r");
    let main = needs[0].1;
    let urgency = if needs.iter().any(|n| n.1 == NeedCategory::Violence) || rng.chance(0.10) {
        Urgency::Urgent
    } else {
        Urgency::Normal
    };
    let to = referral_target(line, municipio, main);
    em.emit(
        rng,
        created,
        id,
        Payload::ReferralCreated {
            referral_id: referral_id.clone(),
            need_ids: needs.iter().map(|n| n.0.clone()).collect(),
            to: to.clone(),
            urgency,
        },
        Lag::CaseSystem,
    );
    let service = match (line.source, municipio) {
        (SourceLine::Milano, Some(m)) => format!("servizio-sociale-municipio-{m}"),
        (SourceLine::Milano, None) => "welfare-secondo-livello".to_string(),
        (SourceLine::Melzo, _) => to.clone(),
    };
    let mut appt_no = 0;
    let mut last = created;
    let mut attended = None;
    // Booked at the first level: the appointment is made during the call.
    if needs.iter().any(|n| n.2 == NeedOutcome::Booked) {
        let at = created + rng.range(30, 120);
        let r = appointment(rng, em, id, &referral_id, &service, at, &mut appt_no);
        last = last.max(r.0);
        attended = Some(r.1);
    }
    // Callbacks by the second level, Mon–Fri 09–17.
    let never_reached = rng.chance(0.08);
    let failures = if never_reached {
        rng.range(1, 3)
    } else {
        [0, 1, 2][rng.weighted(&[0.70, 0.22, 0.08])]
    };
    let first_delay = match urgency {
        Urgency::Urgent => rng.lognormal(3.0 * HOUR as f64, 0.7),
        Urgency::Normal => rng.lognormal(26.0 * HOUR as f64, 0.8),
    } as i64;
    let mut t = next_working(created + first_delay, 5, 9, 17) + rng.range(0, 50 * MIN);
    let mut reached_at = None;
    for k in 0..=failures {
        let reached = !never_reached && k == failures;
        em.emit(
            rng,
            t,
            id,
            Payload::ReferralCallback {
                referral_id: referral_id.clone(),
                reached,
            },
            Lag::CaseSystem,
        );
        last = last.max(t);
        if reached {
            reached_at = Some(t);
        } else {
            t = next_working(t + rng.range(3 * HOUR, 2 * DAY), 5, 9, 17) + rng.range(0, 50 * MIN);
        }
    }
    if let (Some(r), None) = (reached_at, attended)
        && rng.chance(0.40)
    {
        let at = r + rng.range(5 * MIN, 20 * MIN);
        let a = appointment(rng, em, id, &referral_id, &service, at, &mut appt_no);
        last = last.max(a.0);
        attended = Some(a.1);
    }
    // Closing, weeks later; some referrals stay open.
    if rng.chance(0.12) {
        return;
    }
    let outcome = if reached_at.is_none() {
        ClosingOutcome::Unreachable
    } else if attended == Some(false) {
        [
            ClosingOutcome::Declined,
            ClosingOutcome::Unreachable,
            ClosingOutcome::Resolved,
        ][rng.weighted(&[0.45, 0.35, 0.20])]
    } else {
        [
            ClosingOutcome::Resolved,
            ClosingOutcome::ServiceUnavailable,
            ClosingOutcome::WaitingList,
            ClosingOutcome::NotEligible,
            ClosingOutcome::Declined,
            ClosingOutcome::Unreachable,
        ][rng.weighted(&[0.58, 0.08, 0.12, 0.07, 0.07, 0.03])]
    };
    let closed = next_working(
        last + 7 * DAY + rng.exponential(20.0 * DAY as f64) as i64,
        5,
        9,
        17,
    ) + rng.range(0, 7 * HOUR);
    em.emit(
        rng,
        closed,
        id,
        Payload::ReferralClosed {
            referral_id,
            outcome,
        },
        Lag::CaseSystem,
    );
}

/// Books an appointment at `at` and plays it out (a missed one is rebooked half the
/// time, once). Returns the time of its last event and whether it was attended.
fn appointment(
    rng: &mut Rng,
    em: &mut Emitter,
    id: &str,
    referral_id: &str,
    service: &str,
    at: i64,
    appt_no: &mut u32,
) -> (i64, bool) {
    let mut booked_at = at;
    for round in 0..2 {
        *appt_no += 1;
        let appointment_id = format!("{id}-a{appt_no}");
        let day = working_day_after(booked_at + rng.range(3, 18) * DAY);
        let slot = calendar::local(
            day,
            rng.range(9, 15) as u32,
            [0, 30][rng.below(2) as usize],
            0,
        );
        em.emit(
            rng,
            booked_at,
            id,
            Payload::AppointmentBooked {
                appointment_id: appointment_id.clone(),
                referral_id: Some(referral_id.to_string()),
                service: service.to_string(),
                for_date: day,
            },
            Lag::CaseSystem,
        );
        let came = rng.chance(0.78);
        let recorded = slot + rng.range(30 * MIN, 4 * HOUR);
        let payload = if came {
            Payload::AppointmentAttended { appointment_id }
        } else {
            Payload::AppointmentMissed { appointment_id }
        };
        em.emit(rng, recorded, id, payload, Lag::CaseSystem);
        if came || round == 1 || !rng.chance(0.5) {
            return (recorded, came);
        }
        booked_at =
            next_working(recorded + rng.range(1, 5) * DAY, 5, 9, 17) + rng.range(0, 3 * HOUR);
    }
    (booked_at, false)
}

/// The local date of `ts`, moved to the next Monday–Friday.
fn working_day_after(ts: i64) -> NaiveDate {
    let mut d = rome(ts).date_naive();
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// Which producer delivers an event, which decides how late it may arrive.
#[derive(Clone, Copy)]
enum Lag {
    /// Telephony and the WhatsApp gateway: seconds; rarely hours (a gateway outage).
    Telephony,
    /// The operator's form, saved at the end of the conversation.
    Operator,
    /// The case-management system: synced in batches, sometimes weeks late.
    CaseSystem,
}

struct Emitter<'a> {
    out: &'a mut Vec<Timed>,
    seq: &'a mut u64,
    source: &'static str,
    family: &'a str,
    end: i64,
}

impl Emitter<'_> {
    /// Serialises one event (events after the year's end are not part of the year).
    fn emit(&mut self, rng: &mut Rng, at: i64, contact_id: &str, payload: Payload, lag: Lag) {
        let event_id = rng.uuid();
        let delay = match lag {
            Lag::Telephony if rng.chance(0.002) => rng.range(HOUR, 20 * HOUR),
            Lag::Telephony => rng.range(0, 2),
            Lag::Operator => rng.range(5, 120),
            Lag::CaseSystem if rng.chance(0.06) => rng.range(DAY, 30 * DAY),
            Lag::CaseSystem => rng.range(MIN, 30 * MIN),
        };
        if at >= self.end {
            return;
        }
        let ev = Event {
            event_id,
            v: 1,
            at: rome(at),
            source: self.source.to_string(),
            contact_id: contact_id.to_string(),
            family: self.family.to_string(),
            payload,
            simulated: Some(true),
            dropped: Vec::new(),
        };
        *self.seq += 1;
        self.out.push(Timed {
            arrival: at + delay,
            seq: *self.seq,
            json: ev.to_json(),
        });
    }
}
