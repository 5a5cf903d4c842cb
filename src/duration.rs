//! Human durations in specs, annotations and flags: `"90s"`, `"30m"`, `"2h"`, `"1d"`, `"1500ms"`, plain
//! seconds.

use std::time::Duration;

/// Parses `"5s"`, `"2m"`, `"1h"`, `"1d"`, `"1500ms"` or plain seconds; `None` for anything else.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86400).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(5 * 86400)));
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(parse_duration("9999999999999999999h"), None, "overflow is refused, not a panic");
    }
}
