//! The v1 event types of the contract (`docs/EVENTS.md`), as Rust values.
//!
//! An [`Event`] is the envelope every event carries plus a typed [`Payload`]. Events are
//! built by [`crate::validate::parse_event`] from wire bytes, or by producers (the
//! simulator) directly, and turned back into wire JSON with [`Event::to_json`]. Payload
//! fields travel flat beside the envelope fields, as in the contract's examples.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use serde_json::{Map, Value};

/// Declares a closed set of string values: the enum, its wire names and `ALL`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }
        impl $name {
            /// Every value, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The value as written on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
            /// Parses a wire value; `None` if it is not one of [`Self::ALL`].
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The `type` of an event.
    EventType {
        /// A call entered the queue.
        CallReceived => "call.received",
        /// An operator answered a call.
        CallAnswered => "call.answered",
        /// The caller hung up before an answer.
        CallAbandoned => "call.abandoned",
        /// The call ended.
        CallEnded => "call.ended",
        /// A chat conversation started.
        ChatOpened => "chat.opened",
        /// One chat message (never its text).
        ChatMessage => "chat.message",
        /// The chat conversation ended.
        ChatClosed => "chat.closed",
        /// What the operator learned about the family.
        FamilyProfiled => "family.profiled",
        /// A need the family expressed, with its first-level outcome.
        NeedRecorded => "need.recorded",
        /// A case sent to the second level or a partner service.
        ReferralCreated => "referral.created",
        /// A social worker called the family back.
        ReferralCallback => "referral.callback",
        /// An appointment was booked.
        AppointmentBooked => "appointment.booked",
        /// The family came to the appointment.
        AppointmentAttended => "appointment.attended",
        /// The family did not come to the appointment.
        AppointmentMissed => "appointment.missed",
        /// The referral was closed with an outcome.
        ReferralClosed => "referral.closed",
    }
);

impl EventType {
    /// The default Kafka topic (and local-log topic) of this type.
    pub fn topic(self) -> Topic {
        match self {
            EventType::CallReceived
            | EventType::CallAnswered
            | EventType::CallAbandoned
            | EventType::CallEnded => Topic::Calls,
            EventType::ChatOpened | EventType::ChatMessage | EventType::ChatClosed => Topic::Chats,
            _ => Topic::Referrals,
        }
    }
}

wire_enum!(
    /// The three topics of the contract.
    Topic {
        /// Telephony events.
        Calls => "calls",
        /// Chat events (WhatsApp, web chat).
        Chats => "chats",
        /// What operators record, and the second-level case flow.
        Referrals => "referrals",
    }
);

wire_enum!(
    /// Chat channel of `chat.opened`.
    Channel {
        /// WhatsApp.
        Whatsapp => "whatsapp",
        /// The municipality's web chat.
        Webchat => "webchat",
    }
);

wire_enum!(
    /// Direction of a `chat.message`.
    Direction {
        /// From the family.
        In => "in",
        /// From the operator.
        Out => "out",
    }
);

wire_enum!(
    /// Family stage in `family.profiled`.
    Stage {
        /// Expecting a child.
        Pregnancy => "pregnancy",
        /// Child aged 0 to 12 months.
        Months0To12 => "0-12m",
        /// Child aged 12 to 36 months.
        Months12To36 => "12-36m",
    }
);

wire_enum!(
    /// Need category of `need.recorded`.
    NeedCategory {
        /// Money, bonuses, allowances.
        Economic => "economic",
        /// Health and pediatric care.
        Health => "health",
        /// Schools and education.
        Education => "education",
        /// Nursery and childcare.
        Childcare => "childcare",
        /// Meeting other parents, social life.
        Socialisation => "socialisation",
        /// Papers, residence, registration.
        Documents => "documents",
        /// A home.
        Housing => "housing",
        /// Employment.
        Work => "work",
        /// Psychological support.
        Psychological => "psychological",
        /// Violence.
        Violence => "violence",
        /// Anything else.
        Other => "other",
    }
);

wire_enum!(
    /// First-level outcome of `need.recorded`.
    NeedOutcome {
        /// Information given; the need is answered at the first level.
        Informed => "informed",
        /// Sent to the second level or a partner service.
        Referred => "referred",
        /// Appointment booked with the social service of the Municipio.
        Booked => "booked",
        /// No resource exists for it.
        NoResource => "no_resource",
        /// On a waiting list.
        WaitingList => "waiting_list",
        /// The family is not eligible.
        NotEligible => "not_eligible",
    }
);

wire_enum!(
    /// Urgency of `referral.created`.
    Urgency {
        /// Normal.
        Normal => "normal",
        /// Urgent.
        Urgent => "urgent",
    }
);

