//! Origins (scheme, host, port) and the allowlist check: the only destinations a component may
//! reach. Matching is exact on the lower-cased host string: `localhost` is not `127.0.0.1`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `https://api.segmentapis.com`, `http://127.0.0.1:8080/some/path` (the path is
    /// ignored). Only http and https; no user info.
    pub fn parse(url: &str) -> Result<Origin, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        Origin::of_uri(&uri)
            .ok_or_else(|| format!("{url:?} must be an http(s) URL with a host and no user info"))
    }

    /// The origin a request goes to, or `None` when it has no usable one (no scheme, no host,
    /// user info in the authority, another scheme).
    pub fn of_uri(uri: &http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host,
            port: authority.port_u16().unwrap_or(default_port),
        })
    }
}

impl Origin {
    /// `Ok` when a bearer token may be sent to this origin: over https, or over plain http only
    /// to this machine (the fakes, a local proxy). Anything else would put the token on the
    /// network in clear text.
    pub fn check_can_carry_token(&self) -> Result<(), String> {
        if self.scheme == "https" || self.is_loopback() {
            return Ok(());
        }
        Err(format!(
            "{self} is plain http to another machine: the Segment token would cross the network \
             unencrypted; use https (plain http is allowed only to 127.0.0.1, ::1 or localhost)"
        ))
    }

    fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl Origin {
    /// Parses a URL whose origin will carry the token (see [`Origin::check_can_carry_token`]).
    pub fn for_token(url: &str) -> Result<Origin, String> {
        let origin = Origin::parse(url)?;
        origin.check_can_carry_token()?;
        Ok(origin)
    }

    /// The origin as a base URL, without its scheme's default port: `https://api.segmentapis.com`.
    pub fn base_url(&self) -> String {
        let default = matches!(
            (self.scheme.as_str(), self.port),
            ("https", 443) | ("http", 80)
        );
        if default {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_case() {
        let o = Origin::parse("https://API.segmentapis.com/").unwrap();
        assert_eq!(
            o,
            Origin {
                scheme: "https".into(),
                host: "api.segmentapis.com".into(),
                port: 443
            }
        );
        assert_eq!(Origin::parse("http://127.0.0.1:8080/x").unwrap().port, 8080);
        assert_eq!(
            Origin::parse("https://api.segmentapis.com.").unwrap().host,
            "api.segmentapis.com"
        );
    }

    #[test]
    fn tokens_go_over_https_or_to_this_machine_only() {
        let ok = |u: &str| Origin::parse(u).unwrap().check_can_carry_token();
        assert!(ok("https://api.segmentapis.com").is_ok());
        assert!(ok("https://10.0.0.5:8443").is_ok());
        for local in [
            "http://127.0.0.1:9000",
            "http://127.1.2.3",
            "http://[::1]:80",
            "http://localhost:8080",
        ] {
            assert!(ok(local).is_ok(), "{local}");
        }
        for remote in [
            "http://api.segmentapis.com",
            "http://10.0.0.5",
            "http://[2001:db8::1]",
            "http://localhost.evil.test",
        ] {
            let err = ok(remote).unwrap_err();
            assert!(err.contains("unencrypted"), "{remote}: {err}");
        }
    }

    #[test]
    fn the_base_url_leaves_out_default_ports_only() {
        let url = |u: &str| Origin::parse(u).unwrap().base_url();
        assert_eq!(
            url("https://API.segmentapis.com:443/x"),
            "https://api.segmentapis.com"
        );
        assert_eq!(url("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(
            url("https://eu1.api.segmentapis.com:8443"),
            "https://eu1.api.segmentapis.com:8443"
        );
    }

    #[test]
    fn refuses_what_cannot_be_matched_safely() {
        assert!(Origin::parse("ftp://x.test").is_err());
        assert!(Origin::parse("/relative").is_err());
        assert!(Origin::parse("https://user:pw@api.segmentapis.com").is_err());
    }

    #[test]
    fn localhost_is_not_the_loopback_address() {
        assert_ne!(
            Origin::parse("http://localhost:80").unwrap(),
            Origin::parse("http://127.0.0.1:80").unwrap()
        );
    }
}
