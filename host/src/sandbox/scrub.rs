//! Masks a secret in bytes: response headers and bodies before the guest sees them (a server
//! that echoes requests must not hand the token to the component), and every string the host
//! emits (see [`super::redact`]).
//!
//! What is masked: the secret as sent and in the encodings an echo is likely to use (JSON
//! string escapes, URL encoding), each alone and as the `Authorization` value `Bearer <secret>`,
//! and any echo cut short that still holds the secret's first [`LEAD`] bytes. The mask has the
//! length of what it hides, so `Content-Length` and JSON stay valid. A server that transforms the
//! secret otherwise (base64, reversed) is beyond what a host can recognise.
//!
//! Bodies are scanned as a stream: a match split across chunks is held back until it is
//! complete, so at most one secret's length is delayed.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use memchr::memmem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Bytes of the secret an echo must hold to be masked (all of it when it is shorter).
pub const LEAD: usize = 12;

/// Secrets shorter than this are not masked: they cannot be told apart from data (masking a
/// three-letter "token" would break every answer that holds those letters). No Segment or
/// ConductorOne credential is anywhere near this short.
pub const MIN_SECRET: usize = 8;

/// What a masked region starts with; the rest of it is `*`.
const LABEL: &[u8] = b"[REDACTED]";

/// One spelling of the secret.
struct Pattern {
    bytes: Vec<u8>,
    /// How many leading bytes must match before the rest is followed as far as it goes.
    lead: usize,
    finder: memmem::Finder<'static>,
}

/// The spellings of one secret, and the scan.
pub struct Scrubber {
    patterns: Vec<Pattern>,
    /// The longest lead: a chunk's last `max_lead - 1` bytes may start a match.
    max_lead: usize,
    /// The secret's lead in lower case, for header names (which arrive lower-cased).
    lower_lead: memmem::Finder<'static>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber([redacted])")
    }
}

/// The encodings of `secret` an echo may use.
fn spellings(secret: &str) -> Vec<String> {
    let mut all = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_string();
    all.push(json.replace('/', "\\/"));
    all.push(json);
    all.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    all.sort();
    all.dedup();
    all
}

impl Scrubber {
    /// A scrubber for `secret`; `None` when it is shorter than [`MIN_SECRET`].
    pub fn new(secret: &str) -> Option<Scrubber> {
        if secret.len() < MIN_SECRET {
            return None;
        }
        let mut patterns = vec![];
        for spelling in spellings(secret) {
            let lead = spelling.len().min(LEAD);
            for (prefix, bytes) in [
                (0, spelling.as_bytes().to_vec()),
                (7, format!("Bearer {spelling}").into_bytes()),
            ] {
                let lead = prefix + lead;
                let finder = memmem::Finder::new(&bytes[..lead]).into_owned();
                patterns.push(Pattern {
                    bytes,
                    lead,
                    finder,
                });
            }
        }
        let max_lead = patterns.iter().map(|p| p.lead).max().unwrap_or(1);
        let lower = secret.to_ascii_lowercase();
        let lower_lead =
            memmem::Finder::new(&lower.as_bytes()[..lower.len().min(LEAD)]).into_owned();
        Some(Scrubber {
            patterns,
            max_lead,
            lower_lead,
        })
    }

    /// Whether a header name holds the secret (in any case).
    pub fn in_name(&self, name: &str) -> bool {
        self.lower_lead
            .find(name.to_ascii_lowercase().as_bytes())
            .is_some()
    }

    /// `bytes` with every match masked; `None` when there is none.
    pub fn scrub(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if !self.may_match(bytes) {
            return None;
        }
        let mut out = bytes.to_vec();
        self.scan(&mut out, true);
        (out != bytes).then_some(out)
    }

    /// A streaming scan for one body.
    pub fn stream(self: &Arc<Self>) -> ScrubStream {
        ScrubStream {
            scrubber: self.clone(),
            held: Vec::new(),
        }
    }

