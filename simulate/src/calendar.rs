//! Time in the simulator: seasonality, service hours and Europe/Rome offsets.
//!
//! The simulator keeps every instant as Unix seconds (UTC) and only turns it into a
//! Europe/Rome timestamp with its offset (`+01:00` in winter, `+02:00` in summer) when an
//! event is written. Local wall-clock times are chosen from the profiles below and
//! converted with the real zone rules, so daylight-saving changes are handled.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Weekday,
};
use chrono_tz::Europe::Rome;

use crate::rng::{Cumulative, Rng};

/// Relative contact volume by month, January first (see docs/SIMULATION.md).
pub const MONTH_WEIGHTS: [f64; 12] = [
    1.10, 1.05, 1.08, 1.00, 1.02, 0.95, 0.88, 0.55, 1.08, 1.12, 1.05, 0.80,
];

/// Relative contact volume by weekday inside service days, Monday first; Sunday is closed.
pub const WEEKDAY_WEIGHTS: [f64; 7] = [1.25, 1.10, 1.05, 1.00, 0.95, 0.45, 0.0];

/// Relative contact volume by hour for the ten service hours 08:00–17:59.
pub const HOUR_WEIGHTS: [f64; 10] = [0.7, 1.3, 1.5, 1.4, 1.1, 0.7, 1.0, 1.1, 0.9, 0.6];

/// Local hours (start of hour) used for out-of-hours attempts.
pub const OUT_OF_HOURS: [u32; 9] = [6, 7, 18, 19, 20, 21, 22, 23, 0];
/// Relative weights of [`OUT_OF_HOURS`].
pub const OUT_OF_HOURS_WEIGHTS: [f64; 9] = [0.2, 1.0, 1.4, 1.2, 1.0, 0.8, 0.5, 0.2, 0.1];

/// The year's days with their relative weight for first contacts.
#[derive(Debug, Clone)]
pub struct YearDays {
    /// Every day of the year, in order.
    pub days: Vec<NaiveDate>,
    service_days: Cumulative,
    any_days: Cumulative,
    hours: Cumulative,
    ooh_hours: Cumulative,
}

impl YearDays {
    /// The days of `year` (an unrepresentable year gives an empty table).
    pub fn new(year: i32) -> Self {
        let mut days = Vec::with_capacity(366);
        let mut d = NaiveDate::from_ymd_opt(year, 1, 1);
        while let Some(day) = d {
            if day.year() != year {
                break;
            }
            days.push(day);
            d = day.succ_opt();
        }
        let month = |d: &NaiveDate| MONTH_WEIGHTS[d.month0() as usize];
        let service_days = Cumulative::new(
            days.iter()
                .map(|d| month(d) * WEEKDAY_WEIGHTS[d.weekday().num_days_from_monday() as usize]),
        );
        let any_days = Cumulative::new(days.iter().map(month));
        YearDays {
            days,
            service_days,
            any_days,
            hours: Cumulative::new(HOUR_WEIGHTS),
            ooh_hours: Cumulative::new(OUT_OF_HOURS_WEIGHTS),
        }
    }

    /// A day index drawn by month and weekday weight (service days only).
    pub fn service_day(&self, rng: &mut Rng) -> usize {
        self.service_days.sample(rng)
    }

    /// A local time inside service hours on `day`, as Unix seconds.
    pub fn service_time(&self, day: NaiveDate, rng: &mut Rng) -> i64 {
        let h = 8 + self.hours.sample(rng) as u32;
        local(day, h, rng.below(60) as u32, rng.below(60) as u32)
    }

    /// An out-of-hours attempt near day index `i`: Sunday daytime, or early/late hours.
    pub fn out_of_hours_time(&self, i: usize, rng: &mut Rng) -> i64 {
        let i = if rng.chance(0.5) {
            i
        } else {
            self.any_days.sample(rng)
        };
        let day = self.days[i.min(self.days.len() - 1)];
        let (h, m) = if day.weekday() == Weekday::Sun {
            (rng.range(8, 20) as u32, rng.below(60) as u32)
        } else {
            let h = OUT_OF_HOURS[self.ooh_hours.sample(rng)];
            (h, rng.below(60) as u32)
        };
        local(day, h, m, rng.below(60) as u32)
    }
}

