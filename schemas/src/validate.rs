//! Turning wire bytes into an [`Event`], or into an [`Invalid`] with a one-line reason.
//!
//! Every rule of the contract's "Bad input" section is checked here, and only here:
//! ingest, `culla validate` and the dead-letter replay all call [`parse_event`]. The
//! reason is a stable code ([`Reason`], used to group dead letters) plus a sentence
//! that names the field, e.g. `field "at" has no UTC offset`. The JSON is read into the
//! borrowed tree of the private `wire` module (no `String` per key or value), which keeps
//! `serde_json::Map`'s key order and duplicate-key rules, so messages and fields are the
//! same as with `serde_json::Value`.

use crate::event::*;
use crate::wire::{Obj, Val};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// Why an input is not a valid v1 event; the stable code used in dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The text is not JSON.
    NotJson,
    /// The JSON is not an object.
    NotObject,
    /// `type` is not one of the contract's types.
    UnknownType,
    /// `v` is not a supported schema version.
    BadVersion,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field has a value outside its allowed set or range.
    BadValue,
    /// `event_id` is not a UUID.
    BadEventId,
    /// `family` is not a 16–64 character lowercase hex key.
    BadFamily,
    /// A field looks like a phone number or an e-mail address.
    PersonalData,
    /// A timestamp has no UTC offset.
    NoOffset,
    /// A timestamp is not RFC 3339.
    BadTimestamp,
    /// The event is dated before 2015.
    TooOld,
    /// The event is dated more than a day in the future.
    InFuture,
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
}

impl Reason {
    /// Every reason.
    pub const ALL: &'static [Reason] = &[
        Reason::NotUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::UnknownType,
        Reason::BadVersion,
        Reason::MissingField,
        Reason::WrongType,
        Reason::BadValue,
        Reason::BadEventId,
        Reason::BadFamily,
        Reason::PersonalData,
        Reason::NoOffset,
        Reason::BadTimestamp,
        Reason::TooOld,
        Reason::InFuture,
        Reason::TooLarge,
    ];

    /// The stable code, as stored in the dead-letter `reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotUtf8 => "not_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::UnknownType => "unknown_type",
            Reason::BadVersion => "bad_version",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::BadValue => "bad_value",
            Reason::BadEventId => "bad_event_id",
            Reason::BadFamily => "bad_family",
            Reason::PersonalData => "personal_data",
            Reason::NoOffset => "no_offset",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::TooOld => "too_old",
            Reason::InFuture => "in_future",
            Reason::TooLarge => "too_large",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: the reason code, the field it concerns, and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Stable reason code.
    pub reason: Reason,
    /// The field concerned (dotted path, e.g. `territory.nil`), if any.
    pub field: Option<String>,
    /// One sentence for people, naming the field.
    pub message: String,
}