    /// Whether `bytes` holds a match, or ends with what may start one.
    fn may_match(&self, bytes: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.finder.find(bytes).is_some())
            || self.held_from(bytes, 0) < bytes.len()
    }

    /// Masks the matches in `buf` and returns how much of it is final; the rest may be the
    /// start of a match that the next chunk completes. With `end`, everything is final.
    fn scan(&self, buf: &mut [u8], end: bool) -> usize {
        let mut at = 0;
        loop {
            // The leftmost match; of two at the same place, the longer spelling.
            let mut best: Option<(usize, &Pattern)> = None;
            for p in &self.patterns {
                if let Some(i) = p.finder.find(&buf[at..]) {
                    let start = at + i;
                    let better = match best {
                        None => true,
                        Some((s, q)) => start < s || (start == s && p.bytes.len() > q.bytes.len()),
                    };
                    if better {
                        best = Some((start, p));
                    }
                }
            }
            let Some((start, p)) = best else { break };
            let mut len = p.lead;
            while len < p.bytes.len() && start + len < buf.len() && buf[start + len] == p.bytes[len]
            {
                len += 1;
            }
            if !end && len < p.bytes.len() && start + len == buf.len() {
                // The echo may go on in the next chunk: decide then.
                return start;
            }
            mask(&mut buf[start..start + len]);
            at = start + len;
        }
        if end {
            buf.len()
        } else {
            self.held_from(buf, at)
        }
    }

    /// Where the tail of `buf` (from `at` on) that could begin a match starts; `buf.len()`
    /// when none could.
    fn held_from(&self, buf: &[u8], at: usize) -> usize {
        let from = buf.len().saturating_sub(self.max_lead - 1).max(at);
        (from..buf.len())
            .find(|&s| {
                let rest = &buf[s..];
                self.patterns
                    .iter()
                    .any(|p| p.bytes[..p.lead].starts_with(rest))
            })
            .unwrap_or(buf.len())
    }
}

fn mask(region: &mut [u8]) {
    if region.len() >= LABEL.len() {
        region[..LABEL.len()].copy_from_slice(LABEL);
        region[LABEL.len()..].fill(b'*');
    } else {
        region.fill(b'*');
    }
}

/// The scan of one body, chunk by chunk.
pub struct ScrubStream {
    scrubber: Arc<Scrubber>,
    /// The end of the previous chunk, held back because it may begin a match.
    held: Vec<u8>,
}

impl ScrubStream {
    /// The bytes of `chunk` (after what was held back) that can be passed on now, masked.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.held.is_empty() && !self.scrubber.may_match(&chunk) {
            // The common case: nothing to mask, nothing to hold, no copy.
            return chunk;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(&chunk);
        let ready = self.scrubber.scan(&mut buf, false);
        self.held = buf.split_off(ready);
        Bytes::from(buf)
    }

    /// What was held back, at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        let mut buf = std::mem::take(&mut self.held);
        self.scrubber.scan(&mut buf, true);
        Bytes::from(buf)
    }

    /// Bytes held back so far (they count towards the body's length).
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// A response body with the secret masked (passed through as it is when there is no secret).
/// Trailers are dropped: the Segment API sends none, and they would be one more place for an
/// echo.
pub struct ScrubbedBody<B> {
    inner: B,
    stream: Option<ScrubStream>,
    done: bool,
}

impl<B> ScrubbedBody<B> {
    pub fn new(inner: B, scrubber: Option<&Arc<Scrubber>>) -> ScrubbedBody<B> {
        ScrubbedBody {
            inner,
            stream: scrubber.map(|s| s.stream()),
            done: false,
        }
    }

