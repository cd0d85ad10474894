//! z/OS TOD clock values -> UTC nanoseconds. Layout and check values: formats/tod.md.
//!
//! Bit 51 of the 64-bit TOD is one microsecond, so one unit is 1/4096 µs; the epoch is
//! 1900-01-01. We keep full nanosecond precision (integer arithmetic, truncating).

use binrw::binrw;

/// TOD of 1970-01-01T00:00:00Z.
pub const UNIX_EPOCH_TOD: u64 = 0x7D91_048B_CA00_0000;

/// A raw 64-bit TOD clock value.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tod(pub u64);

/// 1990-01-01 and 2100-01-01 in Unix seconds: the plausibility window for trace times.
const PLAUSIBLE_FROM_S: i64 = 631_152_000;
const PLAUSIBLE_TO_S: i64 = 4_102_444_800;
/// The smallest TOD at or after Unix second `s`; `u64::MAX` when the TOD clock ends
/// before it (it does in 2042).
const fn tod_of_unix_s(s: i64) -> u64 {
    let t = (s as i128 * 1_000_000_000 * 4096 + 999).div_euclid(1000) + UNIX_EPOCH_TOD as i128;
    if t > u64::MAX as i128 {
        u64::MAX
    } else {
        t as u64
    }
}
const PLAUSIBLE_FROM_TOD: u64 = tod_of_unix_s(PLAUSIBLE_FROM_S);
const PLAUSIBLE_TO_TOD: u64 = tod_of_unix_s(PLAUSIBLE_TO_S);

impl Tod {
    /// Nanoseconds since the Unix epoch, minus `leap_seconds` (for sites whose TOD counts
    /// the accumulated leap seconds). Before 1970 gives a negative value.
    pub fn unix_ns(self, leap_seconds: i64) -> i64 {
        let units = self.0 as i128 - UNIX_EPOCH_TOD as i128;
        // Floor division (an arithmetic shift: 4096 = 2^12) so that the value
        // round-trips with `from_unix_ns` (ceil).
        let ns = (units * 1000) >> 12;
        (ns - leap_seconds as i128 * 1_000_000_000) as i64
    }

    /// The smallest TOD whose `unix_ns(leap_seconds)` equals `ns` (saturating outside the
    /// representable range). Used by the synthesizer.
    pub fn from_unix_ns(ns: i64, leap_seconds: i64) -> Tod {
        let ns = ns as i128 + leap_seconds as i128 * 1_000_000_000;
        // ceil(ns * 4096 / 1000) so that floor(tod * 1000 / 4096) == ns exactly.
        let units = (ns * 4096 + 999).div_euclid(1000);
        let tod = units + UNIX_EPOCH_TOD as i128;
        Tod(tod.clamp(0, u64::MAX as i128) as u64)
    }

    /// True when the value decodes to a date between 1990 and 2100: part of the CTE
    /// validation predicate (formats/cte.md).
    pub fn is_plausible(self) -> bool {
        // Checked for every candidate CTE: compare raw TOD values with the window's
        // bounds (the smallest TODs that convert to its first and last instants).
        // The upper bound saturates: the TOD clock ends in 2042, before 2100.
        self.0 >= PLAUSIBLE_FROM_TOD && (self.0 < PLAUSIBLE_TO_TOD || PLAUSIBLE_TO_TOD == u64::MAX)
    }
}

/// Formats Unix nanoseconds as ISO 8601 UTC with nine decimals, e.g.
/// `2011-01-25T14:13:05.687445000Z`.
pub fn iso8601(ns: i64) -> String {
    let mut s = String::with_capacity(30);
    iso8601_into(&mut s, ns);
    s
}

/// `iso8601` appended to `out`: digits placed by hand, as the formatter machinery
/// costs more than the arithmetic when every session and FTP row has times.
pub fn iso8601_into(out: &mut String, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.unsigned_abs());
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 9, frac);
    for c in b {
        out.push(char::from(c));
    }
}

/// ISO 8601 in UTC (`offset_s` None) or at a fixed offset from UTC, e.g.
/// `2011-01-25T15:13:05.687445000+01:00`.
pub fn iso8601_at(ns: i64, offset_s: Option<i32>) -> String {
    let Some(off) = offset_s else {
        return iso8601(ns);
    };
    let mut s = iso8601(ns.saturating_add(i64::from(off) * 1_000_000_000));
    s.pop();
    let a = off.unsigned_abs();
    s.push_str(&format!(
        "{}{:02}:{:02}",
        if off < 0 { '-' } else { '+' },
        a / 3600,
        a / 60 % 60
    ));
    s
}