wire_enum!(
    /// Closing outcome of `referral.closed`.
    ClosingOutcome {
        /// The need was met.
        Resolved => "resolved",
        /// The service is not available.
        ServiceUnavailable => "service_unavailable",
        /// On a waiting list.
        WaitingList => "waiting_list",
        /// Not eligible.
        NotEligible => "not_eligible",
        /// The family could not be reached.
        Unreachable => "unreachable",
        /// The family declined.
        Declined => "declined",
    }
);

/// Where a family lives, as carried by `family.profiled` (replaced as a whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Territory {
    /// ISTAT municipality code, six digits (`"015146"` is Milano).
    pub comune: Option<String>,
    /// Milan NIL (Nucleo d'Identità Locale), 1–88.
    pub nil: Option<i32>,
    /// Milan Municipio, 1–9.
    pub municipio: Option<i32>,
}

/// What an operator learned about a family; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Territory, replaced as a whole when present.
    pub territory: Option<Territory>,
    /// Pregnancy or age of the child.
    pub stage: Option<Stage>,
    /// First child.
    pub first_child: Option<bool>,
    /// Single parent.
    pub single_parent: Option<bool>,
    /// Relatives or friends nearby who help.
    pub family_network: Option<bool>,
    /// ISO 639-1 language code.
    pub language: Option<String>,
    /// An interpreter is needed.
    pub interpreter_needed: Option<bool>,
    /// Moved to Italy or to the city in the last two years.
    pub arrived_last_2y: Option<bool>,
    /// The child has a pediatrician.
    pub has_pediatrician: Option<bool>,
}

/// The typed payload of an event, one variant per [`EventType`].
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // fields are the contract's, documented in docs/EVENTS.md
pub enum Payload {
    CallReceived {
        ivr_path: String,
    },
    CallAnswered {
        operator: String,
        wait_s: f64,
    },
    CallAbandoned {
        wait_s: f64,
    },
    CallEnded {
        duration_s: f64,
    },
    ChatOpened {
        channel: Channel,
    },
    ChatMessage {
        direction: Direction,
    },
    ChatClosed,
    FamilyProfiled(Profile),
    NeedRecorded {
        need_id: String,
        category: NeedCategory,
        outcome: NeedOutcome,
        resource: Option<String>,
    },
    ReferralCreated {
        referral_id: String,
        need_ids: Vec<String>,
        to: String,
        urgency: Urgency,
    },
    ReferralCallback {
        referral_id: String,
        reached: bool,
    },
    AppointmentBooked {
        appointment_id: String,
        referral_id: Option<String>,
        service: String,
        for_date: NaiveDate,
    },
    AppointmentAttended {
        appointment_id: String,
    },
    AppointmentMissed {
        appointment_id: String,
    },
    ReferralClosed {
        referral_id: String,
        outcome: ClosingOutcome,
    },
}

impl Payload {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::CallReceived { .. } => EventType::CallReceived,
            Payload::CallAnswered { .. } => EventType::CallAnswered,
            Payload::CallAbandoned { .. } => EventType::CallAbandoned,
            Payload::CallEnded { .. } => EventType::CallEnded,
            Payload::ChatOpened { .. } => EventType::ChatOpened,
            Payload::ChatMessage { .. } => EventType::ChatMessage,
            Payload::ChatClosed => EventType::ChatClosed,
            Payload::FamilyProfiled(_) => EventType::FamilyProfiled,
            Payload::NeedRecorded { .. } => EventType::NeedRecorded,
            Payload::ReferralCreated { .. } => EventType::ReferralCreated,
            Payload::ReferralCallback { .. } => EventType::ReferralCallback,
            Payload::AppointmentBooked { .. } => EventType::AppointmentBooked,
            Payload::AppointmentAttended { .. } => EventType::AppointmentAttended,
            Payload::AppointmentMissed { .. } => EventType::AppointmentMissed,
            Payload::ReferralClosed { .. } => EventType::ReferralClosed,
        }
    }
}