impl Invalid {
    fn new(reason: Reason, field: Option<&str>, message: impl Into<String>) -> Self {
        Invalid {
            reason,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
    fn field(reason: Reason, field: &str, what: impl std::fmt::Display) -> Self {
        Invalid::new(reason, Some(field), format!("field \"{field}\" {what}"))
    }
}

/// The earliest accepted event date (local calendar date).
pub const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(2015, 1, 1) {
    Some(d) => d,
    None => panic!("valid constant date"),
};

/// The largest message accepted (contract 1.1: 1 MiB); a larger one is a dead letter
/// (`too_large`) holding its first KiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The most keys a JSON object of a message may have (contract 1.1).
pub const MAX_KEYS: usize = 256;
/// The deepest a message may nest objects and arrays (contract 1.1).
pub const MAX_DEPTH: usize = 32;

/// Refuses an object with too many keys or a message nested too deep (`bad_value`):
/// a message's shape is bounded before any field is looked at.
fn check_shape(v: &Val<'_>, depth: usize) -> Result<(), Invalid> {
    if depth > MAX_DEPTH {
        return Err(Invalid::new(
            Reason::BadValue,
            None,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    match v {
        Val::Obj(o) => {
            if o.iter().count() > MAX_KEYS {
                return Err(Invalid::new(
                    Reason::BadValue,
                    None,
                    format!("an object with more than {MAX_KEYS} keys"),
                ));
            }
            o.iter().try_for_each(|(_, x)| check_shape(x, depth + 1))
        }
        Val::Arr(items) => items.iter().try_for_each(|x| check_shape(x, depth + 1)),
        _ => Ok(()),
    }
}

const ENVELOPE: &[&str] = &[
    "event_id",
    "type",
    "v",
    "at",
    "source",
    "contact_id",
    "family",
    "simulated",
];

/// Parses and validates one event from its wire bytes, judging "in the future" against `now`.
pub fn parse_event(bytes: &[u8], now: DateTime<Utc>) -> Result<Event, Invalid> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Invalid::new(
            Reason::TooLarge,
            None,
            format!(
                "{} bytes, more than the {MAX_MESSAGE_BYTES} a message may have",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Invalid::new(
            Reason::NotUtf8,
            None,
            format!("not UTF-8 (invalid byte at position {})", e.valid_up_to()),
        )
    })?;
    let value: Val<'_> =
        serde_json::from_str(text.trim_end_matches(['\n', '\r'])).map_err(|e| {
            Invalid::new(
                Reason::NotJson,
                None,
                format!(
                    "not JSON: {} at line {} column {}",
                    json_error_kind(&e),
                    e.line(),
                    e.column()
                ),
            )
        })?;
    check_shape(&value, 1)?;
    let Val::Obj(obj) = value else {
        return Err(Invalid::new(
            Reason::NotObject,
            None,
            format!("not a JSON object but {}", value.kind()),
        ));
    };
    from_obj(obj, now)
}

fn json_error_kind(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "syntax error",
        Category::Data => "bad data",
        Category::Io => "read error",
    }
}

/// Validates an already parsed JSON object.
fn from_obj(mut obj: Obj<'_>, now: DateTime<Utc>) -> Result<Event, Invalid> {
    // Producers that nest the payload under "payload" are accepted too: its fields are
    // lifted beside the envelope (envelope fields win).
    if let Some(Val::Obj(_)) = obj.get("payload")
        && let Some(Val::Obj(inner)) = obj.remove("payload")
    {
        for (k, v) in inner.into_entries() {
            obj.insert_if_absent(k, v);
        }
    }
    let f = Fields(&obj);
    let type_s = f.req_str("type")?;
    let Some(event_type) = EventType::parse(type_s) else {
        return Err(Invalid::field(
            Reason::UnknownType,
            "type",
            format!("has unknown event type {:?}", clip(type_s)),
        ));
    };
    let event_id = f.req_str("event_id")?;
    if !is_uuid(event_id) {
        return Err(Invalid::field(
            Reason::BadEventId,
            "event_id",
            format!("is not a UUID: {:?}", clip(event_id)),
        ));
    }
    let v = match obj.get("v") {
        None => return Err(missing("v")),
        Some(Val::Num(n)) => match n.as_u64() {
            Some(1) => 1,
            _ => {
                return Err(Invalid::field(
                    Reason::BadVersion,
                    "v",
                    format!("is version {n}; this culla reads version 1"),
                ));
            }
        },
        Some(other) => return Err(wrong("v", "an integer", other)),
    };
    let at = parse_at(f.req_str("at")?, now)?;
    let source = f.req_str("source")?;
    if !is_slug(source) {
        return Err(Invalid::field(
            Reason::BadValue,
            "source",
            "must be 1–64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    let contact_id = f.req_str("contact_id")?;
    if contact_id.is_empty() || contact_id.len() > 128 {
        return Err(Invalid::field(
            Reason::BadValue,
            "contact_id",
            "must be 1–128 characters",
        ));
    }
    let family = f.req_str("family")?;
    if !(16..=64).contains(&family.len())
        || !family
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Invalid::field(
            Reason::BadFamily,
            "family",
            "is not a pseudonymous key of 16–64 lowercase hex characters",
        ));
    }
    // No personal data anywhere: checked on every field but the validated envelope ids.
    for (k, val) in obj.iter() {
        check_key("", k)?;
        if matches!(k, "event_id" | "at" | "for_date" | "family") {
            continue;
        }
        check_personal(k, val)?;
    }
    let simulated = f.opt_bool("simulated")?;
    let payload = parse_payload(event_type, &f)?;
    check_code("source", source)?;
    check_code("contact_id", contact_id)?;
    for (name, value) in code_fields(&payload) {
        check_code(name, value)?;
    }
    let known = payload_fields(event_type);
    // Unknown fields are not stored (contract 1.1): only their names travel on, to be
    // counted, and only names that are plain identifiers.
    let dropped: Vec<String> = obj
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(k) && !known.contains(k))
        .map(|(k, _)| dropped_name(k))
        .collect();
    Ok(Event {
        event_id: event_id.to_ascii_lowercase(),
        v,
        at,
        source: source.to_string(),
        contact_id: contact_id.to_string(),
        family: family.to_string(),
        payload,
        simulated,
        dropped,
    })
}

/// Free strings are codes (contract 1.1): a letter first, then letters, digits and
/// `. _ : -`, at most 80 characters, so names and message text cannot travel in them.
fn check_code(name: &str, value: &str) -> Result<(), Invalid> {
    let b = value.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.len() <= 80
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._:-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Invalid::field(
            Reason::BadValue,
            name,
            "must be a code: a letter, then letters, digits, '.', '_', ':' or '-', at most 80 characters",
        ))
    }
}

/// The code fields of a payload, by name (`need_ids` once per id).
fn code_fields(p: &Payload) -> Vec<(&'static str, &str)> {
    match p {
        Payload::CallAnswered { operator, .. } => vec![("operator", operator)],
        Payload::NeedRecorded {
            need_id, resource, ..
        } => {
            let mut v = vec![("need_id", need_id.as_str())];
            v.extend(resource.as_deref().map(|r| ("resource", r)));
            v
        }
        Payload::ReferralCreated {
            referral_id,
            need_ids,
            to,
            ..
        } => {
            let mut v = vec![("referral_id", referral_id.as_str()), ("to", to.as_str())];
            v.extend(need_ids.iter().map(|n| ("need_ids", n.as_str())));
            v
        }
        Payload::ReferralCallback { referral_id, .. }
        | Payload::ReferralClosed { referral_id, .. } => vec![("referral_id", referral_id)],
        Payload::AppointmentBooked {
            appointment_id,
            referral_id,
            service,
            ..
        } => {
            let mut v = vec![
                ("appointment_id", appointment_id.as_str()),
                ("service", service.as_str()),
            ];
            v.extend(referral_id.as_deref().map(|r| ("referral_id", r)));
            v
        }
        Payload::AppointmentAttended { appointment_id }
        | Payload::AppointmentMissed { appointment_id } => {
            vec![("appointment_id", appointment_id)]
        }
        _ => Vec::new(),
    }
}

/// The name under which an unknown field is counted: itself when it is a plain
/// identifier (letters, digits, `_ . -`, at most 64), else `(other)` — a key can hold
/// anything, and the counts are printed and kept in the commits.
fn dropped_name(k: &str) -> String {
    let plain = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && crate::personal::first_in(k).is_none();
    if plain {
        k.to_string()
    } else {
        "(other)".to_string()
    }
}

/// The payload field names of a type (for telling known fields from extra ones).
pub fn payload_fields(t: EventType) -> &'static [&'static str] {
    match t {
        EventType::CallReceived => &["ivr_path"],
        EventType::CallAnswered => &["operator", "wait_s"],
        EventType::CallAbandoned => &["wait_s"],
        EventType::CallEnded => &["duration_s"],
        EventType::ChatOpened => &["channel"],
        EventType::ChatMessage => &["direction"],
        EventType::ChatClosed => &[],
        EventType::FamilyProfiled => &[
            "territory",
            "stage",
            "first_child",
            "single_parent",
            "family_network",
            "language",
            "interpreter_needed",
            "arrived_last_2y",
            "has_pediatrician",
        ],
        EventType::NeedRecorded => &["need_id", "category", "outcome", "resource"],
        EventType::ReferralCreated => &["referral_id", "need_ids", "to", "urgency"],
        EventType::ReferralCallback => &["referral_id", "reached"],
        EventType::AppointmentBooked => &["appointment_id", "referral_id", "service", "for_date"],
        EventType::AppointmentAttended | EventType::AppointmentMissed => &["appointment_id"],
        EventType::ReferralClosed => &["referral_id", "outcome"],
    }
}

