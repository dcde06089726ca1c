//! culla's event contract v1 and the shapes of its data.
//!
//! Everything else in culla depends on this crate: [`event`] holds the Rust types of
//! every event, [`validate`] turns wire bytes into them (or into a one-line reason),
//! [`personal`] is the one detector of personal data (rejection and masking alike),
//! [`arrow`] gives the Arrow schemas of the `events` and `dead_letters` tables,
//! [`layout`] the data directory and its exactly-once manifest, and [`reference`] the
//! Milan reference data (NIL, births, boundaries). The JSON Schema files for producers
//! in other languages are in `schemas/json/`, one per event type.

pub mod arrow;
pub mod event;
pub mod layout;
pub mod personal;
pub mod reference;
pub mod validate;
mod wire;

pub use event::{Event, EventType, Payload, Topic};
pub use validate::{Invalid, Reason, parse_event};
