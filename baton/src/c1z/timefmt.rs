//! The time format of the `.c1z` database (`started_at`, `ended_at`, `discovered_at`):
//! Go layout `2006-01-02 15:04:05.999999999` of **local** wall-clock time, no zone suffix,
//! fraction with trailing zeros trimmed and dropped entirely when zero.

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike};
use std::fmt::Display;

/// Formats `t` in its own time zone as `YYYY-MM-DD HH:MM:SS[.fraction]`.
pub fn format_db_time<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: Display,
{
    // Written field by field: a format string is parsed again at every call, and every
    // batch of rows a sync writes carries the time.
    let local = t.naive_local();
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    );
    // chrono represents a leap second as nanosecond >= 1e9; Go has no leap seconds.
    let nanos = t.nanosecond().min(999_999_999);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// The current local time in the database format.
pub fn now_db_time() -> String {
    format_db_time(&Local::now())
}

/// Reads a time written by [`format_db_time`] as local time (`None` if it is not one).
pub fn parse_db_time(text: &str) -> Option<DateTime<Local>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    naive.and_local_timezone(Local).earliest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate, Utc};

    #[test]
    fn a_written_time_reads_back() {
        let now = Local::now();
        let back = parse_db_time(&format_db_time(&now)).unwrap();
        assert_eq!(back, now);
        assert!(parse_db_time("2026-03-07T09:05:03Z").is_none());
    }

    fn at(nanos: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 3, 7)
            .unwrap()
            .and_hms_nano_opt(9, 5, 3, nanos)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn zero_fraction_is_dropped() {
        assert_eq!(format_db_time(&at(0)), "2026-03-07 09:05:03");
    }

    #[test]
    fn trailing_zeros_trimmed() {
        assert_eq!(format_db_time(&at(500_000_000)), "2026-03-07 09:05:03.5");
        assert_eq!(format_db_time(&at(120_000)), "2026-03-07 09:05:03.00012");
        assert_eq!(format_db_time(&at(1)), "2026-03-07 09:05:03.000000001");
        assert_eq!(
            format_db_time(&at(123_456_789)),
            "2026-03-07 09:05:03.123456789"
        );
    }

    #[test]
    fn wall_clock_of_the_zone_without_suffix() {
        let tz = FixedOffset::east_opt(2 * 3600).unwrap();
        let t = at(250_000_000).with_timezone(&tz);
        assert_eq!(format_db_time(&t), "2026-03-07 11:05:03.25");
        let local = Local::now();
        let s = format_db_time(&local);
        assert!(!s.contains('T') && !s.contains('+') && !s.ends_with('Z'));
        assert_eq!(&s[..19], local.format("%Y-%m-%d %H:%M:%S").to_string());
    }

    #[test]
    fn text_order_matches_time_order() {
        let a = format_db_time(&at(0));
        let b = format_db_time(&at(1));
        let c = format_db_time(&(at(0) + chrono::Duration::seconds(1)));
        assert!(a < b && b < c);
    }
}