fn parse_payload(t: EventType, f: &Fields) -> Result<Payload, Invalid> {
    Ok(match t {
        EventType::CallReceived => Payload::CallReceived {
            ivr_path: f.req_id("ivr_path")?,
        },
        EventType::CallAnswered => Payload::CallAnswered {
            operator: f.req_id("operator")?,
            wait_s: f.req_seconds("wait_s")?,
        },
        EventType::CallAbandoned => Payload::CallAbandoned {
            wait_s: f.req_seconds("wait_s")?,
        },
        EventType::CallEnded => Payload::CallEnded {
            duration_s: f.req_seconds("duration_s")?,
        },
        EventType::ChatOpened => Payload::ChatOpened {
            channel: f.req_enum("channel", Channel::parse, Channel::ALL, Channel::as_str)?,
        },
        EventType::ChatMessage => Payload::ChatMessage {
            direction: f.req_enum(
                "direction",
                Direction::parse,
                Direction::ALL,
                Direction::as_str,
            )?,
        },
        EventType::ChatClosed => Payload::ChatClosed,
        EventType::FamilyProfiled => Payload::FamilyProfiled(parse_profile(f)?),
        EventType::NeedRecorded => Payload::NeedRecorded {
            need_id: f.req_id("need_id")?,
            category: f.req_enum(
                "category",
                NeedCategory::parse,
                NeedCategory::ALL,
                NeedCategory::as_str,
            )?,
            outcome: f.req_enum(
                "outcome",
                NeedOutcome::parse,
                NeedOutcome::ALL,
                NeedOutcome::as_str,
            )?,
            resource: f.opt_str("resource")?.map(str::to_string),
        },
        EventType::ReferralCreated => {
            let need_ids = match f.0.get("need_ids") {
                None | Some(Val::Null) => return Err(missing("need_ids")),
                Some(Val::Arr(items)) => {
                    let mut ids = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Val::Str(s) if !s.is_empty() => ids.push(s.to_string()),
                            other => {
                                return Err(wrong(
                                    "need_ids",
                                    "a list of non-empty strings",
                                    other,
                                ));
                            }
                        }
                    }
                    if ids.is_empty() {
                        return Err(Invalid::field(
                            Reason::BadValue,
                            "need_ids",
                            "is empty; a referral lists at least one need",
                        ));
                    }
                    ids
                }
                Some(other) => return Err(wrong("need_ids", "a list of strings", other)),
            };
            Payload::ReferralCreated {
                referral_id: f.req_id("referral_id")?,
                need_ids,
                to: f.req_id("to")?,
                urgency: f.req_enum("urgency", Urgency::parse, Urgency::ALL, Urgency::as_str)?,
            }
        }
        EventType::ReferralCallback => Payload::ReferralCallback {
            referral_id: f.req_id("referral_id")?,
            reached: f.opt_bool("reached")?.ok_or_else(|| missing("reached"))?,
        },
        EventType::AppointmentBooked => {
            let d = f.req_str("for_date")?;
            let for_date = parse_ymd(d).ok_or_else(|| {
                Invalid::field(
                    Reason::BadValue,
                    "for_date",
                    format!("is not a date YYYY-MM-DD: {:?}", clip(d)),
                )
            })?;
            Payload::AppointmentBooked {
                appointment_id: f.req_id("appointment_id")?,
                referral_id: f.opt_str("referral_id")?.map(str::to_string),
                service: f.req_id("service")?,
                for_date,
            }
        }
        EventType::AppointmentAttended => Payload::AppointmentAttended {
            appointment_id: f.req_id("appointment_id")?,
        },
        EventType::AppointmentMissed => Payload::AppointmentMissed {
            appointment_id: f.req_id("appointment_id")?,
        },
        EventType::ReferralClosed => Payload::ReferralClosed {
            referral_id: f.req_id("referral_id")?,
            outcome: f.req_enum(
                "outcome",
                ClosingOutcome::parse,
                ClosingOutcome::ALL,
                ClosingOutcome::as_str,
            )?,
        },
    })
}

