//! Cron expressions: standard five fields (minute hour day-of-month month
//! day-of-week) or a descriptor, in UTC, parsed by `croner` (POSIX/Vixie
//! semantics: a day-of-month and a day-of-week both given match either).

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The descriptors accepted besides five fields (Drone's `@hourly`,
/// `@daily`, `@weekly`, and cron's usual others).
pub const DESCRIPTORS: [&str; 7] = ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"];

/// The longest expression accepted: five fields with lists fit easily.
pub const MAX_EXPR_CHARS: usize = 200;

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

/// An expression that is not a schedule, with why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cron expression {expr:?}: {reason}")]
pub struct ScheduleError {
    /// The expression as given.
    pub expr: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Schedule {
    /// Parses five fields or a descriptor from [`DESCRIPTORS`].
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let fail = |reason: String| ScheduleError { expr: expr.to_string(), reason };
        let text = expr.trim();
        if text.chars().count() > MAX_EXPR_CHARS {
            return Err(fail(format!("longer than {MAX_EXPR_CHARS} characters")));
        }
        if text.starts_with('@') {
            if !DESCRIPTORS.iter().any(|d| d.eq_ignore_ascii_case(text)) {
                return Err(fail(format!("unknown descriptor; use five fields or one of {}", DESCRIPTORS.join(", "))));
            }
        } else if text.split_whitespace().count() != 5 {
            return Err(fail("needs five fields: minute hour day-of-month month day-of-week".to_string()));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        parser.parse(text).map(Schedule).map_err(|e| fail(e.to_string()))
    }

    /// The first tick strictly after `time`, in Unix seconds; `None` when
    /// there is none (a date that never comes, such as 30 February).
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<i64> {
        self.0.find_next_occurrence(&time, false).ok().map(|t| t.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 30).unwrap()
    }

    #[test]
    fn five_fields_and_descriptors_are_schedules_in_utc() {
        let every_quarter = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(every_quarter.next_after(at(10, 7)), Some(at(10, 15).timestamp() - 30));
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(daily.next_after(at(10, 7)), Some(Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap().timestamp()));
        assert!(Schedule::parse("@WEEKLY").is_ok());
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        assert!(Schedule::parse("0 * * * * *").unwrap_err().reason.contains("five fields"));
        assert!(Schedule::parse("@reboot").unwrap_err().reason.contains("unknown descriptor"));
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse(&"1,".repeat(150)).unwrap_err().reason.contains("longer than"));
    }
}
