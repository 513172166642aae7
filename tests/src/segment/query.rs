//! Query-string parsing: pagination (bracket, percent-encoded bracket, dot and JSON forms),
//! array parameters (`emails`, `userIds`) in every encoding working clients use, and
//! plain single-valued parameters. Also builds the `data.pagination` output object.

use super::response::ApiError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::{Map, Value, json};

/// Page size when the request carries no pagination at all.
pub const DEFAULT_COUNT: usize = 200;
/// Largest accepted `pagination.count` (1000 since 2024-03).
pub const MAX_COUNT: usize = 1000;

/// Decoded `(key, value)` pairs of a raw query string (`%5B` → `[`, `+` → space).
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The first value of a plain parameter.
pub fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A page request: zero-based offset and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub count: usize,
}

fn count_error(message: impl Into<String>) -> ApiError {
    ApiError::validation(message, Some("pagination.count"))
}

fn cursor_error(message: impl Into<String>) -> ApiError {
    ApiError::validation(message, Some("pagination.cursor"))
}

/// Parses `pagination[count]`, `pagination[cursor]` (raw or percent-encoded brackets),
/// `pagination.count`, `pagination.cursor` and the JSON-object form
/// `pagination={"count":10,"cursor":"…"}`. No pagination at all → first page of 200.
/// A cursor without a count is rejected (count is required inside the object).
pub fn page(pairs: &[(String, String)]) -> Result<Page, ApiError> {
    let mut count: Option<String> = None;
    let mut cursor: Option<String> = None;
    let mut seen = false;
    for (k, v) in pairs {
        match k.as_str() {
            "pagination[count]" | "pagination.count" => {
                seen = true;
                count = Some(v.clone());
            }
            "pagination[cursor]" | "pagination.cursor" => {
                seen = true;
                cursor = Some(v.clone());
            }
            "pagination" => {
                seen = true;
                let obj: Map<String, Value> = serde_json::from_str(v).map_err(|_| {
                    ApiError::validation(
                        "pagination must be an object with count and cursor",
                        Some("pagination"),
                    )
                })?;
                if let Some(c) = obj.get("count") {
                    count = Some(match c {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
                if let Some(c) = obj.get("cursor") {
                    match c {
                        Value::String(s) => cursor = Some(s.clone()),
                        Value::Null => {}
                        _ => return Err(cursor_error("pagination.cursor must be a string")),
                    }
                }
            }
            _ => {}
        }
    }
    if !seen {
        return Ok(Page {
            offset: 0,
            count: DEFAULT_COUNT,
        });
    }
    let Some(count) = count else {
        return Err(count_error("pagination.count is required"));
    };
    let count = parse_count(&count)?;
    let offset = match cursor.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| {
            cursor_error(format!("pagination.cursor \"{c}\" is not a valid cursor"))
        })?,
    };
    Ok(Page { offset, count })
}

fn parse_count(raw: &str) -> Result<usize, ApiError> {
    let t = raw.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(count_error(format!(
            "pagination.count must be an integer between 1 and {MAX_COUNT}, got \"{raw}\""
        )));
    }
    match t.parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(count_error(format!(
            "pagination.count must be between 1 and {MAX_COUNT}, got {t}"
        ))),
    }
}

/// Cursor = base64 of the decimal offset (`"MA=="` = 0).
pub fn encode_cursor(offset: usize) -> String {
    STANDARD.encode(offset.to_string())
}

