//! No scans from another web site: the checks every request passes before
//! the API sees it ([`Site`], applied by [`crate::router`]).
//!
//! A web page the operator opens — on the machine that also shows the live
//! page — can make the browser send requests to `http://127.0.0.1:8080`.
//! The browser sends some of them without asking the server first (no
//! CORS preflight): a `POST` whose body is `text/plain`, form-encoded or
//! multipart, from `fetch` or from a plain HTML form. And a page whose
//! domain the attacker re-points at 127.0.0.1 (DNS rebinding) talks to the
//! edge as if it were its own site. Three checks close both ways:
//!
//! | check | refused with |
//! | --- | --- |
//! | a `POST` must say `Content-Type: application/json` (parameters such as `; charset=utf-8` are fine); a browser only sends that cross-site after a preflight, which the edge never answers with CORS headers | 415 |
//! | a request with an `Origin` header must come from the edge's own origin: `http://` or `https://` followed by the `Host` the request was sent to (which the next check restricts), `--advertise-url`'s origin, or an origin given with `--allow-origin` | 403 |
//! | without an API token, the `Host` must name this edge: an IP the edge listens on, `localhost`, a loopback address (`127.0.0.1`, `[::1]`, any port), or `--advertise-url`'s host | 421 Misdirected Request |
//!
//! **Why 421 for a foreign `Host`** and not 403: the request reached a
//! server that does not serve that name, which is what 421 says (RFC 9110
//! §15.5.20); a client that typed a name the edge does not know learns to
//! use the address instead, and the answer is told apart from the 403 of a
//! foreign `Origin`. With a token the `Host` is not checked: a rebound page
//! does not know the token (it is never in a cookie), and an edge behind a
//! proxy or reached by a name of the network must keep working.
//!
//! A request without an `Origin` (curl, scripts, same-origin `GET`s) passes
//! the origin check; one without a `Host` (HTTP/1.0, in-process tests)
//! passes the host check — a browser always sends both. Errors are
//! `{"error": "..."}` like every other answer of the API.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What the checks compare against: the edge's names and the origins let in.
#[derive(Debug, Default)]
pub struct Site {
    /// Origins let in besides the edge's own (`--allow-origin`), normalised.
    allowed: Vec<String>,
    /// `--advertise-url`'s origin and host, when it is a URL.
    advertised: Option<(String, String)>,
    /// Whether a token is needed (then the `Host` is not checked).
    token: bool,
    /// The address served on, once [`crate::serve`] knows it.
    listen: OnceLock<SocketAddr>,
}

impl Site {
    /// The checks for an edge advertised as `advertise` (a URL such as
    /// `http://10.0.0.5:8080`, or a name that is not one), letting in
    /// `allowed` origins ([`parse_origin`] each first), with or without an
    /// API `token`.
    pub fn new(advertise: &str, allowed: Vec<String>, token: bool) -> Site {
        let advertised = parse_origin(advertise)
            .ok()
            .or_else(|| {
                // A URL with a path (`http://edge:8080/`) still names its origin.
                let uri: Uri = advertise.parse().ok()?;
                let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
                Some(format!("{scheme}://{authority}").to_ascii_lowercase())
            })
            .and_then(|origin| {
                let uri: Uri = origin.parse().ok()?;
                let host = uri.host()?.to_ascii_lowercase();
                Some((origin, host))
            });
        Site {
            allowed,
            advertised,
            token,
            listen: OnceLock::new(),
        }
    }

    /// Records the address the edge serves on (the first call counts).
    pub fn listening_on(&self, addr: SocketAddr) {
        let _ = self.listen.set(addr);
    }

    /// Whether `host` (a `Host` header value, port included or not) names
    /// this edge.
    fn host_is_ours(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        let name = authority.host().to_ascii_lowercase();
        if name == "localhost" {
            return true;
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>()
            && (ip.is_loopback() || self.listen.get().is_some_and(|l| l.ip() == ip))
        {
            return true;
        }
        self.advertised.as_ref().is_some_and(|(_, h)| *h == name)
    }

    /// Whether `origin` is the edge's own for a request sent to `host`, or
    /// one let in.
    fn origin_is_ours(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            if origin == format!("http://{host}") || origin == format!("https://{host}") {
                return true;
            }
        }
        self.advertised.as_ref().is_some_and(|(o, _)| *o == origin)
            || self.allowed.contains(&origin)
    }
}

