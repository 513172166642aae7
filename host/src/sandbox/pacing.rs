//! The one retry and pacing policy, for requests (the sandbox) and for calls (the sync engine
//! and provisioning).
//!
//! * [`RetryPolicy`]: what is retried and how long to wait: transient failures (5xx, a lost
//!   connection) with doubling backoff, a call the connector reports unavailable a few times,
//!   a call it reports rate limited many times (a sync's deadline comes first).
//! * [`Pacer`]: one per API origin and credential, shared by every request of a sync (and by
//!   every run of a `serve` tenant). It learns the allowed rate from what the server says and
//!   spaces requests to stay under it, so a rate limit costs waiting, not a storm of 429s:
//!   - a 429 is back-pressure: the request waits and is sent again, never failed for it;
//!     the learned rate is cut (multiplicatively, once per round of requests in flight) and
//!     grows back slowly (additively) while answers succeed;
//!   - the wait of a 429 comes from the standard headers (`Retry-After`, the IETF `RateLimit`
//!     fields, `X-RateLimit-Reset`). A wait of more than a second (a spent window) is honoured
//!     in full; a shorter one is at most a short moment (a reset time given in whole seconds
//!     says little about a limit that refills continuously), unless the request was sent after
//!     an earlier 429 already came back: then the server's full time applies;
//!   - successful answers that say the window is spent (`remaining` 0 with a reset time) hold
//!     requests until the reset; a long window with few requests left spreads them out.
//!
//!   Reads and writes are paced apart (writes have their own, lower limits). Nothing here
//!   knows a particular API's error bodies: the component interprets those.

use http::HeaderMap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts after a 5xx or a lost connection, for reads only.
    pub transient_retries: u32,
    /// First backoff for transient failures; doubles each attempt (at most 16 s).
    pub backoff: Duration,
    /// Attempts of a call the connector reports unavailable (its requests were already
    /// retried by the sandbox; this starts the call over, from its reads).
    pub call_attempts: u32,
    /// Attempts of a call the connector reports rate limited (each after the wait it asks;
    /// the sandbox has already waited out the 429s it could): for a sync, its deadline comes
    /// first.
    pub rate_limited_calls: u32,
    /// The longest single wait a 429 may ask of the host before the answer goes to the
    /// component instead (which may report it as rate limited with its own wait).
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            transient_retries: 4,
            backoff: Duration::from_millis(500),
            call_attempts: 4,
            rate_limited_calls: 50,
            max_rate_limit_wait: Duration::from_secs(600),
        }
    }
}

/// Why a connector call may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// The connector says: wait this long.
    RateLimited(Duration),
    Unavailable,
}

impl RetryPolicy {
    pub fn backoff(&self, attempt: u32) -> Duration {
        (self.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(16))
    }

    /// How long to wait before calling again after `failure` on attempt `attempt` (from 0),
    /// or `None` when the call has had its attempts.
    pub fn call_wait(&self, failure: CallFailure, attempt: u32) -> Option<Duration> {
        match failure {
            CallFailure::RateLimited(wait) => (attempt < self.rate_limited_calls).then_some(wait),
            CallFailure::Unavailable => (attempt + 1 < self.call_attempts)
                .then(|| Duration::from_secs(1u64 << attempt.min(5))),
        }
    }
}

/// Which limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Read,
    Write,
}

impl Lane {
    pub fn of(method: &http::Method) -> Lane {
        match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => Lane::Read,
            _ => Lane::Write,
        }
    }
}