/// A Europe/Rome wall-clock time as Unix seconds (times skipped by DST move forward).
pub fn local(day: NaiveDate, h: u32, m: u32, s: u32) -> i64 {
    let Some(naive) = day.and_hms_opt(h.min(23), m.min(59), s.min(59)) else {
        return 0;
    };
    resolve(naive)
}

fn resolve(naive: NaiveDateTime) -> i64 {
    match Rome.from_local_datetime(&naive).earliest() {
        Some(t) => t.timestamp(),
        // In the spring-forward gap: the same wall-clock minute an hour later exists.
        None => Rome
            .from_local_datetime(&(naive + chrono::TimeDelta::hours(1)))
            .earliest()
            .map_or(0, |t| t.timestamp()),
    }
}

/// Unix seconds as a Europe/Rome timestamp with its offset.
pub fn rome(ts: i64) -> DateTime<FixedOffset> {
    let utc = DateTime::from_timestamp(ts, 0).unwrap_or_default();
    utc.with_timezone(&Rome).fixed_offset()
}

/// Whether `ts` falls inside Monday–Saturday 08:00–18:00 Europe/Rome.
pub fn in_service_hours(ts: i64) -> bool {
    let t = rome(ts);
    t.weekday() != Weekday::Sun && (8..18).contains(&t.hour())
}

/// The first instant at or after `ts` inside the working hours of the given days
/// (`days` = 6 for Monday–Saturday, 5 for Monday–Friday) between `open` and `close`.
pub fn next_working(ts: i64, days: u32, open: u32, close: u32) -> i64 {
    let mut t = rome(ts).naive_local();
    for _ in 0..10 {
        let wd = t.weekday().num_days_from_monday();
        if wd < days && t.hour() >= open && t.hour() < close {
            return resolve(t);
        }
        if wd < days && t.hour() < open {
            t = t.date().and_hms_opt(open, 0, 0).unwrap_or(t);
            continue;
        }
        let next = t.date().succ_opt().unwrap_or(t.date());
        t = next.and_hms_opt(open, 0, 0).unwrap_or(t);
    }
    resolve(t)
}

/// Unix seconds of the first instant of the year after `year` (Europe/Rome).
pub fn year_end(year: i32) -> i64 {
    NaiveDate::from_ymd_opt(year + 1, 1, 1).map_or(i64::MAX, |d| local(d, 0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_daylight_saving() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        // 2024: CEST from 31 March to 27 October.
        assert_eq!(
            rome(local(d(2024, 3, 5), 9, 0, 0)).to_rfc3339(),
            "2024-03-05T09:00:00+01:00"
        );
        assert_eq!(
            rome(local(d(2024, 7, 5), 9, 0, 0)).to_rfc3339(),
            "2024-07-05T09:00:00+02:00"
        );
        // 02:30 on 31 March 2024 does not exist; it becomes 03:30 CEST.
        assert_eq!(
            rome(local(d(2024, 3, 31), 2, 30, 0)).to_rfc3339(),
            "2024-03-31T03:30:00+02:00"
        );
    }

    #[test]
    fn next_working_skips_to_monday_morning() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        // Saturday 2024-03-09 19:00 → Monday 2024-03-11 09:00 for a Mon–Fri 9–17 office.
        let t = next_working(local(d(2024, 3, 9), 19, 0, 0), 5, 9, 17);
        assert_eq!(rome(t).to_rfc3339(), "2024-03-11T09:00:00+01:00");
        assert!(!in_service_hours(local(d(2024, 3, 10), 10, 0, 0))); // a Sunday
        assert!(in_service_hours(local(d(2024, 3, 9), 10, 0, 0))); // a Saturday
    }
}
