//! Benchmark: simulate N events, then validate them all with `parse_event`.
//!
//! Plain `fn main` timing with `std::time::Instant` (no harness). N comes from
//! `CULLA_BENCH_EVENTS` (default 1,000,000) so CI can run it small. Run with
//! `cargo bench -p culla-simulate`; figures go to docs/bench-simulate.md.

use std::time::Instant;

use chrono::Utc;
use culla_schemas::parse_event;
use culla_simulate::{SimConfig, contacts_for_events, simulate};

fn main() {
    let n: u64 = std::env::var("CULLA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let mut cfg = SimConfig::default();
    cfg.contacts = Some(contacts_for_events(&cfg, n));

    let t = Instant::now();
    let lines = simulate(&cfg);
    let sim = t.elapsed().as_secs_f64();
    let events = lines.len() as f64;
    let bytes: usize = lines.iter().map(|l| l.bytes.len() + 1).sum();
    let mb = bytes as f64 / 1e6;

    let now = Utc::now();
    let t = Instant::now();
    let mut valid = 0u64;
    for l in &lines {
        if parse_event(&l.bytes, now).is_ok() {
            valid += 1;
        }
    }
    let val = t.elapsed().as_secs_f64();
    assert_eq!(
        valid as usize,
        lines.len(),
        "every simulated event is valid"
    );

    println!(
        "contacts: {}, events: {}, NDJSON: {:.1} MB",
        cfg.contacts.unwrap_or(0),
        lines.len(),
        mb
    );
    println!(
        "simulate: {:.2} s, {:.0} events/s, {:.1} MB/s",
        sim,
        events / sim,
        mb / sim
    );
    println!(
        "validate (parse_event, 1 thread): {:.2} s, {:.0} events/s, {:.1} MB/s",
        val,
        events / val,
        mb / val
    );
}
