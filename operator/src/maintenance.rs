//! Maintenance windows (`spec.maintenance`): the schema of the field and the pure question "may a
//! voluntary restart start now, and if not, when?". Only the operator's rolling restarts wait for
//! a window; a crashed pod, the first start and scaling never do.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time, Weekday};

/// When the operator may restart pods on its own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// Time windows (UTC) in which the operator may start a voluntary pod restart: the rolling
    /// restart that applies a configuration, image or certificate change. Outside every window
    /// the restart waits (status.operation says so) and resumes when the next window opens; a
    /// restart that is under way stops between pods when its window closes. Empty (the default):
    /// any time. A crashed pod, the first start and scaling never wait for a window.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub windows: Vec<MaintenanceWindow>,
}

/// One recurring window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Time of day (UTC, 24-hour "HH:MM") at which the window opens, e.g. "02:00".
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// How long the window stays open, in hours and minutes ("2h", "45m", "1h30m"); from 1m to
    /// 24h. A window may run past midnight.
    #[schemars(length(min = 2, max = 16))]
    #[x_kube(validation = Rule::new(
        "self.matches('^([0-9]+h)?([0-9]+m)?$') && self != '' && duration(self) >= duration('1m') && duration(self) <= duration('24h')"
    ).message("duration must be hours and minutes such as 2h or 1h30m, from 1m to 24h"))]
    pub duration: String,
    /// Days (UTC) on which the window opens (Mon, Tue, Wed, Thu, Fri, Sat, Sun); empty: every
    /// day. A window opening late on Saturday may close on Sunday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e == d))").message("days must not repeat"))]
    pub days: Vec<Day>,
}

/// A day of the week.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }
}

/// Whether a voluntary restart may start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// No window is configured: any time.
    Always,
    /// Inside a window that closes at this time.
    Open {
        /// When the window closes.
        closes: OffsetDateTime,
    },
    /// Outside every window; the next one opens at this time.
    Closed {
        /// When the next window opens.
        opens: OffsetDateTime,
    },
}

impl WindowState {
    /// True when a voluntary restart may start.
    pub fn is_open(self) -> bool {
        !matches!(self, WindowState::Closed { .. })
    }
}

/// `"HH:MM"` as a time of day.
fn parse_start(start: &str) -> Option<Time> {
    let (hours, minutes) = start.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    Time::from_hms(hours.parse().ok()?, minutes.parse().ok()?, 0).ok()
}

/// `"2h"`, `"45m"`, `"1h30m"` as a duration within 1m..=24h.
fn parse_duration(text: &str) -> Option<Duration> {
    let (hours, rest) = match text.split_once('h') {
        Some((hours, rest)) => (hours.parse::<i64>().ok()?, rest),
        None => (0, text),
    };
    let minutes = match rest {
        "" => 0,
        _ => rest.strip_suffix('m')?.parse::<i64>().ok()?,
    };
    let duration = Duration::hours(hours) + Duration::minutes(minutes);
    (Duration::minutes(1) <= duration && duration <= Duration::hours(24)).then_some(duration)
}

impl MaintenanceWindow {
    /// The problem with this window's fields, if any (the schema rejects these too; this
    /// holds even when the schema was bypassed).
    pub fn problem(&self) -> Option<String> {
        if parse_start(&self.start).is_none() {
            return Some(format!("start {:?} is not a UTC time HH:MM", self.start));
        }
        if parse_duration(&self.duration).is_none() {
            return Some(format!(
                "duration {:?} is not hours and minutes from 1m to 24h",
                self.duration
            ));
        }
        None
    }

    fn opens_on(&self, day: Date) -> bool {
        self.days.is_empty() || self.days.iter().any(|d| d.weekday() == day.weekday())
    }

    /// The occurrence of this window that contains `now`, as its closing time.
    fn open_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = parse_start(&self.start)?;
        let length = parse_duration(&self.duration)?;
        // At most 24h long: only an occurrence opening today or yesterday can contain now.
        [now.date().previous_day()?, now.date()]
            .into_iter()
            .filter(|day| self.opens_on(*day))
            .map(|day| day.with_time(start).assume_utc())
            .find(|opens| *opens <= now && now < *opens + length)
            .map(|opens| opens + length)
    }

    /// The first occurrence opening after `now`.
    fn next_opening(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = parse_start(&self.start)?;
        parse_duration(&self.duration)?;
        (0..=7)
            .filter_map(|days| now.date().checked_add(Duration::days(days)))
            .filter(|day| self.opens_on(*day))
            .map(|day| day.with_time(start).assume_utc())
            .find(|opens| *opens > now)
    }
}

