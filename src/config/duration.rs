//! Durations in the config and in query parameters: parse, format, and the bounds.
//!
//! Invariants: parsing never panics, whatever the input (humantime alone can); every
//! timing setting is bounded by [`MAX_DURATION`] or [`MAX_LAG`], so deadlines computed
//! from them stay far from overflowing.

use std::time::Duration;

/// The longest timing setting accepted (intervals, timeouts, `stale_after`): anything
/// longer is a typo, and bounding them keeps every deadline computed from them far
/// from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest lag bound accepted: longer than [`MAX_DURATION`] because a delayed
/// replica (`MASTER_DELAY`) legitimately lags by days.
pub(crate) const MAX_LAG: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a duration setting should look like, for error messages.
pub(super) const EXPECTED: &str = "a duration such as \"500ms\", \"2s\" or \"1m\"";

/// The error for a duration over `max`. Both bounds are whole days; "1d" reads better
/// than humantime's "1day".
pub(super) fn too_long(max: Duration) -> String {
    format!("must be at most {}d", max.as_secs() / 86400)
}

/// `"500ms"`, `"2s"`, `"1m 30s"`; also a bare number of seconds (`"10"`, as HAProxy's
/// `agent-send`/query parameters use).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    // humantime checks most of its arithmetic but can still panic in `Duration::new`
    // when a sum lands next to u64::MAX seconds ("18446744073709551615s 500ms 500ms").
    // Refuse input whose numbers, each read in the largest unit (a year), could add up
    // to anywhere near that: no sane duration comes close.
    let mut total: u64 = 0;
    for run in s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
    {
        let n = run.parse::<u64>().ok()?;
        total = total.checked_add(n.checked_mul(31_557_600)?)?;
        if total > 1 << 62 {
            return None;
        }
    }
    humantime::parse_duration(s).ok()
}

/// Short human form: `1s`, `500ms`, `1m 30s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_do_not_overflow() {
        // humantime alone panics on this one (Duration::new overflows).
        assert_eq!(parse_duration("18446744073709551615s 500ms 500ms"), None);
        assert_eq!(parse_duration("584542046090y"), None);
        assert_eq!(
            parse_duration("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100y").map(|d| d > MAX_DURATION), Some(true));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn bounds_read_in_days() {
        assert_eq!(too_long(MAX_DURATION), "must be at most 1d");
        assert_eq!(too_long(MAX_LAG), "must be at most 30d");
        assert_eq!(fmt_duration(Duration::from_millis(90_500)), "1m 30s 500ms");
    }
}