/// Parses a UTC offset `+HH:MM`, `-HH:MM`, `+HHMM` or `Z` into seconds.
pub fn parse_offset(s: &str) -> Result<i32, String> {
    if s == "Z" || s == "z" {
        return Ok(0);
    }
    let bad = || format!("{s:?}: expected an offset like +01:00 or -0500");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i32 = digits[..2].parse().map_err(|_| bad())?;
    let m: i32 = digits[2..].parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's well-known civil calendar algorithm).
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

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z]` (UTC) into Unix nanoseconds; used by the
/// time-window filter.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.splitn(3, ':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next().unwrap_or("0").parse().ok()?;
    let ss: i64 = tp.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ns_frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    // days_from_civil, the inverse of civil_from_days.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + ns_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausibility_bounds_are_the_window_in_seconds() {
        let by_seconds = |t: Tod| {
            let s = t.unix_ns(0).div_euclid(1_000_000_000);
            (PLAUSIBLE_FROM_S..PLAUSIBLE_TO_S).contains(&s)
        };
        for b in [PLAUSIBLE_FROM_TOD, PLAUSIBLE_TO_TOD] {
            for t in b.saturating_sub(5000)..=b.saturating_add(5000) {
                assert_eq!(Tod(t).is_plausible(), by_seconds(Tod(t)), "{t:#x}");
            }
        }
        // The clock's last value is in 2042: plausible; its first, 1900, is not.
        assert!(!Tod(0).is_plausible() && Tod(u64::MAX).is_plausible());
    }

    #[test]
    fn local_offsets() {
        assert_eq!(
            iso8601_at(0, Some(3600 + 1800)),
            "1970-01-01T01:30:00.000000000+01:30"
        );
        assert_eq!(
            iso8601_at(0, Some(-5 * 3600)),
            "1969-12-31T19:00:00.000000000-05:00"
        );
        assert_eq!(iso8601_at(0, None), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(parse_offset("+01:00"), Ok(3600));
        assert_eq!(parse_offset("-0530"), Ok(-19800));
        assert!(parse_offset("01:00").is_err());
        assert!(parse_offset("+25:00").is_err());
    }

    #[test]
    fn spec_check_values() {
        assert_eq!(Tod(UNIX_EPOCH_TOD).unix_ns(0), 0);
        assert_eq!(
            iso8601(Tod(0xB361_183F_4800_0000).unix_ns(0)),
            "2000-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            iso8601(Tod(0xDE6E_758D_DC00_0000).unix_ns(0)),
            "2024-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn one_unit_is_a_4096th_microsecond() {
        let t = Tod(0xDE6E_758D_DC00_0000);
        assert_eq!(Tod(t.0 + 4096).unix_ns(0) - t.unix_ns(0), 1000);
        assert_eq!(Tod(t.0 + 5).unix_ns(0) - t.unix_ns(0), 1); // 5*1000/4096 = 1.22
    }

    #[test]
    fn leap_seconds_shift() {
        let t = Tod(0xDE6E_758D_DC00_0000);
        assert_eq!(t.unix_ns(0) - t.unix_ns(27), 27_000_000_000);
    }

    #[test]
    fn nanoseconds_round_trip() {
        for ns in [
            0i64,
            1,
            999,
            1_329_843_161_968_492_123,
            1_704_067_200_000_000_001,
        ] {
            for leap in [0, 27] {
                assert_eq!(Tod::from_unix_ns(ns, leap).unix_ns(leap), ns, "{ns}");
            }
        }
    }

    #[test]
    fn plausibility_window() {
        assert!(Tod(0xDE6E_758D_DC00_0000).is_plausible());
        assert!(!Tod(0).is_plausible());
        // The TOD itself ends in 2042, so only the lower bound can bite.
        assert!(!Tod::from_unix_ns(631_151_999_000_000_000, 0).is_plausible());
        assert!(Tod::from_unix_ns(631_152_000_000_000_000, 0).is_plausible());
    }

    /// The hand-placed digits equal the formatter's, across the whole i64 range
    /// (leap days, century years, before 1970, both ends).
    #[test]
    fn digits_by_hand_equal_the_formatter() {
        let reference = |ns: i64| {
            let secs = ns.div_euclid(1_000_000_000);
            let sod = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
                sod / 3600,
                sod / 60 % 60,
                sod % 60,
                ns.rem_euclid(1_000_000_000)
            )
        };
        let mut ns = i64::MIN;
        let step = i64::MAX / 50_000;
        while let Some(next) = ns.checked_add(step) {
            assert_eq!(iso8601(ns), reference(ns), "{ns}");
            ns = next + 7_919;
        }
        for ns in [i64::MIN, -1, 0, 951_782_400_000_000_000, i64::MAX] {
            assert_eq!(iso8601(ns), reference(ns), "{ns}");
        }
        assert_eq!(iso8601(i64::MIN), "1677-09-21T00:12:43.145224192Z");
        assert_eq!(iso8601(i64::MAX), "2262-04-11T23:47:16.854775807Z");
    }

    #[test]
    fn iso_parse_inverts_format() {
        for ns in [0i64, 1_329_843_161_968_492_123, 951_782_400_000_000_000] {
            assert_eq!(parse_iso8601(&iso8601(ns)), Some(ns));
        }
        assert_eq!(parse_iso8601("2024-01-01"), Some(1_704_067_200_000_000_000));
        assert_eq!(parse_iso8601("2024-13-01"), None);
    }
}