/// One v1 event: the envelope and its typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id (UUID, lower case); a second event with the same id is a duplicate.
    pub event_id: String,
    /// Schema version of the type; 1.
    pub v: u32,
    /// When it happened, with the producer's UTC offset.
    pub at: DateTime<FixedOffset>,
    /// The service line, e.g. `milano-020202`.
    pub source: String,
    /// The call or chat conversation the event belongs to.
    pub contact_id: String,
    /// Pseudonymous family key (16–64 lowercase hex chars).
    pub family: String,
    /// Type-specific fields.
    pub payload: Payload,
    /// `true` on events made by a simulator or a demo (contract 1.1).
    pub simulated: Option<bool>,
    /// Names of the unknown fields the message carried; their values are not kept
    /// (contract 1.1: only the contract's fields are stored).
    pub dropped: Vec<String>,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The wire JSON object: envelope first, then payload fields.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("event_id".into(), self.event_id.clone().into());
        m.insert("type".into(), self.event_type().as_str().into());
        m.insert("v".into(), self.v.into());
        m.insert(
            "at".into(),
            self.at.to_rfc3339_opts(SecondsFormat::AutoSi, false).into(),
        );
        m.insert("source".into(), self.source.clone().into());
        m.insert("contact_id".into(), self.contact_id.clone().into());
        m.insert("family".into(), self.family.clone().into());
        if let Some(sim) = self.simulated {
            m.insert("simulated".into(), sim.into());
        }
        payload_into(&self.payload, &mut m);
        Value::Object(m)
    }

    /// The wire JSON text (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

fn num(x: f64) -> Value {
    // Whole seconds stay integers on the wire; fractions keep their digits.
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn payload_into(p: &Payload, m: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    match p {
        Payload::CallReceived { ivr_path } => put("ivr_path", ivr_path.as_str().into()),
        Payload::CallAnswered { operator, wait_s } => {
            put("operator", operator.as_str().into());
            put("wait_s", num(*wait_s));
        }
        Payload::CallAbandoned { wait_s } => put("wait_s", num(*wait_s)),
        Payload::CallEnded { duration_s } => put("duration_s", num(*duration_s)),
        Payload::ChatOpened { channel } => put("channel", channel.as_str().into()),
        Payload::ChatMessage { direction } => put("direction", direction.as_str().into()),
        Payload::ChatClosed => {}
        Payload::FamilyProfiled(pr) => {
            if let Some(t) = &pr.territory {
                let mut tm = Map::new();
                if let Some(c) = &t.comune {
                    tm.insert("comune".into(), c.as_str().into());
                }
                if let Some(n) = t.nil {
                    tm.insert("nil".into(), n.into());
                }
                if let Some(mu) = t.municipio {
                    tm.insert("municipio".into(), mu.into());
                }
                put("territory", Value::Object(tm));
            }
            if let Some(s) = pr.stage {
                put("stage", s.as_str().into());
            }
            let bools = [
                ("first_child", pr.first_child),
                ("single_parent", pr.single_parent),
                ("family_network", pr.family_network),
            ];
            for (k, b) in bools {
                if let Some(b) = b {
                    put(k, b.into());
                }
            }
            if let Some(l) = &pr.language {
                put("language", l.as_str().into());
            }
            let bools = [
                ("interpreter_needed", pr.interpreter_needed),
                ("arrived_last_2y", pr.arrived_last_2y),
                ("has_pediatrician", pr.has_pediatrician),
            ];
            for (k, b) in bools {
                if let Some(b) = b {
                    put(k, b.into());
                }
            }
        }
        Payload::NeedRecorded {
            need_id,
            category,
            outcome,
            resource,
        } => {
            put("need_id", need_id.as_str().into());
            put("category", category.as_str().into());
            put("outcome", outcome.as_str().into());
            if let Some(r) = resource {
                put("resource", r.as_str().into());
            }
        }
        Payload::ReferralCreated {
            referral_id,
            need_ids,
            to,
            urgency,
        } => {
            put("referral_id", referral_id.as_str().into());
            put(
                "need_ids",
                Value::Array(need_ids.iter().map(|s| s.as_str().into()).collect()),
            );
            put("to", to.as_str().into());
            put("urgency", urgency.as_str().into());
        }
        Payload::ReferralCallback {
            referral_id,
            reached,
        } => {
            put("referral_id", referral_id.as_str().into());
            put("reached", (*reached).into());
        }
        Payload::AppointmentBooked {
            appointment_id,
            referral_id,
            service,
            for_date,
        } => {
            put("appointment_id", appointment_id.as_str().into());
            if let Some(r) = referral_id {
                put("referral_id", r.as_str().into());
            }
            put("service", service.as_str().into());
            put("for_date", for_date.format("%Y-%m-%d").to_string().into());
        }
        Payload::AppointmentAttended { appointment_id }
        | Payload::AppointmentMissed { appointment_id } => {
            put("appointment_id", appointment_id.as_str().into())
        }
        Payload::ReferralClosed {
            referral_id,
            outcome,
        } => {
            put("referral_id", referral_id.as_str().into());
            put("outcome", outcome.as_str().into());
        }
    }
}