/// Inverse of [`encode_cursor`] (padding optional). `None` when not a valid cursor.
pub fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = STANDARD
        .decode(cursor)
        .or_else(|_| STANDARD_NO_PAD.decode(cursor))
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The slice of `items` for `page` and the `data.pagination` object:
/// `current` always; `next` only when more items follow; `previous` only after the first
/// page; `totalEntries` = total.
pub fn paginate<T>(items: &[T], page: Page) -> (&[T], Value) {
    let total = items.len();
    let start = page.offset.min(total);
    let end = page.offset.saturating_add(page.count).min(total);
    let mut out = Map::new();
    out.insert("current".into(), json!(encode_cursor(page.offset)));
    if page.offset.saturating_add(page.count) < total {
        out.insert(
            "next".into(),
            json!(encode_cursor(page.offset + page.count)),
        );
    }
    if page.offset > 0 {
        out.insert(
            "previous".into(),
            json!(encode_cursor(page.offset.saturating_sub(page.count))),
        );
    }
    out.insert("totalEntries".into(), json!(total));
    (&items[start..end], Value::Object(out))
}

/// Values of an array parameter `name`, in the encodings clients send:
/// `name.0=a&name.1=b` (Go SDK), `name[0]=a` / `name[]=a` (raw or percent-encoded brackets,
/// TypeScript), repeated `name=a&name=b` (Python), a JSON array string `name=["a","b"]`
/// (baton-segment), and comma-separated `name=a,b` (OpenAPI `explode=false`).
/// Indexed forms are ordered by index. Missing, empty, or an empty element → 422 with
/// `field` = `name`.
pub fn array(pairs: &[(String, String)], name: &str) -> Result<Vec<String>, ApiError> {
    let err = |msg: String| ApiError::validation(msg, Some(name));
    let mut plain: Vec<String> = Vec::new();
    let mut indexed: Vec<(usize, usize, String)> = Vec::new();
    for (pos, (k, v)) in pairs.iter().enumerate() {
        let Some(rest) = k.strip_prefix(name) else {
            continue;
        };
        if rest.is_empty() {
            let t = v.trim();
            if t.starts_with('[') {
                let list: Vec<Value> = serde_json::from_str(t)
                    .map_err(|_| err(format!("{name} is not a valid JSON array")))?;
                for item in list {
                    match item {
                        Value::String(s) => plain.push(s),
                        _ => return Err(err(format!("{name} must be an array of strings"))),
                    }
                }
            } else {
                plain.extend(v.split(',').map(|s| s.trim().to_string()));
            }
            continue;
        }
        let index = if let Some(i) = rest.strip_prefix('.') {
            i
        } else if let Some(i) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            i
        } else {
            continue; // another parameter whose name merely starts with `name`
        };
        let idx = if index.is_empty() {
            usize::MAX // `name[]=a`: keep appearance order after indexed ones
        } else {
            index
                .parse::<usize>()
                .map_err(|_| err(format!("{name} has an invalid index \"{index}\"")))?
        };
        indexed.push((idx, pos, v.clone()));
    }
    indexed.sort_by_key(|(idx, pos, _)| (*idx, *pos));
    let mut values = plain;
    values.extend(indexed.into_iter().map(|(_, _, v)| v));
    if values.is_empty() {
        return Err(err(format!(
            "{name} is required and must be a non-empty array"
        )));
    }
    if values.iter().any(|v| v.trim().is_empty()) {
        return Err(err(format!("{name} must not contain empty values")));
    }
    Ok(values.into_iter().map(|v| v.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Vec<(String, String)> {
        pairs(Some(q))
    }

    #[test]
    fn cursor_roundtrip() {
        assert_eq!(encode_cursor(0), "MA==");
        assert_eq!(encode_cursor(2), "Mg==");
        assert_eq!(encode_cursor(3), "Mw==");
        assert_eq!(decode_cursor("MA=="), Some(0));
        assert_eq!(decode_cursor("MTAw"), Some(100));
        assert_eq!(decode_cursor("Mw"), Some(3));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor("YWJj"), None); // "abc"
    }

    #[test]
    fn page_forms() {
        assert_eq!(
            page(&p("")).unwrap(),
            Page {
                offset: 0,
                count: 200
            }
        );
        assert_eq!(
            page(&p("pagination[count]=3")).unwrap(),
            Page {
                offset: 0,
                count: 3
            }
        );
        assert_eq!(
            page(&p(
                "pagination%5Bcount%5D=3&pagination%5Bcursor%5D=Mw%3D%3D"
            ))
            .unwrap(),
            Page {
                offset: 3,
                count: 3
            }
        );
        assert_eq!(
            page(&p("pagination.count=5&pagination.cursor=MTA=")).unwrap(),
            Page {
                offset: 10,
                count: 5
            }
        );
        assert_eq!(
            page(&p("pagination=%7B%22count%22%3A10%7D")).unwrap(),
            Page {
                offset: 0,
                count: 10
            }
        );
        assert_eq!(page(&p("pagination[count]=1000")).unwrap().count, 1000);
        assert_eq!(
            page(&p("pagination[count]=3&pagination[cursor]="))
                .unwrap()
                .offset,
            0
        );
        assert_eq!(page(&p("other=1")).unwrap().count, 200);
    }

    #[test]
    fn page_errors() {
        for q in [
            "pagination[count]=0",
            "pagination[count]=1001",
            "pagination.count=abc",
            "pagination.count=-1",
            "pagination.count=2.5",
            "pagination[cursor]=MA==",
        ] {
            let e = page(&p(q)).unwrap_err();
            assert_eq!(e.status, 422, "{q}");
            assert_eq!(e.field.as_deref(), Some("pagination.count"), "{q}");
        }
        let e = page(&p("pagination[count]=2&pagination[cursor]=%%%")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("pagination.cursor"));
    }

    #[test]
    fn paginate_windows() {
        let items: Vec<u32> = (0..8).collect();
        let (s, meta) = paginate(
            &items,
            Page {
                offset: 0,
                count: 3,
            },
        );
        assert_eq!(s, [0, 1, 2]);
        assert_eq!(
            meta,
            json!({"current":"MA==","next":"Mw==","totalEntries":8})
        );
        let (s, meta) = paginate(
            &items,
            Page {
                offset: 6,
                count: 3,
            },
        );
        assert_eq!(s, [6, 7]);
        assert_eq!(
            meta,
            json!({"current":"Ng==","previous":"Mw==","totalEntries":8})
        );
        let (s, meta) = paginate(
            &items,
            Page {
                offset: 20,
                count: 3,
            },
        );
        assert!(s.is_empty());
        assert!(meta.get("next").is_none());
        let (s, meta) = paginate(
            &items[..0],
            Page {
                offset: 0,
                count: 3,
            },
        );
        assert!(s.is_empty());
        assert_eq!(meta, json!({"current":"MA==","totalEntries":0}));
    }

    #[test]
    fn array_encodings() {
        let want = vec!["a@x.test".to_string(), "b@x.test".to_string()];
        for q in [
            "emails.0=a@x.test&emails.1=b@x.test",
            "emails.1=b@x.test&emails.0=a@x.test",
            "emails[0]=a@x.test&emails[1]=b@x.test",
            "emails%5B0%5D=a%40x.test&emails%5B1%5D=b%40x.test",
            "emails=a@x.test&emails=b@x.test",
            "emails=%5B%22a%40x.test%22%2C%22b%40x.test%22%5D",
            r#"emails=["a@x.test","b@x.test"]"#,
            "emails[]=a@x.test&emails[]=b@x.test",
            "emails=a@x.test,b@x.test",
            "pagination[count]=200&emails.0=a@x.test&emails.1=b@x.test",
        ] {
            assert_eq!(array(&p(q), "emails").unwrap(), want, "{q}");
        }
        assert_eq!(array(&p("userIds.0=u1"), "userIds").unwrap(), ["u1"]);
    }

    #[test]
    fn array_errors() {
        for q in [
            "",
            "emails=",
            "emails=[]",
            "emails.0=",
            "emailsX=a",
            "emails=[1]",
            "emails=[oops",
            "other=a",
        ] {
            let e = array(&p(q), "emails").unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (422, Some("emails")), "{q}");
        }
    }
}
