//! Spreading the rounds of many targets over the interval (README "Fleet mode"): target
//! `i` of `n` starts `interval * i / n` after the first, so MySQL servers and the
//! checker never see a burst of `n` connects at the same instant.
//!
//! Invariants: pure; offsets are in `[0, interval)` and never overflow (computed in
//! 128-bit nanoseconds).

use std::time::Duration;

/// When target `i` of `n` starts its first round, relative to the fleet's start.
pub(crate) fn offset(i: usize, n: usize, interval: Duration) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let i = (i % n) as u128;
    let nanos = interval.as_nanos() * i / n as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_evenly_spread_within_the_interval() {
        let iv = Duration::from_secs(2);
        let got: Vec<_> = (0..4).map(|i| offset(i, 4, iv)).collect();
        assert_eq!(
            got,
            [0, 500, 1000, 1500].map(Duration::from_millis).to_vec()
        );
        assert_eq!(offset(0, 1, iv), Duration::ZERO);
        assert_eq!(offset(0, 0, iv), Duration::ZERO);
        // Out of range indices wrap rather than land past the interval.
        assert_eq!(offset(5, 4, iv), Duration::from_millis(500));
    }

    #[test]
    fn a_thousand_targets_never_share_a_millisecond_at_one_second() {
        let iv = Duration::from_secs(1);
        let mut ms: Vec<_> = (0..1000).map(|i| offset(i, 1000, iv).as_millis()).collect();
        ms.dedup();
        assert_eq!(ms.len(), 1000);
        assert!(ms.iter().all(|&m| m < 1000));
    }

    #[test]
    fn a_day_long_interval_does_not_overflow() {
        let iv = Duration::from_secs(24 * 3600);
        assert!(offset(999, 1000, iv) < iv);
    }
}
