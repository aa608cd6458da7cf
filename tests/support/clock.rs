//! A clock tests set by hand, so time-driven behaviour (cron ticks) is
//! stepped instead of slept through.

use chrono::{DateTime, TimeZone, Utc};
use greenlight::clock::{Clock, SharedClock};
use std::sync::{Arc, Mutex};

/// A clock that stays where a test puts it.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    /// A clock at `year-month-day hour:minute` UTC.
    pub fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).unwrap())))
    }

    /// A clock `minutes` whole minutes before the real time's minute. A
    /// whole greenlight runs on it, and GitHub (the fake, on real time)
    /// refuses App JWTs that expired or are issued in the future, so it may
    /// only move within the last few minutes, never past real time.
    pub fn minutes_ago(minutes: i64) -> Arc<Self> {
        let now = Utc::now().timestamp();
        let start = now - now % 60 - minutes * 60;
        Arc::new(Self(Mutex::new(Utc.timestamp_opt(start, 0).unwrap())))
    }

    /// Moves the clock `minutes` minutes on.
    pub fn advance_minutes(&self, minutes: i64) {
        *self.0.lock().unwrap() += chrono::Duration::minutes(minutes);
    }

    /// The clock's time in Unix seconds.
    pub fn unix(&self) -> i64 {
        self.0.lock().unwrap().timestamp()
    }

    /// Moves the clock to `year-month-day hour:minute` UTC.
    pub fn set(&self, year: i32, month: u32, day: u32, hour: u32, minute: u32) {
        *self.0.lock().unwrap() = Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).unwrap();
    }

    /// This clock as greenlight's roles take one.
    pub fn shared(self: &Arc<Self>) -> SharedClock {
        self.clone()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Unix seconds of `year-month-day hour:minute` UTC.
pub fn unix(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).unwrap().timestamp()
}
