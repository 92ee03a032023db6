//! Formatting numbers for people: thousands separators, binary byte units, percentages.

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes in binary units with one decimal: `16777216` → `16.0 MiB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A percentage with one decimal: `25.04` → `25.0 %`.
pub fn percent(value: f64) -> String {
    format!("{value:.1} %")
}

/// A countdown for people: `42 s`, `9:05`, `1:02:03`, `6 d 23:59:58`.
pub fn countdown(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, minutes, secs) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, _) => format!("{minutes}:{secs:02}"),
        (0, _, _) => format!("{hours}:{minutes:02}:{secs:02}"),
        _ => format!("{days} d {hours:02}:{minutes:02}:{secs:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(262_144), "262,144");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn percent_has_one_decimal() {
        assert_eq!(percent(25.04), "25.0 %");
        assert_eq!(percent(100.0), "100.0 %");
    }

    #[test]
    fn countdowns_read_like_a_clock() {
        assert_eq!(countdown(0), "0 s");
        assert_eq!(countdown(42), "42 s");
        assert_eq!(countdown(545), "9:05");
        assert_eq!(countdown(3_723), "1:02:03");
        assert_eq!(countdown(7 * 86_400 - 2), "6 d 23:59:58");
    }
}

/// A wall-clock time of day in UTC from milliseconds since the epoch: `13:04:05 UTC`. The same on
/// the server and in the browser, whatever their time zones, so hydration matches.
pub fn clock_utc(epoch_ms: u64) -> String {
    let seconds_of_day = (epoch_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(clock_utc(0), "00:00:00 UTC");
        // 2026-11-26T13:04:05Z
        assert_eq!(clock_utc(1_795_698_245_000), "13:04:05 UTC");
    }
}

/// A short axis label: `950`, `12k`, `262k`, `1.5M`.
pub fn compact(value: u64) -> String {
    match value {
        0..1_000 => value.to_string(),
        1_000..10_000 => trim_zero(format!("{:.1}", value as f64 / 1e3)) + "k",
        10_000..1_000_000 => format!("{}k", (value + 500) / 1_000),
        _ => trim_zero(format!("{:.1}", value as f64 / 1e6)) + "M",
    }
}

fn trim_zero(text: String) -> String {
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod compact_tests {
    use super::*;

    #[test]
    fn compact_labels_stay_short() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(1_000), "1k");
        assert_eq!(compact(6_554), "6.6k");
        assert_eq!(compact(262_144), "262k");
        assert_eq!(compact(1_500_000), "1.5M");
        assert_eq!(compact(2_000_000), "2M");
    }
}