/// `origin` (`--allow-origin`) checked and normalised: `scheme://host[:port]`
/// in lower case, scheme `http` or `https`, no path, query or user; the
/// error says what is wrong and gives an example.
pub fn parse_origin(origin: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "{origin:?} is not an origin ({why}); give scheme://host[:port], e.g. http://10.0.0.5:8080"
        )
    };
    let uri: Uri = origin.parse().map_err(|_| bad("it does not parse"))?;
    let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("the scheme must be http or https"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("it has a user"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || origin.ends_with('/') {
        return Err(bad("an origin has no path, query or trailing slash"));
    }
    Ok(format!("{scheme}://{authority}").to_ascii_lowercase())
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The `Host` the request was sent to: the header, or the URI's authority
/// (HTTP/2).
fn host_of<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(axum::http::uri::Authority::as_str))
}

/// The middleware: the three checks of the [module docs](self), in the
/// order host, origin, content type.
pub(crate) async fn check(State(site): State<Arc<Site>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = host_of(headers, request.uri());
    if !site.token
        && let Some(host) = host
        && !site.host_is_ours(host)
    {
        let host = host.chars().take(100).collect::<String>();
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} does not name this edge; without an API token it answers only \
                 to the address it listens on, localhost and 127.0.0.1 (a page of another \
                 site could reach it by re-pointing its name); use one of those, or set \
                 --advertise-url to the URL clients use"
            ),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("");
        if !site.origin_is_ours(text, host) {
            let shown = text.chars().take(100).collect::<String>();
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "requests from the web page at origin {shown:?} are refused: another web \
                     site must not start or read scans; open the edge's own page, or let that \
                     origin in with --allow-origin {shown}"
                ),
            );
        }
    }
    if request.method() == Method::POST {
        let given = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let json = given
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.essence_str() == "application/json");
        if !json {
            let shown = given.map_or_else(
                || "none".to_owned(),
                |g| format!("{:?}", g.chars().take(100).collect::<String>()),
            );
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "a POST body must be sent with Content-Type: application/json (given: \
                     {shown}); e.g. curl -H 'Content-Type: application/json' -d '{{...}}'"
                ),
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalised() {
        assert_eq!(
            parse_origin("HTTP://Edge.Example:8080").unwrap(),
            "http://edge.example:8080"
        );
        for bad in [
            "edge.example",
            "ftp://edge",
            "http://edge/",
            "http://edge/x",
            "http://u@edge",
            "",
        ] {
            let e = parse_origin(bad).unwrap_err();
            assert!(e.contains("scheme://host[:port]"), "{bad}: {e}");
        }
    }

    #[test]
    fn hosts_of_this_edge_and_none_other() {
        let site = Site::new("http://line-3.example:8080/", Vec::new(), false);
        site.listening_on("127.0.0.2:8080".parse().unwrap());
        for ours in [
            "localhost",
            "LOCALHOST:9",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
            "line-3.example:8080",
        ] {
            assert!(site.host_is_ours(ours), "{ours}");
        }
        for other in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.5:8080",
            "localhost.evil.example",
            "",
            "a b",
        ] {
            assert!(!site.host_is_ours(other), "{other}");
        }
    }

    #[test]
    fn origins_of_this_edge_and_those_let_in() {
        let site = Site::new(
            "http://line-3.example:8080",
            vec!["https://mes.example".into()],
            true,
        );
        assert!(site.origin_is_ours("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(site.origin_is_ours("https://proxy.example", Some("proxy.example")));
        assert!(site.origin_is_ours("http://line-3.example:8080", None));
        assert!(site.origin_is_ours("https://mes.example", Some("127.0.0.1:8080")));
        assert!(!site.origin_is_ours("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!site.origin_is_ours("null", Some("127.0.0.1:8080")));
        assert!(!site.origin_is_ours("http://127.0.0.1:8080", None));
    }
}
