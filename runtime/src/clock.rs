//! Conversion from the kernel's boot-time clock to wall-clock time.
//!
//! The BPF programs stamp events with `bpf_ktime_get_boot_ns()` (CLOCK_BOOTTIME), the only
//! clock a program can read that keeps counting across suspend. Alerts need epoch time, so we
//! measure `CLOCK_REALTIME - CLOCK_BOOTTIME` once and add it to every stamp. Both clocks advance
//! during suspend, so the offset only changes when the wall clock is stepped (NTP, an admin);
//! [`BootClock::refresh`] re-measures it for long runs.
//!
//! Also the time formats of Falco's alerts: local time of day for the text line, RFC 3339 UTC
//! for JSON (done here rather than with a date crate: one small, tested algorithm).

use std::io;

/// Offset between CLOCK_BOOTTIME and CLOCK_REALTIME, measured at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootClock {
    /// `realtime - boottime` in nanoseconds. Signed: a wall clock set before the epoch (or a
    /// test) can make it negative.
    offset_ns: i64,
}

impl BootClock {
    /// Measures the offset now.
    pub fn now() -> io::Result<BootClock> {
        Ok(BootClock {
            offset_ns: measure_offset()?,
        })
    }

    /// A clock with a known offset (replaying recorded events, tests).
    pub fn with_offset(offset_ns: i64) -> BootClock {
        BootClock { offset_ns }
    }

    /// `realtime - boottime` in nanoseconds.
    pub fn offset_ns(&self) -> i64 {
        self.offset_ns
    }

    /// Epoch nanoseconds of a boot-time stamp, clamped to the range of `u64` so that a stamp
    /// from a confused clock renders as a wrong time instead of wrapping around.
    pub fn to_epoch_ns(&self, boot_ns: u64) -> u64 {
        let t = i128::from(boot_ns) + i128::from(self.offset_ns);
        t.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Re-measures the offset (call periodically: the wall clock may have been stepped).
    pub fn refresh(&mut self) -> io::Result<()> {
        self.offset_ns = measure_offset()?;
        Ok(())
    }
}

/// Reads a clock in nanoseconds.
fn clock_ns(clock: libc::clockid_t) -> io::Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// `realtime - boottime`. The two clocks cannot be read atomically, so the real-time read is
/// bracketed by two boot-time reads and compared with their midpoint; of a few attempts the one
/// with the narrowest bracket wins (a preemption between the reads would skew the offset).
fn measure_offset() -> io::Result<i64> {
    let mut best: Option<(i128, i128)> = None; // (bracket width, offset)
    for _ in 0..3 {
        let b1 = clock_ns(libc::CLOCK_BOOTTIME)?;
        let r = clock_ns(libc::CLOCK_REALTIME)?;
        let b2 = clock_ns(libc::CLOCK_BOOTTIME)?;
        let width = b2 - b1;
        let offset = r - (b1 + (b2 - b1) / 2);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, offset));
        }
    }
    let (_, offset) = best.unwrap_or((0, 0));
    i64::try_from(offset).map_err(|_| io::Error::other("clock offset out of range"))
}

// --- formatting -------------------------------------------------------------------------------

/// Whole seconds of an epoch-ns time.
pub fn epoch_secs(epoch_ns: u64) -> i64 {
    (epoch_ns / 1_000_000_000) as i64
}

/// The local time zone's offset from UTC (seconds east) at `epoch_secs`, from `localtime_r`;
/// 0 if it fails.
pub fn local_utc_offset(epoch_secs: i64) -> i64 {
    let t = epoch_secs as libc::time_t;
    // SAFETY: `tm` is plain old data, zeroed is a valid value; both pointers are valid for the
    // call and localtime_r is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_gmtoff } else { 0 }
}

/// `HH:MM:SS.nnnnnnnnn` in a zone `utc_offset_secs` east of UTC.
pub fn time_of_day(epoch_ns: u64, utc_offset_secs: i64) -> String {
    let secs = (epoch_secs(epoch_ns) + utc_offset_secs).rem_euclid(86_400);
    let nanos = epoch_ns % 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{nanos:09}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// RFC 3339 UTC with nine fractional digits: `2023-05-25T13:44:05.478445995Z`.
pub fn rfc3339_utc(epoch_ns: u64) -> String {
    let secs = epoch_secs(epoch_ns);
    let nanos = epoch_ns % 1_000_000_000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
}

/// Year, month, day of the proleptic Gregorian calendar for a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`: shifts the year to start in March so that the leap
/// day is last, then works in 400-year eras of 146097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn offset_arithmetic() {
        let c = BootClock::with_offset(1_700_000_000_000_000_000);
        assert_eq!(c.to_epoch_ns(5), 1_700_000_000_000_000_005);
        assert_eq!(c.offset_ns(), 1_700_000_000_000_000_000);
        // Clamped, not wrapped.
        assert_eq!(BootClock::with_offset(-10).to_epoch_ns(3), 0);
        assert_eq!(
            BootClock::with_offset(10).to_epoch_ns(u64::MAX - 3),
            u64::MAX
        );
    }

    #[test]
    fn boot_stamps_map_to_wall_clock() {
        let mut c = BootClock::now().unwrap();
        let boot = clock_ns(libc::CLOCK_BOOTTIME).unwrap() as u64;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let got = i128::from(c.to_epoch_ns(boot));
        assert!(
            (got - wall).abs() < 50_000_000,
            "epoch {got} vs wall clock {wall}"
        );
        // The machine has been up for a while: the offset is a recent epoch time, not zero.
        assert!(c.offset_ns() > 1_500_000_000_000_000_000);

        let before = c.offset_ns();
        c.refresh().unwrap();
        assert!((c.offset_ns() - before).abs() < 50_000_000);
    }

    const T: u64 = 1_764_352_679_315_968_470; // 2025-11-28T17:57:59.315968470Z

    #[test]
    fn time_of_day_wraps_across_midnight() {
        // 02:00:00.5 UTC, five hours west: 21:00 the previous day.
        let t = 1_700_000_000u64 / 86_400 * 86_400 * 1_000_000_000 + 7_200_500_000_000;
        assert_eq!(time_of_day(t, -5 * 3600), "21:00:00.500000000");
        assert_eq!(time_of_day(t, 0), "02:00:00.500000000");
    }

    #[test]
    fn rfc3339_known_dates() {
        let s = 1_000_000_000u64;
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339_utc(T), "2025-11-28T17:57:59.315968470Z");
        assert_eq!(
            rfc3339_utc(951_782_400 * s),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_utc(1_709_251_199 * s + 999_999_999),
            "2024-02-29T23:59:59.999999999Z"
        );
        assert_eq!(
            rfc3339_utc(4_107_542_400 * s),
            "2100-03-01T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_utc(1_230_767_999 * s + 1),
            "2008-12-31T23:59:59.000000001Z"
        );
        assert_eq!(rfc3339_utc(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn civil_from_days_walks_the_calendar() {
        // Day by day from 1970 to 2600 against a naive calendar.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..230_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[m as usize - 1] {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
