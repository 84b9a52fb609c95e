//! Human-readable sizes and times for terminal output.

use crate::format::records::Timestamp;

/// `n` and the noun that agrees with it ("1 file", "2 files").
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn jiff_ts(t: Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::new(t.secs, t.nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// RFC 3339 in UTC, with fractional seconds only when there are some.
pub fn rfc3339(t: Timestamp) -> String {
    jiff_ts(t).to_string()
}

/// Local time for tables.
pub fn local(t: Timestamp) -> String {
    jiff_ts(t).to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let ts: jiff::Timestamp = s.parse().map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    Ok(Timestamp { secs: ts.as_second(), nanos: ts.subsec_nanosecond() as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        let t = parse_rfc3339("2026-01-31T08:00:00+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-01-31T07:00:00Z");
        let t = parse_rfc3339("2026-01-31T08:00:00.5Z").unwrap();
        assert_eq!(t.nanos, 500_000_000);
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
