//! URL redaction, for logs and error messages.

use url::Url;

/// What a redacted secret is replaced with.
pub(crate) const MASK: &str = "***";

/// Returns `url` with its secrets masked, fit for a log line or an error.
///
/// * A user name and password (`https://user:pass@host/`) are replaced by
///   `***@` (so the reader still sees that credentials were configured).
/// * Every query value is replaced by `***` (`?sn=***&token=***`): a URL
///   cannot say which of its parameters is a key, so none is shown. The
///   parameter names stay, so the reader can still tell which URL it is.
/// * The fragment is dropped.
/// * Text that is not an absolute URL is not echoed at all (it might be a
///   secret pasted into the wrong flag): the result is `<invalid URL>`.
///
/// Scheme, host, port and path are kept, so the message still says which
/// endpoint failed. Other burnin adapters may reuse this for any URL with a
/// hierarchical scheme (`amqp://`, `amqps://` work the same way).
///
/// ```
/// use burnin_http::redact_url;
///
/// assert_eq!(
///     redact_url("https://bob:s3cret@mes.example/api/Q1?token=abc&x=1#frag"),
///     "https://***@mes.example/api/Q1?token=***&x=***"
/// );
/// assert_eq!(redact_url("http://mes/api/Q1"), "http://mes/api/Q1");
/// assert_eq!(redact_url("s3cret"), "<invalid URL>");
/// ```
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => redact(&u),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// A URL shown redacted ([`redact`]) when it is formatted, and not before.
pub(crate) struct Redacted<'a>(pub(crate) &'a Url);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(self.0))
    }
}

/// [`redact_url`] for an already parsed URL.
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let had_credentials = !u.username().is_empty() || u.password().is_some();
    if had_credentials {
        // Cannot fail for URLs that had credentials (they have a host).
        let _ = u.set_password(None);
        let _ = u.set_username(MASK);
    }
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if names.is_empty() {
            u.set_query(None);
        } else {
            let mut q = u.query_pairs_mut();
            q.clear();
            for name in &names {
                q.append_pair(name, MASK);
            }
        }
    }
    let s = u.to_string();
    // `append_pair` percent-encodes the mask; show it plainly.
    s.replace("%2A%2A%2A", MASK).replace("%2a%2a%2a", MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_userinfo_query_and_fragment() {
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:8080/x/y?token=t&sn=Q#f"),
            "http://***@127.0.0.1:8080/x/y?token=***&sn=***"
        );
        assert_eq!(redact_url("http://u@h/"), "http://***@h/");
        assert_eq!(redact_url("http://h/p?secret"), "http://h/p?secret=***");
        assert_eq!(redact_url("http://h/p?"), "http://h/p");
        assert_eq!(
            redact_url("amqps://user:pw@broker:5671/vhost"),
            "amqps://***@broker:5671/vhost"
        );
    }

    #[test]
    fn keeps_clean_urls_and_hides_garbage() {
        assert_eq!(
            redact_url("https://mes.example/api/A%2FB"),
            "https://mes.example/api/A%2FB"
        );
        assert_eq!(redact_url("not a url with token"), "<invalid URL>");
        assert_eq!(redact_url(""), "<invalid URL>");
    }
}
