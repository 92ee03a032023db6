//! Calendar dates and times in UTC, without a time-zone library: formatting Unix seconds as
//! `2026-11-25 13:04:05` and parsing what a date/time field or a query parameter holds.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `1764075845` → `2026-11-25 13:04:05` (UTC).
pub fn datetime(epoch_seconds: i64) -> String {
    let days = epoch_seconds.div_euclid(86_400);
    let second_of_day = epoch_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Reads a time in UTC: Unix seconds, `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS]` (what an
/// `<input type="datetime-local">` sends; a space may stand for the `T`). `None` if it is none of
/// these or not a real date. The first second of what it names (a date's midnight).
pub fn parse(text: &str) -> Option<i64> {
    parse_span(text).map(|(first, _)| first)
}

/// As [`parse`], the last second of what the text names: a date means its whole day, `HH:MM` its
/// whole minute. The end of a range written to a day or a minute thus includes all of it.
pub fn parse_end(text: &str) -> Option<i64> {
    parse_span(text).map(|(_, last)| last)
}

/// The first and the last second a written time covers.
fn parse_span(text: &str) -> Option<(i64, i64)> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let second = text.parse().ok()?;
        return Some((second, second));
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year = number(date_parts.next()?, 4)?;
    let month = number(date_parts.next()?, 2)?;
    let day = number(date_parts.next()?, 2)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    let midnight = days * 86_400;
    let Some(time) = time else {
        return Some((midnight, midnight + 86_399));
    };
    let parts: Vec<&str> = time.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let hour = number(parts[0], 2)?;
    let minute = number(parts[1], 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let start_of_minute = midnight + hour * 3600 + minute * 60;
    match parts.get(2) {
        None => Some((start_of_minute, start_of_minute + 59)),
        Some(second) => {
            let second = number(second, 2)?;
            (second <= 59).then_some((start_of_minute + second, start_of_minute + second))
        }
    }
}

fn number(text: &str, width: usize) -> Option<i64> {
    if text.len() == width && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00");
        assert_eq!(datetime(1_764_075_845), "2025-11-25 13:04:05");
        assert_eq!(datetime(1_709_164_800), "2024-02-29 00:00:00");
        assert_eq!(parse("2025-11-25T13:04:05"), Some(1_764_075_845));
        assert_eq!(parse("2025-11-25 13:04"), Some(1_764_075_840));
        assert_eq!(parse("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse("1764075845"), Some(1_764_075_845));
    }

    #[test]
    fn the_end_of_a_day_or_a_minute_is_its_last_second() {
        assert_eq!(parse_end("2024-02-29"), Some(1_709_164_800 + 86_399));
        assert_eq!(parse_end("2025-11-25T13:04"), Some(1_764_075_840 + 59));
        assert_eq!(parse_end("2025-11-25 13:04:05"), Some(1_764_075_845));
        assert_eq!(parse_end("1764075845"), Some(1_764_075_845));
        assert_eq!(parse_end("2025-11-25T13:60"), None);
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for text in [
            "",
            "yesterday",
            "2025-02-29",
            "2025-13-01",
            "2025-11-25T24:00",
            "25-11-25",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
