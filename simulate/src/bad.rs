//! Malformed lines, one kind for each way an input can break the contract.
//!
//! Each [`BadKind`] takes a valid event line and breaks it in one way, so that
//! [`culla_schemas::parse_event`] rejects it with exactly the [`Reason`] the kind names
//! (`bad_line`'s tests check this). Personal data uses obviously fake values
//! (`+39 000 000 0000`, `nome.cognome@example.invalid`).

use culla_schemas::Reason;
use serde_json::Value;

use crate::rng::Rng;

/// A way to break a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// A byte that is not UTF-8 inside the line.
    NotUtf8,
    /// The line cut in half.
    NotJson,
    /// The event wrapped in a JSON array.
    NotObject,
    /// A `type` the contract does not know.
    UnknownType,
    /// `v` = 2.
    BadVersion,
    /// `contact_id` removed.
    MissingField,
    /// `v` as a string.
    WrongType,
    /// `source` with spaces and capitals.
    BadValue,
    /// `event_id` that is not a UUID.
    BadEventId,
    /// `family` in upper case.
    BadFamily,
    /// A (fake) phone number in an extra field.
    Phone,
    /// A (fake) e-mail address in an extra field.
    Email,
    /// `at` without its UTC offset.
    NoOffset,
    /// `at` that is not a timestamp.
    BadTimestamp,
    /// `at` in 2014.
    TooOld,
    /// `at` in 2099.
    InFuture,
}

impl BadKind {
    /// Every kind, in the order the simulator cycles through them.
    pub const ALL: &'static [BadKind] = &[
        BadKind::NotUtf8,
        BadKind::NotJson,
        BadKind::NotObject,
        BadKind::UnknownType,
        BadKind::BadVersion,
        BadKind::MissingField,
        BadKind::WrongType,
        BadKind::BadValue,
        BadKind::BadEventId,
        BadKind::BadFamily,
        BadKind::Phone,
        BadKind::Email,
        BadKind::NoOffset,
        BadKind::BadTimestamp,
        BadKind::TooOld,
        BadKind::InFuture,
    ];

    /// The reason `parse_event` gives for a line broken this way.
    pub fn reason(self) -> Reason {
        match self {
            BadKind::NotUtf8 => Reason::NotUtf8,
            BadKind::NotJson => Reason::NotJson,
            BadKind::NotObject => Reason::NotObject,
            BadKind::UnknownType => Reason::UnknownType,
            BadKind::BadVersion => Reason::BadVersion,
            BadKind::MissingField => Reason::MissingField,
            BadKind::WrongType => Reason::WrongType,
            BadKind::BadValue => Reason::BadValue,
            BadKind::BadEventId => Reason::BadEventId,
            BadKind::BadFamily => Reason::BadFamily,
            BadKind::Phone | BadKind::Email => Reason::PersonalData,
            BadKind::NoOffset => Reason::NoOffset,
            BadKind::BadTimestamp => Reason::BadTimestamp,
            BadKind::TooOld => Reason::TooOld,
            BadKind::InFuture => Reason::InFuture,
        }
    }
}

/// Breaks a valid event line (`valid` is the JSON text of an event) in the given way.
pub fn bad_line(kind: BadKind, valid: &str, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = valid.as_bytes().to_vec();
    match kind {
        BadKind::NotUtf8 => {
            let at = bytes.len() / 2;
            bytes.insert(at, 0xFF);
            return bytes;
        }
        BadKind::NotJson => {
            bytes.truncate(bytes.len() / 2);
            return bytes;
        }
        BadKind::NotObject => {
            let mut v = b"[".to_vec();
            v.extend_from_slice(&bytes);
            v.push(b']');
            return v;
        }
        _ => {}
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(valid) else {
        // Not an event line to begin with: it is already broken.
        return bytes;
    };
    let at = obj
        .get("at")
        .and_then(Value::as_str)
        .unwrap_or("2024-01-01T00:00:00+01:00")
        .to_string();
    let with_year = |y: &str| format!("{y}{}", at.get(4..).unwrap_or(""));
    match kind {
        BadKind::UnknownType => {
            obj.insert("type".into(), "call.transferred".into());
        }
        BadKind::BadVersion => {
            obj.insert("v".into(), 2.into());
        }
        BadKind::MissingField => {
            obj.remove("contact_id");
        }
        BadKind::WrongType => {
            obj.insert("v".into(), "1".into());
        }
        BadKind::BadValue => {
            obj.insert("source".into(), "Milano 02 02 02".into());
        }
        BadKind::BadEventId => {
            obj.insert("event_id".into(), format!("evt-{}", rng.hex(8)).into());
        }
        BadKind::BadFamily => {
            let upper = obj
                .get("family")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            obj.insert("family".into(), format!("X{upper}").into());
        }
        BadKind::Phone => {
            obj.insert("caller".into(), "+39 000 000 0000".into());
        }
        BadKind::Email => {
            obj.insert("note".into(), "nome.cognome@example.invalid".into());
        }
        BadKind::NoOffset => {
            let cut = at.len().saturating_sub(6);
            obj.insert("at".into(), at.get(..cut).unwrap_or("").into());
        }
        BadKind::BadTimestamp => {
            obj.insert("at".into(), "05/03/2024 09:12".into());
        }
        BadKind::TooOld => {
            obj.insert("at".into(), with_year("2014").into());
        }
        BadKind::InFuture => {
            obj.insert("at".into(), with_year("2099").into());
        }
        BadKind::NotUtf8 | BadKind::NotJson | BadKind::NotObject => {}
    }
    Value::Object(obj).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use culla_schemas::parse_event;

    #[test]
    fn each_kind_gets_its_reason() {
        let valid = r#"{"event_id":"0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10","type":"call.answered","v":1,"at":"2024-03-05T09:12:44+01:00","source":"milano-020202","contact_id":"mi-2024-000001","family":"a1b2c3d4e5f60718a1b2c3d4e5f60718","operator":"op-07","wait_s":12}"#;
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        assert!(parse_event(valid.as_bytes(), now).is_ok());
        let mut rng = Rng::new(1);
        for k in BadKind::ALL {
            let line = bad_line(*k, valid, &mut rng);
            let err = parse_event(&line, now).expect_err("must be rejected");
            assert_eq!(err.reason, k.reason(), "{k:?}: {}", err.message);
        }
    }
}