impl MaintenanceSpec {
    /// Whether a voluntary restart may start at `now`. Invalid windows are ignored here
    /// (validation reports them); if every window is invalid nothing is ever open.
    pub fn state(&self, now: OffsetDateTime) -> WindowState {
        if self.windows.is_empty() {
            return WindowState::Always;
        }
        if let Some(closes) = self.windows.iter().filter_map(|w| w.open_at(now)).max() {
            return WindowState::Open { closes };
        }
        match self
            .windows
            .iter()
            .filter_map(|w| w.next_opening(now))
            .min()
        {
            Some(opens) => WindowState::Closed { opens },
            // Only invalid windows: report "closed" a week out rather than restart anyway.
            None => WindowState::Closed {
                opens: now + Duration::days(7),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Month;

    use super::*;

    /// December 2026 (the 1st is a Tuesday), UTC.
    fn at(day: u8, hour: u8, minute: u8) -> OffsetDateTime {
        Date::from_calendar_date(2026, Month::December, day)
            .unwrap()
            .with_hms(hour, minute, 0)
            .unwrap()
            .assume_utc()
    }

    fn window(start: &str, duration: &str, days: &[Day]) -> MaintenanceWindow {
        MaintenanceWindow {
            start: start.to_owned(),
            duration: duration.to_owned(),
            days: days.to_vec(),
        }
    }

    fn spec(windows: Vec<MaintenanceWindow>) -> MaintenanceSpec {
        MaintenanceSpec { windows }
    }

    #[test]
    fn no_window_means_any_time() {
        let now = at(1, 12, 0);
        assert_eq!(spec(vec![]).state(now), WindowState::Always);
        assert!(WindowState::Always.is_open());
    }

    #[test]
    fn inside_and_outside_a_daily_window() {
        let daily = spec(vec![window("02:00", "2h", &[])]);
        // 2026-12-01 is a Tuesday.
        assert_eq!(
            daily.state(at(1, 3, 0)),
            WindowState::Open {
                closes: at(1, 4, 0)
            }
        );
        assert_eq!(
            daily.state(at(1, 4, 0)),
            WindowState::Closed { opens: at(2, 2, 0) },
            "the end is exclusive"
        );
        assert_eq!(
            daily.state(at(1, 1, 59)),
            WindowState::Closed { opens: at(1, 2, 0) }
        );
        assert!(daily.state(at(1, 2, 0)).is_open());
    }

    #[test]
    fn weekend_window_running_past_midnight() {
        let weekend = spec(vec![window("23:00", "3h", &[Day::Sat, Day::Sun])]);
        // Sunday 01:00 is inside Saturday's window; Monday 01:00 inside Sunday's.
        assert!(weekend.state(at(6, 1, 0)).is_open());
        assert!(weekend.state(at(7, 1, 0)).is_open());
        // Tuesday 01:00 is not (Monday has no window); the next opens Saturday 23:00.
        assert_eq!(
            weekend.state(at(8, 1, 0)),
            WindowState::Closed {
                opens: at(12, 23, 0)
            }
        );
    }

    #[test]
    fn the_earliest_next_window_and_the_latest_close_win() {
        let two = spec(vec![
            window("10:00", "1h", &[Day::Fri]),
            window("10:30", "2h", &[]),
        ]);
        assert_eq!(
            two.state(at(4, 10, 45)),
            WindowState::Open {
                closes: at(4, 12, 30)
            }
        );
        assert_eq!(
            two.state(at(4, 9, 0)),
            WindowState::Closed {
                opens: at(4, 10, 0)
            }
        );
    }

    #[test]
    fn durations_and_starts_are_parsed_strictly() {
        assert_eq!(parse_duration("2h"), Some(Duration::hours(2)));
        assert_eq!(parse_duration("45m"), Some(Duration::minutes(45)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
        for bad in ["", "0m", "25h", "1h30", "h", "m", "2d", "-1h", "1m1h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_start("02:00"), Time::from_hms(2, 0, 0).ok());
        for bad in ["2:00", "24:00", "12:60", "1200", "ab:cd"] {
            assert_eq!(parse_start(bad), None, "{bad:?}");
        }
        assert!(window("02:00", "90m", &[]).problem().is_none());
        assert!(window("2:00", "1h", &[]).problem().is_some());
        assert!(window("02:00", "1d", &[]).problem().is_some());
        // An invalid window never opens.
        let invalid = spec(vec![window("02:00", "1d", &[])]);
        assert!(!invalid.state(at(1, 2, 30)).is_open());
    }
}
