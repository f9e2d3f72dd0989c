//! Calendar helpers the `time` crate leaves out.

use time::{Date, Month};

/// `date` plus `months` calendar months, the day clamped to the end of a shorter month
/// (2024-01-31 + 1 month = 2024-02-29).
pub fn add_months(date: Date, months: u32) -> Date {
    let total = date.year() as i64 * 12 + (date.month() as i64 - 1) + months as i64;
    let year = total.div_euclid(12) as i32;
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(date)
}

/// `YYYY-MM-DD`.
pub fn ymd(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month() as u8,
        date.day()
    )
}

pub fn today_utc() -> Date {
    time::OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_added_with_clamping() {
        let d = |y, m, d| Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
        assert_eq!(add_months(d(2024, 1, 31), 1), d(2024, 2, 29));
        assert_eq!(add_months(d(2024, 11, 15), 12), d(2025, 11, 15));
        assert_eq!(add_months(d(2024, 11, 15), 2), d(2025, 1, 15));
        assert_eq!(add_months(d(2023, 3, 1), 36), d(2026, 3, 1));
        assert_eq!(ymd(d(2025, 1, 5)), "2025-01-05");
    }
}