/// Successes remembered for measuring the rate being achieved.
const RECENT: usize = 256;
/// The window over which the achieved rate is measured when a first 429 sets the pace.
const MEASURE: Duration = Duration::from_secs(2);
/// A first 429's wait is at most this (the new pace spaces the requests that follow).
const FIRST_WAIT_CAP: Duration = Duration::from_millis(100);
/// Multiplicative decrease of the rate on a 429.
const CUT: f64 = 0.9;
/// Additive increase: the rate grows by this share of itself per second of successes.
const GROWTH_PER_SECOND: f64 = 0.02;
/// A window shorter than this is not spread over (it refills too soon to matter), and a 429's
/// wait up to this long is taken as a moment, not as a spent window.
const SPREAD_MIN_WINDOW: Duration = Duration::from_secs(2);
/// Requests left in a window below which the rest are spread over it.
const SPREAD_BELOW: u64 = 10;
/// A 429 whose wait is longer than this is a spent window: honoured in full at once.
const SPENT_WINDOW: Duration = Duration::from_secs(1);
/// Added to a wait the server gave in whole seconds when it is honoured in full: a reset time
/// shown in whole seconds may lie up to a second before the real one.
const WHOLE_SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    lanes: [LaneState; 2],
    /// Every pause the server asked for so far, overlapping ones counted once.
    held: Duration,
    held_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct LaneState {
    /// Requests per second to stay under; `None` until a 429 says there is a limit.
    rate: Option<f64>,
    /// The earliest start of the next request.
    next: Option<Instant>,
    /// No request before this (a 429's wait, a spent window).
    blocked_until: Option<Instant>,
    /// A floor on the spacing from the server's window headers, until the window resets.
    spread: Option<(Duration, Instant)>,
    /// When recent requests succeeded (for the achieved rate).
    recent: VecDeque<Instant>,
    /// When the current run of 429s (with no success since) began.
    streak_start: Option<Instant>,
    /// 429s in the current run that were sent after it began (the server's full wait applies).
    escalations: u32,
    /// When the rate was last cut: one cut per round of requests in flight.
    last_cut: Option<Instant>,
}

/// What a response said about the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitHeaders {
    pub remaining: Option<u64>,
    /// How long until the window resets (or, on a 429, until sending again).
    pub reset: Option<Duration>,
}

impl LimitHeaders {
    /// Reads `Retry-After` (seconds or an HTTP date), the IETF `RateLimit-Remaining` /
    /// `RateLimit-Reset` (delta seconds) and `RateLimit: …, r=…, t=…` fields, and
    /// `X-RateLimit-Remaining` / `X-RateLimit-Reset` (an RFC 5322 date, epoch seconds, or
    /// delta seconds).
    pub fn read(headers: &HeaderMap, now: SystemTime) -> LimitHeaders {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let mut remaining = number("ratelimit-remaining").or(number("x-ratelimit-remaining"));
        let mut reset = text("retry-after")
            .and_then(|v| time_value(v, now))
            .or_else(|| number("ratelimit-reset").map(Duration::from_secs))
            .or_else(|| text("x-ratelimit-reset").and_then(|v| time_value(v, now)));
        // The structured field of the later IETF drafts: `RateLimit: "policy";r=0;t=5`.
        if let Some(field) = text("ratelimit") {
            for part in field.split([';', ',']) {
                let (k, v) = part.trim().split_once('=').unwrap_or(("", ""));
                match (k.trim(), v.trim().parse::<u64>()) {
                    ("r" | "remaining", Ok(n)) => remaining = remaining.or(Some(n)),
                    ("t" | "reset", Ok(n)) => reset = reset.or(Some(Duration::from_secs(n))),
                    _ => {}
                }
            }
        }
        LimitHeaders { remaining, reset }
    }
}

/// A time header's value as a wait from `now`: delta seconds, epoch seconds, or an HTTP date.
fn time_value(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(n) = value.parse::<u64>() {
        let epoch = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
        // Values past 2001 in epoch seconds are times, smaller ones delays.
        return Some(if n > 1_000_000_000 {
            Duration::from_secs(n.saturating_sub(epoch))
        } else {
            Duration::from_secs(n)
        });
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        SystemTime::from(at)
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    )
}

