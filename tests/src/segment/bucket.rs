//! A token-bucket read limit, the shape Segment's unpublished read limit has in practice: a
//! steady rate with a small burst. An empty bucket answers 429 with a wait of a few
//! milliseconds (until the next token), so a client that retries at once, or as soon as it
//! is told, keeps hitting it: the 429 storm a sync has to avoid by pacing.

use super::faults::RateInfo;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// A steady read rate per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadRate {
    /// Tokens added per second: the sustained request rate.
    pub per_second: f64,
    /// Bucket size: requests allowed at once after a quiet spell.
    pub burst: u32,
    /// Also send `X-RateLimit-Limit` (the burst). Segment does not document this header
    /// (segment-api.md §5), so it is off by default: nothing should depend on it.
    pub limit_header: bool,
}

impl ReadRate {
    /// `per_second` with a burst of `burst`, without `X-RateLimit-Limit`.
    pub fn new(per_second: f64, burst: u32) -> ReadRate {
        ReadRate {
            per_second: per_second.max(0.001),
            burst: burst.max(1),
            limit_header: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: Instant,
}

/// One bucket per key (a token). A refused request takes no token: waiting as long as the
/// 429 says is enough to get through.
#[derive(Debug, Clone)]
pub struct TokenBuckets {
    rate: ReadRate,
    levels: HashMap<String, Level>,
}

impl TokenBuckets {
    pub fn new(rate: ReadRate) -> TokenBuckets {
        TokenBuckets {
            rate: ReadRate {
                limit_header: rate.limit_header,
                ..ReadRate::new(rate.per_second, rate.burst)
            },
            levels: HashMap::new(),
        }
    }

    pub fn rate(&self) -> ReadRate {
        self.rate
    }

    /// The bucket of `key`, refilled up to `now`.
    fn level(&mut self, key: &str, now: Instant) -> &mut Level {
        let ReadRate {
            per_second, burst, ..
        } = self.rate;
        let level = self.levels.entry(key.to_string()).or_insert(Level {
            tokens: f64::from(burst),
            at: now,
        });
        let elapsed = now.saturating_duration_since(level.at).as_secs_f64();
        level.tokens = (level.tokens + elapsed * per_second).min(f64::from(burst));
        level.at = now;
        level
    }

    fn info(&self, allowed: bool, tokens: f64, wall: SystemTime) -> RateInfo {
        let ReadRate {
            per_second,
            burst,
            limit_header,
        } = self.rate;
        let secs = |missing: f64| Duration::from_secs_f64((missing / per_second).max(0.0));
        let remaining = tokens.floor() as u32;
        RateInfo {
            allowed,
            consumed: burst.saturating_sub(remaining),
            remaining,
            // Segment's reset is when the budget is whole again.
            reset_at: wall + secs(f64::from(burst) - tokens),
            // Until the next token: what a refused request has to wait.
            ms_before_next: (secs(1.0 - tokens).as_secs_f64() * 1000.0).ceil().max(1.0) as u64,
            limit_header: limit_header.then_some(burst),
        }
    }

    /// Takes a token for one request if there is one.
    pub fn take(&mut self, key: &str, now: Instant, wall: SystemTime) -> RateInfo {
        let level = self.level(key, now);
        let allowed = level.tokens >= 1.0;
        if allowed {
            level.tokens -= 1.0;
        }
        let tokens = level.tokens;
        self.info(allowed, tokens, wall)
    }

    /// The bucket's state without taking anything.
    pub fn peek(&mut self, key: &str, now: Instant, wall: SystemTime) -> RateInfo {
        let tokens = self.level(key, now).tokens;
        self.info(tokens >= 1.0, tokens, wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut b = TokenBuckets::new(ReadRate::new(40.0, 3));
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for left in [2, 1, 0] {
            let i = b.take("t", t0, wall);
            assert!(i.allowed);
            assert_eq!((i.remaining, i.consumed), (left, 3 - left));
        }
        let refused = b.take("t", t0, wall);
        assert!(!refused.allowed);
        assert_eq!(refused.ms_before_next, 25, "one token every 25 ms");
        assert_eq!(refused.reset_at, wall + Duration::from_millis(75));
        // Refusals take nothing: after the wait it says, a request gets through.
        assert!(!b.take("t", t0 + Duration::from_millis(10), wall).allowed);
        let later = b.take("t", t0 + Duration::from_millis(25), wall);
        assert!(later.allowed);
        assert!(b.take("other", t0, wall).allowed, "one bucket per token");
        // Never more than the burst, however long the pause.
        let idle = t0 + Duration::from_secs(3600);
        assert_eq!(b.peek("t", idle, wall).remaining, 3);
    }

    #[test]
    fn a_wait_of_a_few_milliseconds() {
        let mut b = TokenBuckets::new(ReadRate::new(40.0, 1));
        let t0 = Instant::now();
        assert!(b.take("t", t0, SystemTime::now()).allowed);
        let i = b.take("t", t0 + Duration::from_millis(21), SystemTime::now());
        assert!(!i.allowed);
        assert!((1..=5).contains(&i.ms_before_next), "{}", i.ms_before_next);
    }
}
