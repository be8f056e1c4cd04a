//! Wall-clock times as text: RFC 3339 in UTC with milliseconds
//! (`2026-12-01T23:14:09.123Z`, Envoy's `%START_TIME%`), written into a
//! caller's buffer without allocating. Hand-written because it runs per
//! logged request on a request core, and the days-to-date conversion is
//! twenty lines (Howard Hinnant's `civil_from_days`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// When something that took `took` and ended now began.
pub fn started(now: SystemTime, took: Duration) -> SystemTime {
    now.checked_sub(took).unwrap_or(UNIX_EPOCH)
}

/// Append `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn write_rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    let ms = unix_nanos(t) / 1_000_000;
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut b = [0u8; 24];
    put(&mut b[0..4], y as u64);
    b[4] = b'-';
    put(&mut b[5..7], m as u64);
    b[7] = b'-';
    put(&mut b[8..10], d as u64);
    b[10] = b'T';
    put(&mut b[11..13], rem / 3600);
    b[13] = b':';
    put(&mut b[14..16], rem % 3600 / 60);
    b[16] = b':';
    put(&mut b[17..19], rem % 60);
    b[19] = b'.';
    put(&mut b[20..23], millis);
    b[23] = b'Z';
    out.extend_from_slice(&b);
}

/// Write `v` as decimal digits filling `into` (zero-padded on the left).
fn put(into: &mut [u8], mut v: u64) {
    for slot in into.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// (year, month 1-12, day 1-31) of the day `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64, millis: u64) -> String {
        let mut out = Vec::new();
        let t = UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
        write_rfc3339_millis(&mut out, t);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_instants() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796166849` = Tue Dec  1 23:14:09 UTC 2026.
        assert_eq!(text(1_796_166_849, 123), "2026-12-01T23:14:09.123Z");
        // A leap day, and the last second of a year.
        assert_eq!(text(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(text(1_704_067_199, 999), "2023-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_day_of_four_centuries_matches_a_day_count() {
        // Walk day by day from 1970 and check the date advances by one.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for day in 0..146_097 {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
