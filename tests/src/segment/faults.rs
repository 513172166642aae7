//! Injected faults (consumed in order of injection) and the rate limiter (fixed windows, or a
//! token bucket for reads) that produces Segment's `X-RateLimit-*` headers and 429 bodies.

use super::bucket::{ReadRate, TokenBuckets};
use super::model::{Fault, FaultKind};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Faults waiting to be applied.
#[derive(Debug, Default)]
pub struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub fn push(&mut self, mut fault: Fault) {
        fault.times = fault.times.max(1);
        self.faults.push(fault);
    }

    /// The first fault matching this request, consuming one of its uses.
    pub fn take(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let pos = self.faults.iter().position(|f| f.matches(method, path))?;
        let fault = &mut self.faults[pos];
        let kind = fault.kind.clone();
        fault.times -= 1;
        if fault.times == 0 {
            self.faults.remove(pos);
        }
        Some(kind)
    }

    pub fn pending(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }
}

/// Remaining budget reported for reads when no read limit is configured (reads are then
/// never refused; the headers still count them).
pub const NOMINAL_READ_LIMIT: u32 = 1_000_000;
/// Window used for counting reads when no read limit is configured.
pub const NOMINAL_READ_WINDOW: Duration = Duration::from_secs(60);

/// The state of one fixed window after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub allowed: bool,
    /// Requests counted in this window, including this one (and refused ones).
    pub consumed: u32,
    pub remaining: u32,
    /// Wall-clock start of the next window.
    pub reset_at: SystemTime,
    pub ms_before_next: u64,
    /// Sent as `X-RateLimit-Limit` when set (Segment does not document that header).
    pub limit_header: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    consumed: u32,
}

/// A fixed-window counter per key ([`bucket_key`]: a token, or a token and a write
/// operation): at most `limit` requests per `window`; a window starts with the first request
/// after the previous one ended. Refused requests still count
/// (like rate-limiter-flexible, whose fields Segment's 429 body carries).
#[derive(Debug, Clone)]
pub struct Bucket {
    limit: Option<u32>,
    window: Duration,
    windows: HashMap<String, Window>,
}

impl Bucket {
    /// `limit: None` counts without refusing (reported against [`NOMINAL_READ_LIMIT`]).
    pub fn new(limit: Option<u32>, window: Duration) -> Self {
        Bucket {
            limit,
            window: window.max(Duration::from_millis(1)),
            windows: HashMap::new(),
        }
    }

    fn current(&mut self, token: &str, now: Instant) -> &mut Window {
        let window = self.window;
        let w = self.windows.entry(token.to_string()).or_insert(Window {
            start: now,
            consumed: 0,
        });
        if now.saturating_duration_since(w.start) >= window {
            *w = Window {
                start: now,
                consumed: 0,
            };
        }
        w
    }

    fn info(&self, w: Window, now: Instant, wall: SystemTime) -> RateInfo {
        let limit = self.limit.unwrap_or(NOMINAL_READ_LIMIT);
        let left = (w.start + self.window).saturating_duration_since(now);
        RateInfo {
            allowed: self.limit.is_none_or(|l| w.consumed <= l),
            consumed: w.consumed,
            remaining: limit.saturating_sub(w.consumed),
            reset_at: wall + left,
            ms_before_next: left.as_millis().max(1) as u64,
            limit_header: None,
        }
    }

    /// Counts one request and says whether it is allowed.
    pub fn consume(&mut self, token: &str, now: Instant, wall: SystemTime) -> RateInfo {
        let w = self.current(token, now);
        w.consumed = w.consumed.saturating_add(1);
        let w = *w;
        self.info(w, now, wall)
    }

    /// The window's state without counting anything.
    pub fn peek(&mut self, token: &str, now: Instant, wall: SystemTime) -> RateInfo {
        let w = *self.current(token, now);
        self.info(w, now, wall)
    }
}

/// Write (POST/PUT/PATCH/DELETE) and read (GET/HEAD) buckets; a token bucket, when set,
/// limits reads instead of the read window.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    pub writes: Bucket,
    pub reads: Bucket,
    pub read_rate: Option<TokenBuckets>,
}

impl RateLimiter {
    pub fn new(
        write_limit: u32,
        write_window: Duration,
        read_limit: Option<(u32, Duration)>,
    ) -> Self {
        RateLimiter {
            writes: Bucket::new(Some(write_limit), write_window),
            reads: match read_limit {
                Some((n, w)) => Bucket::new(Some(n), w),
                None => Bucket::new(None, NOMINAL_READ_WINDOW),
            },
            read_rate: None,
        }
    }

    /// Reads limited by a token bucket (instead of the read window).
    pub fn with_read_rate(mut self, rate: Option<ReadRate>) -> Self {
        self.read_rate = rate.map(TokenBuckets::new);
        self
    }

    pub fn bucket(&mut self, method: &str) -> &mut Bucket {
        if is_write(method) {
            &mut self.writes
        } else {
            &mut self.reads
        }
    }

