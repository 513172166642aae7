//! The response headers a component receives. They live in host memory for as long as the
//! component keeps the response (or its header fields), so:
//!
//! * their values are copied into one buffer whose size is charged to the instance's memory
//!   limit, and released when the component drops the last reference to them (the buffer is
//!   freed when the last header value sharing it goes);
//! * the credential is masked in every value, and a header whose name holds it is dropped.
//!
//! (hyper's parsed values point into its read buffer, which may hold much more than the
//! headers; the copy keeps only what the component can see.)

use super::scrub::Scrubber;
use crate::engine::limits::{Charge, MemoryAccount};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use wasmtime_wasi_http::Error;

/// What one header entry costs besides its name and value (the map's own bookkeeping).
const ENTRY_OVERHEAD: usize = 32;

/// The values' buffer, with the charge that ends when it is freed.
struct Charged {
    buf: Vec<u8>,
    _charge: Charge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

/// `headers` as the component may see them, charged to `account`.
pub fn for_guest(
    headers: &HeaderMap,
    scrubber: Option<&Scrubber>,
    account: &Arc<MemoryAccount>,
) -> Result<HeaderMap, Error> {
    let mut buf = Vec::with_capacity(headers.iter().map(|(_, v)| v.len()).sum());
    let mut entries = Vec::with_capacity(headers.len());
    let mut cost = 0;
    for (name, value) in headers {
        if scrubber.is_some_and(|s| s.in_name(name.as_str())) {
            continue;
        }
        let start = buf.len();
        match scrubber.and_then(|s| s.scrub(value.as_bytes())) {
            Some(masked) => buf.extend_from_slice(&masked),
            None => buf.extend_from_slice(value.as_bytes()),
        }
        cost += name.as_str().len() + (buf.len() - start) + ENTRY_OVERHEAD;
        entries.push((name.clone(), start..buf.len()));
    }
    let Some(charge) = account.charge(cost) else {
        return Err(Error::InternalError(Some(format!(
            "the response headers ({cost} bytes) would take the component past its memory limit of {} MiB: \
             response headers it keeps count against it ({} KiB kept now)",
            account.max_bytes() >> 20,
            account.host_bytes() >> 10
        ))));
    };
    let shared = Bytes::from_owner(Charged {
        buf,
        _charge: charge,
    });
    let mut map = HeaderMap::with_capacity(entries.len());
    for (name, range) in entries {
        // Values came from a parsed header (or are masked copies, plain ASCII): always valid.
        if let Ok(value) = HeaderValue::from_maybe_shared(shared.slice(range)) {
            map.append(name, value);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sgp_Zx81kQp7uVb3nRtYw2LmA0cD9eFh4";

    fn echoed() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "x-echo-authorization",
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        h.insert(
            http::HeaderName::from_bytes(format!("x-{}", TOKEN.to_lowercase()).as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        h
    }

    #[test]
    fn the_token_is_masked_in_values_and_names_holding_it_are_dropped() {
        let account = MemoryAccount::new(1 << 20);
        let scrubber = Scrubber::new(TOKEN).unwrap();
        let h = for_guest(&echoed(), Some(&scrubber), &account).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h["content-type"], "application/json");
        let echo = h["x-echo-authorization"].to_str().unwrap();
        assert!(
            !echo.contains(&TOKEN[..12]) && echo.starts_with("[REDACTED]"),
            "{echo}"
        );
    }

    #[test]
    fn kept_headers_are_charged_until_the_last_copy_goes() {
        let account = MemoryAccount::new(1 << 20);
        let h = for_guest(&echoed(), None, &account).unwrap();
        let charged = account.host_bytes();
        assert!(charged > 0);
        let copy = h.clone();
        drop(h);
        assert_eq!(account.host_bytes(), charged, "a copy still holds them");
        drop(copy);
        assert_eq!(account.host_bytes(), 0);
    }

    #[test]
    fn headers_past_the_limit_are_refused() {
        let account = MemoryAccount::new(100);
        let err = for_guest(&echoed(), None, &account).unwrap_err();
        assert!(
            matches!(&err, Error::InternalError(Some(m)) if m.contains("memory limit")),
            "{err:?}"
        );
        assert_eq!(account.host_bytes(), 0);
    }
}