    fn held(&self) -> usize {
        self.stream.as_ref().map_or(0, ScrubStream::held)
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ScrubbedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Not data: trailers, dropped.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = match &mut this.stream {
                        Some(stream) => stream.push(data),
                        None => data,
                    };
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let rest = this
                        .stream
                        .as_mut()
                        .map(ScrubStream::finish)
                        .unwrap_or_default();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.held() == 0 && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Masking keeps lengths: what is left is what the inner body has, plus what is held.
        let inner = self.inner.size_hint();
        let held = self.held() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sgp_Zx81kQp/7uVb3nRt+Yw2LmA0cD9eFh4";

    fn scrub(text: &str) -> String {
        let s = Scrubber::new(TOKEN).unwrap();
        String::from_utf8(
            s.scrub(text.as_bytes())
                .unwrap_or_else(|| text.as_bytes().to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn the_token_and_the_header_value_are_masked_to_the_same_length() {
        let text =
            format!(r#"{{"message":"bad header authorization: Bearer {TOKEN}","t":"{TOKEN}"}}"#);
        let out = scrub(&text);
        assert_eq!(out.len(), text.len());
        assert!(!out.contains("sgp_Zx81"), "{out}");
        assert!(
            !out.contains("Bearer"),
            "the whole header value goes: {out}"
        );
        assert!(out.contains("[REDACTED]"), "{out}");
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON stays JSON");
    }

    #[test]
    fn encoded_and_truncated_echoes_are_masked() {
        let json = serde_json::to_string(TOKEN).unwrap();
        let slashed = TOKEN.replace('/', "\\/");
        let url: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
        let cut = &TOKEN[..20];
        for text in [json, slashed, url, format!("value {cut}… was refused")] {
            let out = scrub(&text);
            assert!(!out.contains(&TOKEN[..LEAD]), "{text} -> {out}");
        }
        // Too little of it to be the token: left alone.
        let short = format!("{}!", &TOKEN[..LEAD - 1]);
        assert_eq!(scrub(&short), short);
        assert_eq!(scrub("nothing here"), "nothing here");
    }

    #[test]
    fn a_match_split_across_chunks_is_masked_whatever_the_split() {
        let body = format!("{{\"echo\":\"Authorization: Bearer {TOKEN}\",\"again\":\"{TOKEN}\"}}");
        let scrubber = Arc::new(Scrubber::new(TOKEN).unwrap());
        let whole = scrubber.scrub(body.as_bytes()).unwrap();
        for size in 1..=body.len() {
            let mut stream = scrubber.stream();
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(size) {
                out.extend_from_slice(&stream.push(Bytes::copy_from_slice(chunk)));
            }
            out.extend_from_slice(&stream.finish());
            assert_eq!(out, whole, "chunks of {size}");
        }
    }

    #[test]
    fn chunks_without_a_match_pass_through_untouched() {
        let scrubber = Arc::new(Scrubber::new(TOKEN).unwrap());
        let mut stream = scrubber.stream();
        let chunk = Bytes::from_static(b"{\"data\":{\"users\":[]}}");
        let out = stream.push(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "no copy");
        // A chunk ending in what may start the token holds that back.
        let out = stream.push(Bytes::from(format!("x{}", &TOKEN[..5])));
        assert_eq!(&out[..], b"x");
        assert_eq!(stream.held(), 5);
        assert_eq!(&stream.finish()[..], &TOKEN.as_bytes()[..5]);
    }

    #[tokio::test]
    async fn a_body_is_scrubbed_and_its_trailers_dropped() {
        use http_body_util::BodyExt;
        let scrubber = Arc::new(Scrubber::new(TOKEN).unwrap());
        let (a, b) = TOKEN.split_at(7);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-echo", TOKEN.parse().unwrap());
        let frames = Frames(
            vec![
                Frame::data(Bytes::from(format!("echo: {a}"))),
                Frame::data(Bytes::from(format!("{b}!"))),
                Frame::trailers(trailers),
            ]
            .into(),
        );
        let body = ScrubbedBody::new(frames, Some(&scrubber));
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_none());
        let bytes = collected.to_bytes();
        assert_eq!(bytes.len(), "echo: ".len() + TOKEN.len() + 1);
        assert!(bytes.starts_with(b"echo: [REDACTED]*") && bytes.ends_with(b"*!"));
    }

    /// A body that hands out the given frames.
    struct Frames(std::collections::VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    #[test]
    fn short_tokens_are_masked_whole_and_tiny_ones_not_at_all() {
        let s = Scrubber::new("abcdefgh").unwrap();
        assert_eq!(s.scrub(b"xabcdefghx").unwrap(), b"x********x");
        assert!(Scrubber::new("abc").is_none());
        assert!(Scrubber::new("").is_none());
    }
}