    /// Counts one request against what limits it and says whether it is allowed.
    pub fn consume(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        now: Instant,
        wall: SystemTime,
    ) -> RateInfo {
        let key = bucket_key(method, path, token);
        match &mut self.read_rate {
            Some(rate) if !is_write(method) => rate.take(&key, now, wall),
            _ => self.bucket(method).consume(&key, now, wall),
        }
    }

    /// The state of what limits such a request, without counting it.
    pub fn peek(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        now: Instant,
        wall: SystemTime,
    ) -> RateInfo {
        let key = bucket_key(method, path, token);
        match &mut self.read_rate {
            Some(rate) if !is_write(method) => rate.peek(&key, now, wall),
            _ => self.bucket(method).peek(&key, now, wall),
        }
    }
}

/// What a request counts against: per token for reads, and per token and operation for
/// writes (Segment documents 60 per minute for each write operation, not for all together).
pub fn bucket_key(method: &str, path: &str, token: &str) -> String {
    if !is_write(method) {
        return token.to_string();
    }
    format!(
        "{token} {} {}",
        method.to_ascii_uppercase(),
        operation_path(path)
    )
}

/// The path's template: ids become `*` (`/groups/g1/users?emails.0=…` → `/groups/*/users`).
fn operation_path(path: &str) -> String {
    const LITERALS: [&str; 10] = [
        "users",
        "groups",
        "group",
        "invites",
        "permissions",
        "roles",
        "sources",
        "warehouses",
        "functions",
        "spaces",
    ];
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|segment| {
            if segment.is_empty() || LITERALS.contains(&segment) {
                segment
            } else {
                "*"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// POST, PUT, PATCH and DELETE are writes.
pub fn is_write(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH" | "DELETE"
    )
}

/// RFC 5322 / IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_operation_has_its_own_budget() {
        assert_eq!(
            bucket_key("DELETE", "/group/g1/users?emails.0=a%40b.c", "t"),
            bucket_key("delete", "/group/g2/users?emails.0=x%40y.z", "t")
        );
        assert_ne!(
            bucket_key("POST", "/groups/g1/users", "t"),
            bucket_key("DELETE", "/group/g1/users", "t")
        );
        assert_ne!(
            bucket_key("POST", "/users/u1/permissions", "t"),
            bucket_key("POST", "/groups/g1/permissions", "t")
        );
        assert_eq!(
            bucket_key("GET", "/users/u1", "t"),
            bucket_key("GET", "/roles", "t")
        );
    }
    use crate::segment::model::PathMatch;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_767_225_599)),
            "Wed, 31 Dec 2025 23:59:59 GMT"
        );
    }

    #[test]
    fn fault_queue_consumes_in_order() {
        let mut q = FaultQueue::default();
        q.push(Fault {
            method: Some("GET".into()),
            path: PathMatch::Prefix("/users".into()),
            kind: FaultKind::MalformedJson,
            times: 2,
        });
        q.push(Fault {
            method: None,
            path: PathMatch::Any,
            kind: FaultKind::Hang,
            times: 0,
        });
        assert_eq!(q.take("GET", "/users/x"), Some(FaultKind::MalformedJson));
        assert_eq!(q.take("POST", "/users"), Some(FaultKind::Hang));
        assert_eq!(q.take("POST", "/users"), None);
        assert_eq!(q.take("GET", "/users"), Some(FaultKind::MalformedJson));
        assert_eq!(q.take("GET", "/users"), None);
        assert!(q.pending().is_empty());
    }

    #[test]
    fn fixed_window() {
        let mut b = Bucket::new(Some(2), Duration::from_secs(10));
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = b.consume("t", t0, wall);
        assert!(a.allowed);
        assert_eq!((a.consumed, a.remaining), (1, 1));
        assert_eq!(a.reset_at, wall + Duration::from_secs(10));
        assert!(b.consume("t", t0 + Duration::from_secs(1), wall).allowed);
        let c = b.consume("t", t0 + Duration::from_secs(4), wall);
        assert!(!c.allowed);
        assert_eq!((c.consumed, c.remaining, c.ms_before_next), (3, 0, 6000));
        assert!(
            b.consume("other", t0 + Duration::from_secs(4), wall)
                .allowed,
            "per token"
        );
        let d = b.consume("t", t0 + Duration::from_secs(10), wall);
        assert!(d.allowed);
        assert_eq!(d.consumed, 1);
        assert_eq!(b.peek("t", t0 + Duration::from_secs(11), wall).consumed, 1);
    }

    #[test]
    fn unlimited_reads_are_counted_not_refused() {
        let mut r = RateLimiter::new(60, Duration::from_secs(60), None);
        let now = Instant::now();
        for _ in 0..100 {
            assert!(r.bucket("GET").consume("t", now, SystemTime::now()).allowed);
        }
        let i = r.bucket("get").peek("t", now, SystemTime::now());
        assert_eq!((i.consumed, i.remaining), (100, NOMINAL_READ_LIMIT - 100));
        assert!(is_write("delete") && is_write("PATCH") && !is_write("GET"));
    }
}
