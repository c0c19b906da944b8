//! What keeps web browsers from being used against the server: pages of
//! other sites may not send requests (`Origin` must match unless listed),
//! a server without credentials answers only to names that cannot be
//! rebound to it by a foreign DNS (`Host`), and CORS headers go only to
//! the origins an operator lists.

use axum::http::{HeaderMap, HeaderValue, Method, header};

/// The browser-facing settings of the `[http]` section.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Origins (`https://grafana.example.com`) whose pages may call the
    /// API and get CORS headers; `"*"` allows every origin.
    pub cors_allow_origins: Vec<String>,
    /// Host names a server without credentials answers to besides IP
    /// literals and `localhost`: exact names, `.example.com` for a domain
    /// and its subdomains, or `"*"`.
    pub allowed_hosts: Vec<String>,
}

/// The checks with the server's settings.
#[derive(Debug, Clone)]
pub struct Guard {
    settings: Settings,
    /// Whether the server runs without credentials (Host checks apply).
    open: bool,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; add these CORS headers to the answer.
    Pass(Option<Cors>),
    /// A CORS preflight: answer it at once with these headers.
    Preflight(Option<Cors>),
    /// Refuse with 403 and this reason.
    Refuse(String),
}

/// CORS answer headers for an allowed cross-origin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow_origin: HeaderValue,
}

impl Cors {
    /// Adds the CORS headers of an answer.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin.clone(),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-bce-request-id, x-request-id"),
        );
    }

    /// Adds the headers of a preflight answer.
    pub fn apply_preflight(&self, request: &HeaderMap, headers: &mut HeaderMap) {
        self.apply(headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PUT, POST, DELETE, OPTIONS"),
        );
        let asked = request
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
}

impl Guard {
    /// `open`: no credentials are configured.
    pub fn new(settings: Settings, open: bool) -> Self {
        Self { settings, open }
    }

    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::trim);
        if self.open
            && let Some(host) = host
            && !self.host_allowed(host)
        {
            return Verdict::Refuse(format!(
                "host name {host:?} is not served: without credentials this server answers IP \
                 addresses, localhost and the names in http.allowed_hosts only"
            ));
        }
        let cors = match headers.get(header::ORIGIN) {
            None => None,
            Some(origin) => {
                let Ok(text) = origin.to_str() else {
                    return Verdict::Refuse("the Origin header is not readable".into());
                };
                if self.origin_listed(text) {
                    let allow = if self.settings.cors_allow_origins.iter().any(|o| o == "*") {
                        HeaderValue::from_static("*")
                    } else {
                        origin.clone()
                    };
                    Some(Cors {
                        allow_origin: allow,
                    })
                } else if host.is_some_and(|h| same_origin(text, h)) {
                    None
                } else {
                    return Verdict::Refuse(format!(
                        "requests from pages of {text} are not allowed (http.cors_allow_origins)"
                    ));
                }
            }
        };
        if method == Method::OPTIONS {
            Verdict::Preflight(cors)
        } else {
            Verdict::Pass(cors)
        }
    }

    fn origin_listed(&self, origin: &str) -> bool {
        self.settings
            .cors_allow_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.settings.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix('.') {
                _ if allowed == "*" => true,
                Some(domain) => name == domain || name.ends_with(&allowed),
                None => name == allowed,
            }
        })
    }
}

/// A `Host` value (or an origin's authority) as name and port, IPv6
/// brackets removed.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (name, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, tail.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        // More colons: a bare IPv6 address without a port.
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (authority, None),
    }
}

fn host_name(host: &str) -> &str {
    split_authority(host).0
}

/// Whether an `Origin` (`scheme://host[:port]`) names the server the
/// request was sent to.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (o_name, o_port) = split_authority(authority);
    let (h_name, h_port) = split_authority(host);
    o_name.eq_ignore_ascii_case(h_name)
        && o_port.unwrap_or(default_port) == h_port.unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn guard(open: bool, origins: &[&str], hosts: &[&str]) -> Guard {
        Guard::new(
            Settings {
                cors_allow_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
                allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            },
            open,
        )
    }

    #[test]
    fn open_servers_answer_local_names_only() {
        let g = guard(true, &[], &[".tsdb.example.com", "metrics.internal"]);
        for host in [
            "127.0.0.1:4242",
            "[::1]:4242",
            "localhost:4242",
            "app.localhost",
            "db1.tsdb.example.com",
            "METRICS.internal:80",
        ] {
            let h = headers(&[("host", host)]);
            assert_eq!(g.check(&Method::GET, &h), Verdict::Pass(None), "{host}");
        }
        for host in [
            "evil.example",
            "tsdb.example.com.evil",
            "metrics.internal.evil",
        ] {
            let h = headers(&[("host", host)]);
            assert!(
                matches!(g.check(&Method::POST, &h), Verdict::Refuse(_)),
                "{host}"
            );
        }
        // With credentials, names are not checked: the keys protect.
        let closed = guard(false, &[], &[]);
        let h = headers(&[("host", "evil.example")]);
        assert_eq!(closed.check(&Method::GET, &h), Verdict::Pass(None));
    }

    #[test]
    fn foreign_pages_are_refused_unless_listed() {
        let g = guard(true, &["https://grafana.example.com"], &[]);
        let same = headers(&[
            ("host", "127.0.0.1:4242"),
            ("origin", "http://127.0.0.1:4242"),
        ]);
        assert_eq!(g.check(&Method::POST, &same), Verdict::Pass(None));
        let default_port = headers(&[("host", "localhost"), ("origin", "http://localhost:80")]);
        assert_eq!(g.check(&Method::POST, &default_port), Verdict::Pass(None));
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            let h = headers(&[("host", "127.0.0.1:4242"), ("origin", origin)]);
            assert!(
                matches!(g.check(&Method::POST, &h), Verdict::Refuse(_)),
                "{origin}"
            );
        }
        let listed = headers(&[
            ("host", "127.0.0.1:4242"),
            ("origin", "https://grafana.example.com"),
        ]);
        let cors = Some(Cors {
            allow_origin: HeaderValue::from_static("https://grafana.example.com"),
        });
        assert_eq!(g.check(&Method::GET, &listed), Verdict::Pass(cors.clone()));
        assert_eq!(g.check(&Method::OPTIONS, &listed), Verdict::Preflight(cors));
        let any = guard(true, &["*"], &[]);
        let h = headers(&[("host", "127.0.0.1"), ("origin", "http://a.example")]);
        assert_eq!(
            any.check(&Method::GET, &h),
            Verdict::Pass(Some(Cors {
                allow_origin: HeaderValue::from_static("*")
            }))
        );
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.b:80"), "a.b");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("::1"), "::1");
        assert!(same_origin("https://a.b", "a.b:443"));
        assert!(!same_origin("https://a.b", "a.b:80"));
        assert!(same_origin("http://[::1]:4242", "[::1]:4242"));
    }
}
