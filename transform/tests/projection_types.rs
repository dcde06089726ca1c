//! The projections keep the types of the event fields they carry: a column named like an
//! `events` column (`nil`, `municipio`, `family`, the profile flags…) has that column's
//! type, and the received instant, local time and date of a contact have the types of
//! `at`, `at_local` and `event_date`, however the SQL folds them (a value that travels
//! through a string key on the way must come back as the same type).

use culla_schemas::arrow::events_table_schema;
use datafusion::arrow::datatypes::DataType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_columns_have_the_types_of_the_event_fields_they_carry() {
    let dir = tempfile::tempdir().unwrap();
    let opts = culla_transform::ProjectionOptions::default();
    let ctx = culla_transform::open(dir.path(), &opts).await.unwrap();
    let events = events_table_schema();
    let event_type =
        |name: &str| -> DataType { events.field_with_name(name).unwrap().data_type().clone() };
    // Columns carried under another name.
    let renamed = [
        ("received_at", "at"),
        ("received_local", "at_local"),
        ("received_date", "event_date"),
        ("recorded_at", "at"),
        ("recorded_local", "at_local"),
        ("recorded_date", "event_date"),
        ("created_at", "at"),
        ("created_local", "at_local"),
        ("created_date", "event_date"),
        ("profiled_at", "at"),
        ("first_reached_at", "at"),
        ("closed_at", "at"),
    ];
    let mut checked = 0;
    for view in [
        "profiles",
        "contact_history",
        "contacts",
        "referral_state",
        "referrals",
        "needs",
        "families",
    ] {
        let schema = ctx.table(view).await.unwrap().schema().as_arrow().clone();
        for f in schema.fields() {
            let source = renamed
                .iter()
                .find(|(n, _)| n == f.name())
                .map(|(_, e)| *e)
                .or_else(|| {
                    events
                        .field_with_name(f.name())
                        .ok()
                        .map(|_| f.name().as_str())
                });
            if let Some(source) = source {
                assert_eq!(
                    f.data_type(),
                    &event_type(source),
                    "{view}.{} carries events.{source}",
                    f.name()
                );
                checked += 1;
            }
        }
    }
    // nil and municipio in five projections, the flags in two, the instants: dozens.
    assert!(checked >= 40, "only {checked} columns checked");
    for (view, col) in [
        ("profiles", "nil"),
        ("families", "municipio"),
        ("needs", "nil"),
    ] {
        let schema = ctx.table(view).await.unwrap().schema().as_arrow().clone();
        assert_eq!(
            schema.field_with_name(col).unwrap().data_type(),
            &DataType::Int32,
            "{view}.{col}"
        );
    }
}
