//! The calendar behind `hour()`, `minute()`, `month()`, `year()`, `day_of_week()`,
//! `day_of_month()`, `day_of_year()` and `days_in_month()`: Prometheus 2.42 turns a sample value
//! into Go's `time.Unix(int64(v), 0).UTC()` and reads the field, so this reproduces Go's
//! conversion (amd64: NaN and out-of-range values become i64::MIN) and Go 1.19's calendar
//! arithmetic, wrapping included, for the values no calendar covers.

/// Go's `uint64(sec + (unixToInternal + internalToAbsolute))` for a UTC time.
const UNIX_TO_ABSOLUTE: i64 = 9_223_372_028_715_321_600;
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
const DAYS_BEFORE: [u64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// What a date function reads from the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Minute,
    Hour,
    DayOfWeek,
    DayOfMonth,
    DayOfYear,
    DaysInMonth,
    Month,
    Year,
}

impl Field {
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "minute" => Field::Minute,
            "hour" => Field::Hour,
            "day_of_week" => Field::DayOfWeek,
            "day_of_month" => Field::DayOfMonth,
            "day_of_year" => Field::DayOfYear,
            "days_in_month" => Field::DaysInMonth,
            "month" => Field::Month,
            "year" => Field::Year,
            _ => return None,
        })
    }
}

/// Go's float64 -> int64 conversion on amd64 (CVTTSD2SQ): truncation, and the "integer
/// indefinite" value i64::MIN for NaN and anything out of range.
fn go_int64(v: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) { v as i64 } else { i64::MIN }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Go's `absDate`: (year, month 1..=12, day 1..=31, yday 0-based).
fn abs_date(abs: u64) -> (i64, u64, u64, u64) {
    let mut d = abs / SECONDS_PER_DAY;
    let mut n = d / DAYS_PER_400_YEARS;
    let mut y = 400 * n;
    d -= DAYS_PER_400_YEARS * n;
    n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100_YEARS * n;
    n = d / DAYS_PER_4_YEARS;
    y += 4 * n;
    d -= DAYS_PER_4_YEARS * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let yday = d;
    let mut day = yday;
    if is_leap(year) {
        if day > 31 + 29 - 1 {
            day -= 1;
        } else if day == 31 + 29 - 1 {
            return (year, 2, 29, yday);
        }
    }
    let mut month = day / 31;
    let end = DAYS_BEFORE[month as usize + 1];
    let begin = if day >= end {
        month += 1;
        end
    } else {
        DAYS_BEFORE[month as usize]
    };
    (year, month + 1, day - begin + 1, yday)
}

fn days_in(month: u64, year: i64) -> u64 {
    if month == 2 && is_leap(year) {
        return 29;
    }
    DAYS_BEFORE[month as usize] - DAYS_BEFORE[month as usize - 1]
}

/// The field of the UTC time `v` seconds after the epoch, as Prometheus 2.42 computes it.
pub(crate) fn date_field(field: Field, v: f64) -> f64 {
    let abs = go_int64(v).wrapping_add(UNIX_TO_ABSOLUTE) as u64;
    match field {
        Field::Minute => ((abs % 3600) / 60) as f64,
        Field::Hour => ((abs % SECONDS_PER_DAY) / 3600) as f64,
        // January 1 of the absolute year was a Monday (1).
        Field::DayOfWeek => (((abs.wrapping_add(SECONDS_PER_DAY)) % (7 * SECONDS_PER_DAY)) / SECONDS_PER_DAY) as f64,
        Field::DayOfMonth => abs_date(abs).2 as f64,
        Field::DayOfYear => (abs_date(abs).3 + 1) as f64,
        Field::Month => abs_date(abs).1 as f64,
        Field::Year => abs_date(abs).0 as f64,
        Field::DaysInMonth => {
            let (year, month, _, _) = abs_date(abs);
            days_in(month, year) as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Field; 8] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfWeek,
        Field::DayOfMonth,
        Field::DayOfYear,
        Field::DaysInMonth,
        Field::Month,
        Field::Year,
    ];

    /// Each row: the sample value, then what promtool 2.42 printed for minute, hour,
    /// day_of_week, day_of_month, day_of_year, days_in_month, month, year (as in
    /// tests/conformance/time_functions_test.yml).
    #[test]
    fn fields_match_promtool() {
        let rows: [(f64, [f64; 8]); 9] = [
            // 2024-02-29T13:45:00Z, a leap day
            (1_709_214_300.0, [45.0, 13.0, 4.0, 29.0, 60.0, 29.0, 2.0, 2024.0]),
            (951_868_799.0, [59.0, 23.0, 2.0, 29.0, 60.0, 29.0, 2.0, 2000.0]),
            // truncated towards zero: -1.5 s is -1 s, 1969-12-31T23:59:59Z
            (-1.5, [59.0, 23.0, 3.0, 31.0, 365.0, 31.0, 12.0, 1969.0]),
            (-2_208_988_800.0, [0.0, 0.0, 1.0, 1.0, 1.0, 31.0, 1.0, 1900.0]),
            (253_402_300_799.0, [59.0, 23.0, 5.0, 31.0, 365.0, 31.0, 12.0, 9999.0]),
            (1_703_980_800.0, [0.0, 0.0, 0.0, 31.0, 365.0, 31.0, 12.0, 2023.0]),
            // beyond int64 and NaN: Go's conversion gives i64::MIN, and the calendar wraps
            (1e19, [30.0, 15.0, 0.0, 4.0, 339.0, 31.0, 12.0, 292_277_026_596.0]),
            (f64::INFINITY, [30.0, 15.0, 0.0, 4.0, 339.0, 31.0, 12.0, 292_277_026_596.0]),
            (f64::NAN, [30.0, 15.0, 0.0, 4.0, 339.0, 31.0, 12.0, 292_277_026_596.0]),
        ];
        for (v, want) in rows {
            for (field, w) in ALL.iter().zip(want) {
                assert_eq!(date_field(*field, v), w, "{field:?}({v})");
            }
        }
        // hour() etc. with no argument read the evaluation time: 2h after the epoch.
        let at_2h = ALL.map(|f| date_field(f, 7200.0));
        assert_eq!(at_2h, [0.0, 2.0, 4.0, 1.0, 1.0, 31.0, 1.0, 1970.0]);
    }
}