fn parse_profile(f: &Fields) -> Result<Profile, Invalid> {
    let territory = match f.0.get("territory") {
        None | Some(Val::Null) => None,
        Some(Val::Obj(t)) => {
            let tf = Fields(t);
            let comune = tf.opt_str("comune")?.map(str::to_string);
            if let Some(c) = &comune
                && (c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()))
            {
                {
                    return Err(Invalid::field(
                        Reason::BadValue,
                        "territory.comune",
                        format!("is not a six-digit ISTAT code: {:?}", clip(c)),
                    ));
                }
            }
            let nil = tf.opt_int_in("nil", "territory.nil", 1, 88)?;
            let municipio = tf.opt_int_in("municipio", "territory.municipio", 1, 9)?;
            Some(Territory {
                comune,
                nil,
                municipio,
            })
        }
        Some(other) => return Err(wrong("territory", "an object", other)),
    };
    let language = f.opt_str("language")?.map(str::to_string);
    if let Some(l) = &language
        && (l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()))
    {
        {
            return Err(Invalid::field(
                Reason::BadValue,
                "language",
                format!("is not an ISO 639-1 code: {:?}", clip(l)),
            ));
        }
    }
    let stage = match f.opt_str("stage")? {
        None => None,
        Some(s) => {
            Some(Stage::parse(s).ok_or_else(|| bad_enum("stage", s, Stage::ALL, Stage::as_str))?)
        }
    };
    Ok(Profile {
        territory,
        stage,
        first_child: f.opt_bool("first_child")?,
        single_parent: f.opt_bool("single_parent")?,
        family_network: f.opt_bool("family_network")?,
        language,
        interpreter_needed: f.opt_bool("interpreter_needed")?,
        arrived_last_2y: f.opt_bool("arrived_last_2y")?,
        has_pediatrician: f.opt_bool("has_pediatrician")?,
    })
}