impl Pacer {
    /// The pacer of the API and credential `key` names: one per process, so every run on the
    /// same origin with the same credential (a sync's requests, a service's tasks, a `serve`
    /// tenant's runs) keeps one pace.
    pub fn shared(key: &str) -> Arc<Pacer> {
        static SHARED: OnceLock<Mutex<HashMap<String, Arc<Pacer>>>> = OnceLock::new();
        let mut map = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Waits until `lane` may send one more request, and takes that turn.
    pub async fn admit(&self, lane: Lane) {
        let start = {
            let mut state = self.lock();
            let now = Instant::now();
            let lane = &mut state.lanes[lane as usize];
            let mut start = now;
            if let Some(t) = lane.blocked_until {
                start = start.max(t);
            }
            if let Some(t) = lane.next {
                start = start.max(t);
            }
            if let Some(interval) = lane.interval(now) {
                lane.next = Some(start + interval);
            }
            // Keeping the pace is waiting as the server asked too: per-call wall limits do
            // not count it.
            if start > now {
                state.hold(now, start);
            }
            start
        };
        if start > Instant::now() {
            tokio::time::sleep_until(start.into()).await;
        }
    }

    /// Learns from a successful (non-429) answer.
    pub fn succeeded(&self, lane: Lane, limit: LimitHeaders) {
        let mut state = self.lock();
        let now = Instant::now();
        let l = &mut state.lanes[lane as usize];
        l.streak_start = None;
        l.escalations = 0;
        if l.recent.len() == RECENT {
            l.recent.pop_front();
        }
        l.recent.push_back(now);
        if let Some(rate) = l.rate {
            // Additive increase: GROWTH_PER_SECOND of the rate per second's worth of requests.
            l.rate = Some(rate + rate * GROWTH_PER_SECOND / rate.max(1.0));
        }
        let hold = match (limit.remaining, limit.reset) {
            (Some(0), Some(reset)) if !reset.is_zero() => Some(now + reset),
            (Some(left), Some(reset)) if reset >= SPREAD_MIN_WINDOW && left < SPREAD_BELOW => {
                l.spread = Some((reset / left as u32, now + reset));
                None
            }
            _ => None,
        };
        if let Some(until) = hold {
            l.blocked_until = Some(l.blocked_until.map_or(until, |t| t.max(until)));
            state.hold(now, until);
        }
    }

    /// Learns from a 429 to a request sent at `sent` and returns how long it waits before it
    /// is sent again (the whole lane waits with it).
    pub fn rejected(&self, lane: Lane, limit: LimitHeaders, sent: Instant) -> Duration {
        let mut state = self.lock();
        let now = Instant::now();
        let l = &mut state.lanes[lane as usize];
        // A request sent before the run of 429s began was sent at the old pace: it is part of
        // the first rejection. One sent after it means the limit is still spent.
        let escalate = l.streak_start.is_some_and(|start| sent >= start);
        l.streak_start.get_or_insert(now);
        if escalate {
            l.escalations += 1;
        }
        let interval = l.interval(now);
        // One cut per round: the requests already in flight were sent at the old pace.
        let round = (interval.unwrap_or(FIRST_WAIT_CAP) * 8).max(FIRST_WAIT_CAP * 2);
        if l.last_cut.is_none_or(|t| now.duration_since(t) >= round) {
            l.last_cut = Some(now);
            let achieved = l.achieved(now);
            l.rate = Some(match (l.rate, achieved) {
                (Some(rate), _) => rate * CUT,
                (None, Some(achieved)) => achieved * CUT,
                // Nothing succeeded lately: start slow, growth finds the rate.
                (None, None) => 1.0,
            });
        }
        let wait = if escalate {
            let backoff = FIRST_WAIT_CAP * 2u32.saturating_pow(l.escalations.min(8));
            limit.reset.map_or(backoff, |r| r + WHOLE_SECOND)
        } else {
            match limit.reset {
                Some(reset) if reset > SPENT_WINDOW => reset + WHOLE_SECOND,
                // A short pause; the new pace spaces what follows.
                Some(reset) => reset.min(FIRST_WAIT_CAP),
                None => FIRST_WAIT_CAP,
            }
        };
        let until = now + wait;
        l.blocked_until = Some(l.blocked_until.map_or(until, |t| t.max(until)));
        state.hold(now, until);
        wait
    }

    /// How long requests have been held in all because the server asked for a pause: the
    /// difference between two readings is how long they were held in between (per-call wall
    /// limits do not count it).
    pub fn held(&self) -> Duration {
        let state = self.lock();
        let to_come = state.held_until.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        });
        state.held.saturating_sub(to_come)
    }

    /// The pace `lane` keeps now, in requests per second (`None`: unpaced).
    pub fn rate(&self, lane: Lane) -> Option<f64> {
        let mut state = self.lock();
        let now = Instant::now();
        state.lanes[lane as usize]
            .interval(now)
            .map(|i| 1.0 / i.as_secs_f64())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn hold(&mut self, now: Instant, until: Instant) {
        if self.held_until.is_none_or(|t| t < until) {
            let from = self.held_until.map_or(now, |t| t.max(now));
            self.held += until - from;
            self.held_until = Some(until);
        }
    }
}

