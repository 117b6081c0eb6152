/// PostgreSQL's calendar arithmetic (`date2j`/`j2date` in `src/backend/utils/adt/datetime.c`):
/// proleptic Gregorian, Julian day numbers, year 0 = 1 BC.
enum Calendar {
    /// Julian day number of 2000-01-01 (`POSTGRES_EPOCH_JDATE`).
    static let postgresEpochJulian: Int64 = 2_451_545
    static let microsecondsPerDay: Int64 = 86_400_000_000
    static let microsecondsPerHour: Int64 = 3_600_000_000
    static let microsecondsPerMinute: Int64 = 60_000_000
    static let microsecondsPerSecond: Int64 = 1_000_000
    /// 2000-01-01 minus 1970-01-01, in microseconds.
    static let unixEpochOffsetMicroseconds: Int64 = 946_684_800_000_000

    /// Valid `date` values, days since 2000-01-01: 4714-11-24 BC (Julian day 0) up to
    /// 5874897-12-31 (`DATE_END_JULIAN` is exclusive).
    static let dateRange: ClosedRange<Int64> = (0 - postgresEpochJulian)...(2_147_483_494 - postgresEpochJulian - 1)
    /// Valid finite `timestamp` values: `MIN_TIMESTAMP` up to `END_TIMESTAMP` (exclusive).
    static let timestampRange: ClosedRange<Int64> = -211_813_488_000_000_000...9_223_371_331_199_999_999

    static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// `date2j`: the Julian day number of a calendar day (year 0 = 1 BC). Nil for years far
    /// outside PostgreSQL's range (so the arithmetic cannot overflow).
    static func julian(year: Int, month: Int, day: Int) -> Int64? {
        guard (-10_000...10_000_000).contains(year), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var y = Int64(year), m = Int64(month)
        if m > 2 {
            m += 1
            y += 4800
        } else {
            m += 13
            y += 4799
        }
        let century = y / 100
        var julian = y * 365 - 32167
        julian += y / 4 - century + century / 4
        julian += 7834 * m / 256 + Int64(day)
        return julian
    }

    static func postgresDays(year: Int, month: Int, day: Int) -> Int64? {
        julian(year: year, month: month, day: day).map { $0 - postgresEpochJulian }
    }

    /// `j2date`: the calendar day of a Julian day number (valid for Julian day ≥ 0).
    static func civil(fromJulian jd: Int64) -> (year: Int, month: Int, day: Int) {
        var julian = jd + 32044
        var quad = julian / 146_097
        let extra = (julian - quad * 146_097) * 4 + 3
        julian += 60 + quad * 3 + extra / 146_097
        quad = julian / 1461
        julian -= quad * 1461
        var y = julian * 4 / 1461
        julian = (y != 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123
        y += quad * 4
        let year = y - 4800
        quad = julian * 2141 / 65536
        let day = julian - 7834 * quad / 256
        let month = (quad + 10) % 12 + 1
        return (Int(year), Int(month), Int(day))
    }

    static func civil(fromPostgresDays days: Int64) -> (year: Int, month: Int, day: Int) {
        civil(fromJulian: days + postgresEpochJulian)
    }

    /// Splits a finite timestamp into days since 2000-01-01 and microseconds into that day
    /// (`timestamp2tm`: the time part is never negative).
    static func split(timestamp: Int64) -> (days: Int64, microseconds: Int64) {
        var days = timestamp / microsecondsPerDay
        var time = timestamp - days * microsecondsPerDay
        if time < 0 {
            time += microsecondsPerDay
            days -= 1
        }
        return (days, time)
    }
}