/// Typed access to the fields of one JSON object, with contract errors.
struct Fields<'a>(&'a Obj<'a>);

impl<'a> Fields<'a> {
    fn req_str(&self, k: &str) -> Result<&'a str, Invalid> {
        self.opt_str(k)?.ok_or_else(|| missing(k))
    }
    /// A required, non-empty identifier-like string (at most 256 characters).
    fn req_id(&self, k: &str) -> Result<String, Invalid> {
        let s = self.req_str(k)?;
        if s.is_empty() || s.len() > 256 {
            return Err(Invalid::field(
                Reason::BadValue,
                k,
                "must be 1–256 characters",
            ));
        }
        Ok(s.to_string())
    }
    fn opt_str(&self, k: &str) -> Result<Option<&'a str>, Invalid> {
        match self.0.get(k) {
            None | Some(Val::Null) => Ok(None),
            Some(Val::Str(s)) => Ok(Some(s.as_ref())),
            Some(other) => Err(wrong(k, "a string", other)),
        }
    }
    fn opt_bool(&self, k: &str) -> Result<Option<bool>, Invalid> {
        match self.0.get(k) {
            None | Some(Val::Null) => Ok(None),
            Some(Val::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong(k, "true or false", other)),
        }
    }
    fn opt_int_in(&self, k: &str, path: &str, lo: i64, hi: i64) -> Result<Option<i32>, Invalid> {
        match self.0.get(k) {
            None | Some(Val::Null) => Ok(None),
            Some(Val::Num(n)) => match n.as_i64() {
                Some(i) if (lo..=hi).contains(&i) => Ok(Some(i as i32)),
                _ => Err(Invalid::field(
                    Reason::BadValue,
                    path,
                    format!("is {n}, outside {lo}–{hi}"),
                )),
            },
            Some(other) => Err(wrong(path, "an integer", other)),
        }
    }
    /// A required duration in seconds: a finite number from 0 to one day.
    fn req_seconds(&self, k: &str) -> Result<f64, Invalid> {
        match self.0.get(k) {
            None | Some(Val::Null) => Err(missing(k)),
            Some(Val::Num(n)) => match n.as_f64() {
                Some(x) if (0.0..=86_400.0).contains(&x) => Ok(x),
                _ => Err(Invalid::field(
                    Reason::BadValue,
                    k,
                    format!("is {n} seconds, outside 0–86400"),
                )),
            },
            Some(other) => Err(wrong(k, "a number of seconds", other)),
        }
    }
    fn req_enum<T>(
        &self,
        k: &str,
        parse: fn(&str) -> Option<T>,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<T, Invalid>
    where
        T: Copy,
    {
        let s = self.req_str(k)?;
        parse(s).ok_or_else(|| bad_enum(k, s, all, name))
    }
}