impl LaneState {
    /// The spacing between request starts: the learned rate's, or the server's window
    /// spread if that is wider.
    fn interval(&mut self, now: Instant) -> Option<Duration> {
        if self.spread.is_some_and(|(_, until)| until <= now) {
            self.spread = None;
        }
        let learned = self
            .rate
            .map(|r| Duration::from_secs_f64(1.0 / r.max(0.01)));
        match (learned, self.spread.map(|(i, _)| i)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Successes per second over the last [`MEASURE`].
    fn achieved(&self, now: Instant) -> Option<f64> {
        let since = now.checked_sub(MEASURE)?;
        let n = self.recent.iter().filter(|t| **t >= since).count();
        let first = self.recent.iter().find(|t| **t >= since)?;
        let span = now.duration_since(*first).max(Duration::from_millis(250));
        (n >= 2).then(|| n as f64 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a response says about the limit: `remaining` requests, a reset in `reset`.
    fn limits(remaining: Option<u64>, reset: Option<Duration>) -> LimitHeaders {
        LimitHeaders { remaining, reset }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap())
    }

    #[test]
    fn the_standard_headers_are_read_in_every_form() {
        let now = at("2030-01-01T00:00:02Z");
        let x = LimitHeaders::read(
            &headers(&[
                ("x-ratelimit-remaining", "7"),
                ("x-ratelimit-reset", "Tue, 01 Jan 2030 00:00:05 GMT"),
            ]),
            now,
        );
        assert_eq!(x.remaining, Some(7));
        assert_eq!(x.reset, Some(Duration::from_secs(3)));
        let ietf = LimitHeaders::read(
            &headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "9")]),
            now,
        );
        assert_eq!(ietf.remaining, Some(0));
        assert_eq!(ietf.reset, Some(Duration::from_secs(9)));
        let field = LimitHeaders::read(&headers(&[("ratelimit", "\"default\";r=3;t=12")]), now);
        assert_eq!(
            (field.remaining, field.reset),
            (Some(3), Some(Duration::from_secs(12)))
        );
        let retry = LimitHeaders::read(&headers(&[("retry-after", "4")]), now);
        assert_eq!(retry.reset, Some(Duration::from_secs(4)));
        let past = LimitHeaders::read(
            &headers(&[("x-ratelimit-reset", "Tue, 01 Jan 2030 00:00:01 GMT")]),
            now,
        );
        assert_eq!(past.reset, Some(Duration::ZERO));
        let none = LimitHeaders::read(&HeaderMap::new(), now);
        assert_eq!((none.remaining, none.reset), (None, None));
    }

