//! The Arrow schemas of culla's tables, and a builder that turns events into batches.
//!
//! `events` is one row per accepted event: envelope columns, one nullable column per
//! payload field, and where it was read from — the contract's fields only, never the
//! message's JSON or fields the contract does not know (revision 1.1). The hive partition columns
//! `source` and `event_date` live in directory names, so [`events_file_schema`] (what
//! a Parquet file holds) lacks them and [`events_table_schema`] (what queries see) ends
//! with them. `dead_letters` keeps every rejected message with its reason.

use crate::event::{Event, Payload};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::{Arc, LazyLock};

/// The zone every report uses for time buckets.
pub const REPORT_TZ: chrono_tz::Tz = chrono_tz::Europe::Rome;

fn utc_ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn local_ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

static EVENTS_FILE: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let s = |n: &str| Field::new(n, Utf8, true);
    let b = |n: &str| Field::new(n, Boolean, true);
    Arc::new(Schema::new(vec![
        Field::new("event_id", Utf8, false),
        Field::new("type", Utf8, false),
        Field::new("v", Int32, false),
        Field::new("at", utc_ts(), false),
        Field::new("at_local", local_ts(), false),
        Field::new("contact_id", Utf8, false),
        Field::new("family", Utf8, false),
        s("ivr_path"),
        s("operator"),
        Field::new("wait_s", Float64, true),
        Field::new("duration_s", Float64, true),
        s("channel"),
        s("direction"),
        s("need_id"),
        s("category"),
        s("outcome"),
        s("resource"),
        s("referral_id"),
        Field::new(
            "need_ids",
            List(Arc::new(Field::new("item", Utf8, true))),
            true,
        ),
        s("referred_to"),
        s("urgency"),
        b("reached"),
        s("appointment_id"),
        s("service"),
        Field::new("for_date", Date32, true),
        b("has_territory"),
        s("comune"),
        Field::new("nil", Int32, true),
        Field::new("municipio", Int32, true),
        s("stage"),
        b("first_child"),
        b("single_parent"),
        b("family_network"),
        s("language"),
        b("interpreter_needed"),
        b("arrived_last_2y"),
        b("has_pediatrician"),
        b("simulated"),
        Field::new("topic", Utf8, false),
        Field::new("partition", Int32, false),
        Field::new("offset", Int64, false),
    ]))
});

/// The columns of one `events` Parquet file (no partition columns).
pub fn events_file_schema() -> SchemaRef {
    EVENTS_FILE.clone()
}

/// The hive partition columns of `events`, in directory order.
pub fn events_partition_fields() -> Vec<Field> {
    vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("event_date", DataType::Utf8, false),
    ]
}

/// The `events` table as queries see it: the file columns, then `source`, `event_date`.
pub fn events_table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = EVENTS_FILE
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(events_partition_fields());
    Arc::new(Schema::new(fields))
}

static DEAD_LETTERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("topic", Utf8, false),
        Field::new("partition", Int32, false),
        Field::new("offset", Int64, false),
        Field::new("key", Binary, true),
        Field::new("raw", Binary, false),
        Field::new("raw_text", Utf8, false),
        Field::new("reason", Utf8, false),
        Field::new("field", Utf8, true),
        Field::new("detail", Utf8, false),
        Field::new("received_at", utc_ts(), false),
        Field::new("redacted", Boolean, false),
    ]))
});

/// The columns of a `dead_letters` Parquet file (partitioned by `received_date`).
pub fn dead_letters_file_schema() -> SchemaRef {
    DEAD_LETTERS.clone()
}

/// Where an event was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// The local (Europe/Rome) calendar date of an event: its `event_date` partition.
pub fn event_date(ev: &Event) -> NaiveDate {
    ev.at.with_timezone(&REPORT_TZ).date_naive()
}