fn bad_enum<T: Copy>(k: &str, s: &str, all: &[T], name: fn(T) -> &'static str) -> Invalid {
    let allowed: Vec<&str> = all.iter().map(|t| name(*t)).collect();
    Invalid::field(
        Reason::BadValue,
        k,
        format!("is {:?}, not one of {}", clip(s), allowed.join(", ")),
    )
}

fn missing(k: &str) -> Invalid {
    Invalid::field(Reason::MissingField, k, "is missing")
}

fn wrong(k: &str, expected: &str, got: &Val<'_>) -> Invalid {
    Invalid::field(
        Reason::WrongType,
        k,
        format!("should be {expected}, not {}", got.kind()),
    )
}

/// At most 40 characters of a value, for messages (values may be long or hostile).
fn clip(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(40).collect();
        c.push('…');
        c
    }
}

fn parse_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<FixedOffset>, Invalid> {
    let at = match DateTime::parse_from_rfc3339(s) {
        Ok(at) => at,
        Err(_) => {
            let naive = [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .any(|fmt| NaiveDateTime::parse_from_str(s, fmt).is_ok());
            return Err(if naive {
                Invalid::field(Reason::NoOffset, "at", "has no UTC offset")
            } else {
                Invalid::field(
                    Reason::BadTimestamp,
                    "at",
                    format!("is not an RFC 3339 timestamp: {:?}", clip(s)),
                )
            });
        }
    };
    let local = at.with_timezone(&chrono_tz::Europe::Rome);
    if local.date_naive() < EARLIEST {
        return Err(Invalid::field(
            Reason::TooOld,
            "at",
            format!("is dated {}, before 2015", local.year()),
        ));
    }
    if at.with_timezone(&Utc) > now + TimeDelta::days(1) {
        return Err(Invalid::field(
            Reason::InFuture,
            "at",
            "is more than a day in the future",
        ));
    }
    Ok(at)
}

/// The date spelled exactly `YYYY-MM-DD` in `b` (ten bytes), read digit by digit;
/// `None` for any other spelling or a day that does not exist.
pub fn ymd_exact(b: &[u8]) -> Option<NaiveDate> {
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
    {
        let n = |r: std::ops::Range<usize>| {
            b[r].iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        return NaiveDate::from_ymd_opt(n(0..4) as i32, n(5..7), n(8..10));
    }
    None
}

/// `NaiveDate::parse_from_str(s, "%Y-%m-%d")`, reading the usual `YYYY-MM-DD` directly
/// (strftime-style parsing was a visible share of validation, called on every string).
fn parse_ymd(s: &str) -> Option<NaiveDate> {
    if let Some(d) = ymd_exact(s.as_bytes()) {
        return Some(d);
    }
    // chrono also reads other spellings (one-digit months, signed or wider years), all
    // made of digits, signs, dashes and spaces; anything else cannot be a date.
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == '+' || c.is_whitespace())
    {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

fn check_personal(path: &str, v: &Val<'_>) -> Result<(), Invalid> {
    let found = |what: crate::personal::Kind| {
        Invalid::field(
            Reason::PersonalData,
            path,
            format!(
                "looks like {}; personal data is never accepted",
                what.describe()
            ),
        )
    };
    match v {
        Val::Str(s) => {
            if let Some(k) = crate::personal::first_in(s) {
                return Err(found(k));
            }
        }
        Val::Num(n) if crate::personal::number_is_phone(&n.to_string()) => {
            return Err(found(crate::personal::Kind::Phone));
        }
        Val::Arr(items) => {
            for item in items {
                check_personal(path, item)?;
            }
        }
        Val::Obj(m) => {
            for (k, item) in m.iter() {
                check_key(path, k)?;
                check_personal(&format!("{path}.{k}"), item)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A key is a string of the message too: one holding personal data is refused. The
/// message names where (`parent`, empty at the top level), never the key itself.
fn check_key(parent: &str, k: &str) -> Result<(), Invalid> {
    match crate::personal::first_in(k) {
        Some(what) => Err(Invalid::new(
            Reason::PersonalData,
            None,
            format!(
                "a field name {} looks like {}; personal data is never accepted",
                if parent.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("inside \"{parent}\"")
                },
                what.describe()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn ok_line() -> Value {
        serde_json::json!({
            "event_id": "0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10",
            "type": "call.answered", "v": 1, "at": "2024-03-05T09:12:44+01:00",
            "source": "milano-020202", "contact_id": "c-1",
            "family": "a1b2c3d4e5f60718", "operator": "op-7", "wait_s": 12
        })
    }

    fn reason_of(v: &Value) -> Reason {
        parse_event(v.to_string().as_bytes(), now())
            .unwrap_err()
            .reason
    }

    #[test]
    fn dates_read_as_chrono_reads_them() {
        for s in [
            "2024-03-05",
            "2024-02-29",
            "2023-02-29",
            "2024-02-30",
            "2024-13-01",
            "2024-00-10",
            "2024-1-5",
            "2024-01-5",
            "+2024-01-05",
            "-0001-01-01",
            "02024-01-05",
            "2024-01-05 ",
            " 2024-01-05",
            "2024/01/05",
            "20240105",
            "",
            "abcd-ef-gh",
            "９９９９-01-01",
        ] {
            assert_eq!(
                parse_ymd(s),
                NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_valid_event_parses_and_round_trips() {
        let ev = parse_event(ok_line().to_string().as_bytes(), now()).unwrap();
        assert_eq!(ev.event_type(), EventType::CallAnswered);
        assert_eq!(
            ev.payload,
            Payload::CallAnswered {
                operator: "op-7".into(),
                wait_s: 12.0
            }
        );
        let again = parse_event(ev.to_json().as_bytes(), now()).unwrap();
        assert_eq!(again, ev);
    }

    #[test]
    fn each_kind_of_bad_input_gets_its_reason() {
        let set = |k: &str, v: Value| {
            let mut o = ok_line();
            o[k] = v;
            o
        };
        let del = |k: &str| {
            let mut o = ok_line();
            o.as_object_mut().unwrap().remove(k);
            o
        };
        assert_eq!(
            parse_event(b"\xff\xfe", now()).unwrap_err().reason,
            Reason::NotUtf8
        );
        assert_eq!(
            parse_event(b"{\"a\":", now()).unwrap_err().reason,
            Reason::NotJson
        );
        assert_eq!(
            parse_event(b"[1]", now()).unwrap_err().reason,
            Reason::NotObject
        );
        assert_eq!(
            reason_of(&set("type", "call.lost".into())),
            Reason::UnknownType
        );
        assert_eq!(reason_of(&set("v", 2.into())), Reason::BadVersion);
        assert_eq!(reason_of(&del("operator")), Reason::MissingField);
        assert_eq!(reason_of(&set("wait_s", "12".into())), Reason::WrongType);
        assert_eq!(reason_of(&set("wait_s", (-1).into())), Reason::BadValue);
        assert_eq!(reason_of(&set("event_id", "x".into())), Reason::BadEventId);
        assert_eq!(
            reason_of(&set("family", "ABCDEF0123456789".into())),
            Reason::BadFamily
        );
        assert_eq!(
            reason_of(&set("operator", "+39 320 437 5996".into())),
            Reason::PersonalData
        );
        assert_eq!(
            reason_of(&set("note", "mario.rossi@example.it".into())),
            Reason::PersonalData
        );
        assert_eq!(
            reason_of(&set("at", "2024-03-05T09:12:44".into())),
            Reason::NoOffset
        );
        assert_eq!(
            reason_of(&set("at", "yesterday".into())),
            Reason::BadTimestamp
        );
        assert_eq!(
            reason_of(&set("at", "2014-12-31T12:00:00+01:00".into())),
            Reason::TooOld
        );
        assert_eq!(
            reason_of(&set("at", "2026-11-25T12:00:00+01:00".into())),
            Reason::InFuture
        );
    }

    #[test]
    fn messages_name_the_field() {
        let mut o = ok_line();
        o["at"] = "2024-03-05T09:12:44".into();
        let e = parse_event(o.to_string().as_bytes(), now()).unwrap_err();
        assert_eq!(e.to_string(), "field \"at\" has no UTC offset");
        assert_eq!(e.field.as_deref(), Some("at"));
    }

    #[test]
    fn phone_detection_spares_ids_and_dates() {
        for s in [
            "320-437.5996",
            "+393204375996",
            "02 1234 5678 9",
            "tel. 3204375996",
        ] {
            assert_eq!(
                crate::personal::first_in(s),
                Some(crate::personal::Kind::Phone),
                "{s}"
            );
        }
        for s in [
            "550e8400-e29b-41d4-a716-446655440000",
            "2024-03-05",
            "servizio-sociale-municipio-3",
            "02.02.02",
            "n-20240305-0001",
        ] {
            assert_eq!(crate::personal::first_in(s), None, "{s}");
        }
    }

    #[test]
    fn unknown_fields_are_dropped_and_named_not_rejected() {
        let mut o = ok_line();
        o["queue"] = "main".into();
        o["note for Maria"] = "via Padova".into();
        o["simulated"] = true.into();
        let ev = parse_event(o.to_string().as_bytes(), now()).unwrap();
        let mut dropped = ev.dropped.clone();
        dropped.sort();
        assert_eq!(dropped, vec!["(other)".to_string(), "queue".to_string()]);
        assert_eq!(ev.simulated, Some(true));
        let back = ev.to_json();
        assert!(!back.contains("main") && !back.contains("Padova"), "{back}");
        o["simulated"] = "yes".into();
        assert!(parse_event(o.to_string().as_bytes(), now()).is_err());
    }

    #[test]
    fn nested_payloads_are_accepted() {
        let mut o = ok_line();
        let m = o.as_object_mut().unwrap();
        let op = m.remove("operator").unwrap();
        let w = m.remove("wait_s").unwrap();
        m.insert(
            "payload".into(),
            serde_json::json!({"operator": op, "wait_s": w}),
        );
        let ev = parse_event(o.to_string().as_bytes(), now()).unwrap();
        assert_eq!(
            ev.payload,
            Payload::CallAnswered {
                operator: "op-7".into(),
                wait_s: 12.0
            }
        );
        assert!(ev.dropped.is_empty());
    }

    #[test]
    fn revision_1_1_personal_data_and_codes() {
        let with = |k: &str, v: Value| {
            let mut o = ok_line();
            o[k] = v;
            o
        };
        for (k, v) in [
            (
                "note",
                Value::from("Maria Rossi via Padova 12 tel.3331234567"),
            ),
            ("note", Value::from("cell3331234567")),
            ("note", Value::from("1234567890123456")),
            ("n", serde_json::json!(-3331234567_i64)),
            ("n", serde_json::json!(3331234567.0)),
            ("cf", Value::from("RSSMRA80A01F205X")),
            ("iban", Value::from("IT60X0542811101000000123456")),
            ("mail", Value::from("m.rossi@example.it")),
            ("tel3331234567", Value::from("x")),
        ] {
            assert_eq!(
                reason_of(&with(k, v.clone())),
                Reason::PersonalData,
                "{k}: {v}"
            );
        }
        for (k, v) in [
            ("operator", "Maria Rossi"),
            ("operator", "12-34"),
            ("contact_id", "c 1"),
            ("contact_id", "0042"),
        ] {
            assert_eq!(reason_of(&with(k, v.into())), Reason::BadValue, "{k}: {v}");
        }
        // An identifier with dashes and digit groups is a code, not a phone number.
        let ok = with("contact_id", "mi-2024-010135".into());
        assert!(parse_event(ok.to_string().as_bytes(), now()).is_ok());
        // The message never quotes a key that holds personal data.
        let e = parse_event(
            with("tel3331234567", "x".into()).to_string().as_bytes(),
            now(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("3331234567"), "{e}");
    }

    #[test]
    fn size_keys_and_depth_are_bounded() {
        let mut o = ok_line();
        o["pad"] = "x".repeat(MAX_MESSAGE_BYTES).into();
        assert_eq!(reason_of(&o), Reason::TooLarge);
        let mut o = ok_line();
        for k in 0..MAX_KEYS {
            o[format!("k{k}")] = 1.into();
        }
        assert_eq!(reason_of(&o), Reason::BadValue);
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_DEPTH {
            deep = serde_json::json!([deep]);
        }
        let mut o = ok_line();
        o["deep"] = deep;
        assert_eq!(reason_of(&o), Reason::BadValue);
        // Far deeper than the parser goes: refused, not a crash.
        let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_event(bomb.as_bytes(), now()).is_err());
    }
}