    #[test]
    fn connector_calls_retry_rate_limits_long_and_outages_a_few_times() {
        let p = RetryPolicy::default();
        let wait = Duration::from_millis(1500);
        assert_eq!(p.call_wait(CallFailure::RateLimited(wait), 49), Some(wait));
        assert_eq!(p.call_wait(CallFailure::RateLimited(wait), 50), None);
        assert!(p.call_wait(CallFailure::Unavailable, 0).is_some());
        assert!(
            p.call_wait(CallFailure::Unavailable, p.call_attempts - 1)
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_first_429_sets_a_pace_below_what_was_achieved() {
        let pacer = Pacer::default();
        for _ in 0..40 {
            pacer.admit(Lane::Read).await;
            pacer.succeeded(
                Lane::Read,
                LimitHeaders::read(&HeaderMap::new(), SystemTime::now()),
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pacer.rate(Lane::Read), None, "unpaced until told");
        let none = LimitHeaders::read(&HeaderMap::new(), SystemTime::now());
        let wait = pacer.rejected(Lane::Read, none, Instant::now());
        assert!(wait <= FIRST_WAIT_CAP * 2, "{wait:?}");
        let rate = pacer.rate(Lane::Read).unwrap();
        // About 100 per second were achieved (minus timer slack): the pace is 90 % of it.
        assert!(rate > 30.0 && rate < 95.0, "{rate}");
        assert_eq!(pacer.rate(Lane::Write), None, "writes are paced apart");
    }

    #[tokio::test]
    async fn requests_are_spaced_at_the_learned_pace() {
        let pacer = Pacer::default();
        let now = limits(None, Some(Duration::ZERO));
        pacer.rejected(Lane::Read, now, Instant::now());
        // No success measured: the pace starts at one per second and grows.
        let started = Instant::now();
        for _ in 0..3 {
            pacer.admit(Lane::Read).await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            started.elapsed()
        );
        // Waiting for the pace is a pause the server asked for: per-call limits do not count it.
        assert!(
            pacer.held() >= Duration::from_millis(1900),
            "{:?}",
            pacer.held()
        );
    }

    #[tokio::test]
    async fn a_429_to_a_request_sent_after_the_first_waits_the_servers_full_time() {
        let pacer = Pacer::default();
        let soon = limits(Some(0), Some(Duration::from_millis(900)));
        let in_flight = Instant::now();
        let first = pacer.rejected(Lane::Read, soon, in_flight);
        assert!(first <= FIRST_WAIT_CAP, "{first:?}");
        // Sent before the first 429 came back: part of the same round.
        let same_round = pacer.rejected(Lane::Read, soon, in_flight);
        assert!(same_round <= FIRST_WAIT_CAP, "{same_round:?}");
        let second = pacer.rejected(Lane::Read, soon, Instant::now());
        assert_eq!(second, Duration::from_millis(900) + WHOLE_SECOND);
        pacer.succeeded(Lane::Read, limits(None, None));
        let again = pacer.rejected(Lane::Read, soon, Instant::now());
        assert!(again <= FIRST_WAIT_CAP, "a success starts over: {again:?}");
        // A spent window is waited out at once.
        let window = limits(Some(0), Some(Duration::from_secs(30)));
        pacer.succeeded(Lane::Read, limits(None, None));
        assert_eq!(
            pacer.rejected(Lane::Read, window, Instant::now()),
            Duration::from_secs(30) + WHOLE_SECOND
        );
    }

    #[tokio::test]
    async fn a_spent_window_holds_requests_until_it_resets() {
        let pacer = Pacer::default();
        pacer.succeeded(
            Lane::Write,
            limits(Some(0), Some(Duration::from_millis(300))),
        );
        let started = Instant::now();
        pacer.admit(Lane::Write).await;
        assert!(started.elapsed() >= Duration::from_millis(280));
        let read = Instant::now();
        pacer.admit(Lane::Read).await;
        assert!(
            read.elapsed() < Duration::from_millis(50),
            "reads are not held by writes"
        );
        assert!(pacer.held() >= Duration::from_millis(280));
    }

    #[tokio::test]
    async fn a_long_window_with_few_requests_left_is_spread_out() {
        let pacer = Pacer::default();
        pacer.succeeded(Lane::Read, limits(Some(500), Some(Duration::from_secs(50))));
        assert_eq!(pacer.rate(Lane::Read), None, "plenty left: unpaced");
        pacer.succeeded(Lane::Read, limits(Some(8), Some(Duration::from_secs(4))));
        let rate = pacer.rate(Lane::Read).unwrap();
        assert!(
            (rate - 2.0).abs() < 0.1,
            "8 left over 4 s: 2 per second ({rate})"
        );
    }
}