/// Days since 1970-01-01, as Arrow's Date32.
pub fn date32(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

/// Accumulates events into `events` file batches (one builder per output file).
pub struct EventBatchBuilder {
    event_id: StringBuilder,
    event_type: StringBuilder,
    v: Int32Builder,
    at: TimestampMicrosecondBuilder,
    at_local: TimestampMicrosecondBuilder,
    contact_id: StringBuilder,
    family: StringBuilder,
    ivr_path: StringBuilder,
    operator: StringBuilder,
    wait_s: Float64Builder,
    duration_s: Float64Builder,
    channel: StringBuilder,
    direction: StringBuilder,
    need_id: StringBuilder,
    category: StringBuilder,
    outcome: StringBuilder,
    resource: StringBuilder,
    referral_id: StringBuilder,
    need_ids: ListBuilder<StringBuilder>,
    referred_to: StringBuilder,
    urgency: StringBuilder,
    reached: BooleanBuilder,
    appointment_id: StringBuilder,
    service: StringBuilder,
    for_date: Date32Builder,
    has_territory: BooleanBuilder,
    comune: StringBuilder,
    nil: Int32Builder,
    municipio: Int32Builder,
    stage: StringBuilder,
    first_child: BooleanBuilder,
    single_parent: BooleanBuilder,
    family_network: BooleanBuilder,
    language: StringBuilder,
    interpreter_needed: BooleanBuilder,
    arrived_last_2y: BooleanBuilder,
    has_pediatrician: BooleanBuilder,
    simulated: BooleanBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    rows: usize,
    raw_bytes: usize,
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBatchBuilder {
    /// An empty builder (columns grow as rows come).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A builder sized for `rows` events: a batch built in one go allocates each column
    /// once instead of growing it.
    pub fn with_capacity(rows: usize) -> Self {
        // Bytes per row of the always-present strings; payload columns are mostly null.
        let s = |per_row: usize| StringBuilder::with_capacity(rows, rows * per_row);
        let b = || BooleanBuilder::with_capacity(rows);
        EventBatchBuilder {
            event_id: s(36),
            event_type: s(16),
            v: Int32Builder::with_capacity(rows),
            at: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            at_local: TimestampMicrosecondBuilder::with_capacity(rows),
            contact_id: s(12),
            family: s(32),
            ivr_path: s(0),
            operator: s(0),
            wait_s: Float64Builder::with_capacity(rows),
            duration_s: Float64Builder::with_capacity(rows),
            channel: s(0),
            direction: s(0),
            need_id: s(0),
            category: s(0),
            outcome: s(0),
            resource: s(0),
            referral_id: s(0),
            need_ids: ListBuilder::with_capacity(StringBuilder::new(), rows),
            referred_to: s(0),
            urgency: s(0),
            reached: b(),
            appointment_id: s(0),
            service: s(0),
            for_date: Date32Builder::with_capacity(rows),
            has_territory: b(),
            comune: s(0),
            nil: Int32Builder::with_capacity(rows),
            municipio: Int32Builder::with_capacity(rows),
            stage: s(0),
            first_child: b(),
            single_parent: b(),
            family_network: b(),
            language: s(0),
            interpreter_needed: b(),
            arrived_last_2y: b(),
            has_pediatrician: b(),
            simulated: b(),
            topic: s(9),
            partition: Int32Builder::with_capacity(rows),
            offset: Int64Builder::with_capacity(rows),
            rows: 0,
            raw_bytes: 0,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Bytes of the messages the pending rows came from: a cheap estimate of the
    /// batch's size.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    /// Appends one validated event and its lineage; of `raw`, the message it was parsed
    /// from, only the length is used (for [`raw_bytes`](Self::raw_bytes)).
    pub fn append(&mut self, ev: &Event, raw: &str, from: &Lineage<'_>) {
        self.rows += 1;
        self.raw_bytes += raw.len();
        self.event_id.append_value(&ev.event_id);
        self.event_type.append_value(ev.event_type().as_str());
        self.v.append_value(ev.v as i32);
        let utc_us = ev.at.timestamp_micros();
        self.at.append_value(utc_us);
        let local = ev.at.with_timezone(&REPORT_TZ).naive_local();
        self.at_local
            .append_value(local.and_utc().timestamp_micros());
        self.contact_id.append_value(&ev.contact_id);
        self.family.append_value(&ev.family);

        // Every payload column gets exactly one value or null per row.
        let mut ivr_path = None;
        let mut operator = None;
        let mut wait_s = None;
        let mut duration_s = None;
        let mut channel = None;
        let mut direction = None;
        let mut need_id = None;
        let mut category = None;
        let mut outcome = None;
        let mut resource = None;
        let mut referral_id = None;
        let mut need_ids: Option<&[String]> = None;
        let mut referred_to = None;
        let mut urgency = None;
        let mut reached = None;
        let mut appointment_id = None;
        let mut service = None;
        let mut for_date = None;
        let mut profile = None;
        match &ev.payload {
            Payload::CallReceived { ivr_path: p } => ivr_path = Some(p.as_str()),
            Payload::CallAnswered {
                operator: o,
                wait_s: w,
            } => {
                operator = Some(o.as_str());
                wait_s = Some(*w);
            }
            Payload::CallAbandoned { wait_s: w } => wait_s = Some(*w),
            Payload::CallEnded { duration_s: d } => duration_s = Some(*d),
            Payload::ChatOpened { channel: c } => channel = Some(c.as_str()),
            Payload::ChatMessage { direction: d } => direction = Some(d.as_str()),
            Payload::ChatClosed => {}
            Payload::FamilyProfiled(p) => profile = Some(p),
            Payload::NeedRecorded {
                need_id: n,
                category: c,
                outcome: o,
                resource: r,
            } => {
                need_id = Some(n.as_str());
                category = Some(c.as_str());
                outcome = Some(o.as_str());
                resource = r.as_deref();
            }
            Payload::ReferralCreated {
                referral_id: r,
                need_ids: n,
                to,
                urgency: u,
            } => {
                referral_id = Some(r.as_str());
                need_ids = Some(n);
                referred_to = Some(to.as_str());
                urgency = Some(u.as_str());
            }
            Payload::ReferralCallback {
                referral_id: r,
                reached: x,
            } => {
                referral_id = Some(r.as_str());
                reached = Some(*x);
            }
            Payload::AppointmentBooked {
                appointment_id: a,
                referral_id: r,
                service: s,
                for_date: d,
            } => {
                appointment_id = Some(a.as_str());
                referral_id = r.as_deref();
                service = Some(s.as_str());
                for_date = Some(date32(*d));
            }
            Payload::AppointmentAttended { appointment_id: a }
            | Payload::AppointmentMissed { appointment_id: a } => appointment_id = Some(a.as_str()),
            Payload::ReferralClosed {
                referral_id: r,
                outcome: o,
            } => {
                referral_id = Some(r.as_str());
                outcome = Some(o.as_str());
            }
        }
        self.ivr_path.append_option(ivr_path);
        self.operator.append_option(operator);
        self.wait_s.append_option(wait_s);
        self.duration_s.append_option(duration_s);
        self.channel.append_option(channel);
        self.direction.append_option(direction);
        self.need_id.append_option(need_id);
        self.category.append_option(category);
        self.outcome.append_option(outcome);
        self.resource.append_option(resource);
        self.referral_id.append_option(referral_id);
        match need_ids {
            Some(ids) => {
                for id in ids {
                    self.need_ids.values().append_value(id);
                }
                self.need_ids.append(true);
            }
            None => self.need_ids.append(false),
        }
        self.referred_to.append_option(referred_to);
        self.urgency.append_option(urgency);
        self.reached.append_option(reached);
        self.appointment_id.append_option(appointment_id);
        self.service.append_option(service);
        self.for_date.append_option(for_date);
        let territory = profile.and_then(|p| p.territory.as_ref());
        self.has_territory
            .append_option(profile.map(|p| p.territory.is_some()));
        self.comune
            .append_option(territory.and_then(|t| t.comune.as_deref()));
        self.nil.append_option(territory.and_then(|t| t.nil));
        self.municipio
            .append_option(territory.and_then(|t| t.municipio));
        self.stage
            .append_option(profile.and_then(|p| p.stage.map(|s| s.as_str())));
        self.first_child
            .append_option(profile.and_then(|p| p.first_child));
        self.single_parent
            .append_option(profile.and_then(|p| p.single_parent));
        self.family_network
            .append_option(profile.and_then(|p| p.family_network));
        self.language
            .append_option(profile.and_then(|p| p.language.as_deref()));
        self.interpreter_needed
            .append_option(profile.and_then(|p| p.interpreter_needed));
        self.arrived_last_2y
            .append_option(profile.and_then(|p| p.arrived_last_2y));
        self.has_pediatrician
            .append_option(profile.and_then(|p| p.has_pediatrician));
        self.simulated.append_option(ev.simulated);
        self.topic.append_value(from.topic);
        self.partition.append_value(from.partition);
        self.offset.append_value(from.offset);
    }

    /// Takes the pending rows as a batch of [`events_file_schema`]; the builder is empty after.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        self.raw_bytes = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.v.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.at_local.finish()),
            Arc::new(self.contact_id.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.ivr_path.finish()),
            Arc::new(self.operator.finish()),
            Arc::new(self.wait_s.finish()),
            Arc::new(self.duration_s.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.direction.finish()),
            Arc::new(self.need_id.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.referral_id.finish()),
            Arc::new(self.need_ids.finish()),
            Arc::new(self.referred_to.finish()),
            Arc::new(self.urgency.finish()),
            Arc::new(self.reached.finish()),
            Arc::new(self.appointment_id.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.for_date.finish()),
            Arc::new(self.has_territory.finish()),
            Arc::new(self.comune.finish()),
            Arc::new(self.nil.finish()),
            Arc::new(self.municipio.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.first_child.finish()),
            Arc::new(self.single_parent.finish()),
            Arc::new(self.family_network.finish()),
            Arc::new(self.language.finish()),
            Arc::new(self.interpreter_needed.finish()),
            Arc::new(self.arrived_last_2y.finish()),
            Arc::new(self.has_pediatrician.finish()),
            Arc::new(self.simulated.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        RecordBatch::try_new(events_file_schema(), columns)
    }
}

/// One rejected message, ready for the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Topic it was read from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Message key, if any.
    pub key: Option<Vec<u8>>,
    /// The message bytes (personal data masked when `redacted`).
    pub raw: Vec<u8>,
    /// Stable reason code.
    pub reason: String,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// One-line explanation.
    pub detail: String,
    /// When culla received it, µs since the epoch (UTC).
    pub received_at_us: i64,
    /// Whether personal data was masked in `raw`.
    pub redacted: bool,
}

/// Builds a `dead_letters` batch.
pub fn dead_letters_batch(rows: &[DeadLetter]) -> Result<RecordBatch, ArrowError> {
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut key = BinaryBuilder::new();
    let mut raw = BinaryBuilder::new();
    let mut raw_text = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut field = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut received_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut redacted = BooleanBuilder::new();
    for r in rows {
        topic.append_value(&r.topic);
        partition.append_value(r.partition);
        offset.append_value(r.offset);
        key.append_option(r.key.as_deref());
        raw.append_value(&r.raw);
        raw_text.append_value(String::from_utf8_lossy(&r.raw));
        reason.append_value(&r.reason);
        field.append_option(r.field.as_deref());
        detail.append_value(&r.detail);
        received_at.append_value(r.received_at_us);
        redacted.append_value(r.redacted);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(key.finish()),
        Arc::new(raw.finish()),
        Arc::new(raw_text.finish()),
        Arc::new(reason.finish()),
        Arc::new(field.finish()),
        Arc::new(detail.finish()),
        Arc::new(received_at.finish()),
        Arc::new(redacted.finish()),
    ];
    RecordBatch::try_new(dead_letters_file_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_event;

    #[test]
    fn a_batch_has_the_file_schema_and_local_time() {
        let line = r#"{"event_id":"0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10","type":"family.profiled","v":1,"at":"2024-07-01T23:30:00Z","source":"milano-020202","contact_id":"c1","family":"a1b2c3d4e5f60718","territory":{"comune":"015146","nil":12},"single_parent":true}"#;
        let ev = parse_event(line.as_bytes(), chrono::Utc::now()).unwrap();
        assert_eq!(
            event_date(&ev),
            NaiveDate::from_ymd_opt(2024, 7, 2).unwrap()
        );
        let mut b = EventBatchBuilder::new();
        b.append(
            &ev,
            line,
            &Lineage {
                topic: "referrals",
                partition: 0,
                offset: 5,
            },
        );
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), events_file_schema());
        let local = batch
            .column_by_name("at_local")
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
            .unwrap()
            .value(0);
        // 23:30 UTC on 1 July is 01:30 on 2 July in Rome (CEST, UTC+2).
        let expect = NaiveDate::from_ymd_opt(2024, 7, 2)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(local, expect);
        assert!(b.is_empty());
    }
}
