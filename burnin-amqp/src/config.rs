//! Connection settings, and URL redaction.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use lapin::uri::AMQPUri;

use crate::AmqpError;

/// The type of the reply queue (`--reply-queue-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueueType {
    /// A classic queue (one node).
    #[default]
    Classic,
    /// A quorum queue: replicated, survives the loss of a cluster node.
    Quorum,
}

impl QueueType {
    /// `classic` or `quorum`, the `x-queue-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueType {
    type Err = AmqpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(AmqpError::InvalidConfig {
                setting: "--reply-queue-type",
                reason: format!("{other:?} is neither \"classic\" nor \"quorum\""),
            }),
        }
    }
}

/// How to reach the broker and what to declare there.
///
/// Build it with [`AmqpConfig::new`] and adjust the public fields; every
/// default is SPEC §4/§7's. The `Debug` output redacts the URL's password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmqpConfig {
    /// `amqp://USER:PASSWORD@HOST:PORT/VHOST` or `amqps://…` (`--amqp-url`):
    /// the broker, or one node of a cluster. A `heartbeat` or `frame_max`
    /// query parameter in the URL wins over the fields below.
    pub url: String,
    /// The other nodes of the same cluster (`--amqp-url` given again, or a
    /// comma list in `BURNIN_AMQP_URL`; SPEC §10.3). Every connection
    /// attempt tries [`url`](Self::url) and these in a fresh random order,
    /// so a fleet spreads over the nodes and a lost node is failed over
    /// from; between rounds over all of them the wait grows as
    /// [`backoff`](Self::backoff) says. Empty for a single broker.
    pub other_urls: Vec<String>,
    /// The command exchange (`--exchange`, default `devicescan`).
    pub exchange: String,
    /// The reply queue (`--reply-queue`, default `hwinfo_queue`). The
    /// rejected-replies queue is this name plus `.rejected`.
    pub reply_queue: String,
    /// The reply queue's type (`--reply-queue-type`, default classic); the
    /// rejected queue gets the same type. Edge only.
    pub reply_queue_type: QueueType,
    /// How many unacknowledged replies the broker may hand the edge at once
    /// (`--prefetch`, default 256).
    pub prefetch: u16,
    /// A PEM file with the CA that signed the broker's certificate
    /// (`--amqp-ca-file`), added to the system's roots for `amqps://`.
    pub ca_file: Option<PathBuf>,
    /// Heartbeat interval asked of the broker (default 20 s); a connection
    /// silent for two intervals is treated as lost. Never zero.
    pub heartbeat: Duration,
    /// Largest AMQP frame asked of the broker (default 8 KiB). lapin keeps
    /// 32 frames of read and of write buffer per connection, so this sets
    /// its memory use (8 KiB: 512 KiB; the broker's 128 KiB would be 8 MiB).
    pub frame_max: u32,
    /// How long one connection attempt may take (default 10 s).
    pub connect_timeout: Duration,
    /// How long to wait for the broker to confirm a publish (default 10 s).
    pub confirm_timeout: Duration,
    /// First reconnect / retry delay (default 250 ms); doubles per attempt,
    /// with jitter, up to [`backoff_cap`](Self::backoff_cap).
    pub backoff_base: Duration,
    /// Longest reconnect / retry delay (default 30 s).
    pub backoff_cap: Duration,
    /// Shown in the broker's management UI and `rabbitmqctl
    /// list_connections name`: `burnin-agent SN` / `burnin-edge HOST`
    /// (SPEC §10.3).
    pub connection_name: Option<String>,
    /// Edge only: how often a scan command is published again while its
    /// window is open. `None` (the default for one broker) announces it
    /// once, and again only after the edge itself reconnected; 5 s when
    /// [`cluster`](Self::cluster) is given several nodes. A device whose
    /// node died reconnects to another node with a fresh queue that never
    /// saw the command; the next announcement reaches it, and agents answer
    /// each operation once. Any device that connects while the window is
    /// open answers too.
    pub reannounce: Option<Duration>,
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("urls", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("reply_queue", &self.reply_queue)
            .field("reply_queue_type", &self.reply_queue_type)
            .field("prefetch", &self.prefetch)
            .field("ca_file", &self.ca_file)
            .field("heartbeat", &self.heartbeat)
            .field("frame_max", &self.frame_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("connection_name", &self.connection_name)
            .field("reannounce", &self.reannounce)
            .finish()
    }
}

/// Default command exchange.
pub const DEFAULT_EXCHANGE: &str = "devicescan";
/// Default reply queue.
pub const DEFAULT_REPLY_QUEUE: &str = "hwinfo_queue";
/// How often an edge on a cluster announces an open command again.
pub const DEFAULT_REANNOUNCE: Duration = Duration::from_secs(5);

/// The queue argument that makes a quorum reply queue deliver to one
/// consumer only (`x-single-active-consumer: true`; see [`crate::edge`]).
pub const SINGLE_ACTIVE_CONSUMER: &str = "x-single-active-consumer";

/// Default edge prefetch.
pub const DEFAULT_PREFETCH: u16 = 256;

impl AmqpConfig {
    /// The defaults, for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: url.into(),
            other_urls: Vec::new(),
            exchange: DEFAULT_EXCHANGE.into(),
            reply_queue: DEFAULT_REPLY_QUEUE.into(),
            reply_queue_type: QueueType::Classic,
            prefetch: DEFAULT_PREFETCH,
            ca_file: None,
            heartbeat: Duration::from_secs(20),
            frame_max: 8192,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(30),
            connection_name: None,
            reannounce: None,
        }
    }

    /// The defaults, for the nodes of one cluster at `urls` (the first
    /// becomes [`url`](Self::url), the rest [`other_urls`](Self::other_urls));
    /// with more than one node, [`reannounce`](Self::reannounce) is
    /// [`DEFAULT_REANNOUNCE`].
    /// Empty entries are skipped; no entry at all leaves `url` empty, which
    /// connecting refuses with [`AmqpError::InvalidUrl`].
    ///
    /// ```
    /// let c = burnin_amqp::AmqpConfig::cluster([
    ///     "amqp://u:p@mq1:5672/burnin", "amqp://u:p@mq2:5672/burnin",
    /// ]);
    /// assert_eq!(c.urls().count(), 2);
    /// ```
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut urls = urls
            .into_iter()
            .map(Into::into)
            .filter(|u: &String| !u.trim().is_empty());
        let mut c = AmqpConfig::new(urls.next().unwrap_or_default());
        c.other_urls = urls.collect();
        if !c.other_urls.is_empty() {
            c.reannounce = Some(DEFAULT_REANNOUNCE);
        }
        c
    }

    /// Every node's URL: [`url`](Self::url), then [`other_urls`](Self::other_urls).
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.other_urls.iter().map(String::as_str))
    }

    /// The queue rejected replies go to: `<reply_queue>.rejected`.
    pub fn rejected_queue(&self) -> String {
        format!("{}.rejected", self.reply_queue)
    }

    /// The URL (every node's, comma-separated) with passwords replaced by
    /// `***`, for logs.
    pub fn redacted_url(&self) -> String {
        self.urls().map(redact_url).collect::<Vec<_>>().join(", ")
    }

    /// Checks everything that can be checked without the broker: the URL
    /// (it parses, is `amqp://` or `amqps://`, names a host, no
    /// `heartbeat=0`), the names and numbers, and the CA file (readable,
    /// holds a PEM certificate). Both binaries call it before they touch
    /// the network, and every `connect` calls it again, so this is the one
    /// place these rules live. Errors name the flag (`--amqp-url`,
    /// `--amqp-ca-file`, …) and never show the password.
    pub fn validate(&self) -> Result<(), AmqpError> {
        self.uris()?;
        self.ca_pem()?;
        name_ok("--exchange", &self.exchange)?;
        name_ok("--reply-queue", &self.reply_queue)?;
        name_ok("--reply-queue", &self.rejected_queue())?;
        if self.reply_queue.starts_with("amq.") {
            return Err(AmqpError::InvalidConfig {
                setting: "--reply-queue",
                reason: format!(
                    "{:?} starts with \"amq.\", which RabbitMQ reserves",
                    self.reply_queue
                ),
            });
        }
        if self.prefetch == 0 {
            return Err(AmqpError::InvalidConfig {
                setting: "--prefetch",
                reason: "0 would mean no limit; give 1 or more".into(),
            });
        }
        if self.heartbeat < Duration::from_secs(1) || self.heartbeat > Duration::from_secs(600) {
            return Err(AmqpError::InvalidConfig {
                setting: "heartbeat",
                reason: format!(
                    "{:?} is outside 1 s ..= 600 s (0 would disable dead-connection detection)",
                    self.heartbeat
                ),
            });
        }
        if self.frame_max < 4096 {
            return Err(AmqpError::InvalidConfig {
                setting: "frame_max",
                reason: format!("{} is below AMQP's minimum of 4096", self.frame_max),
            });
        }
        if self
            .reannounce
            .is_some_and(|d| d < Duration::from_millis(100))
        {
            return Err(AmqpError::InvalidConfig {
                setting: "reannounce",
                reason: "below 100 ms would flood the broker; use None to announce once".into(),
            });
        }
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return Err(AmqpError::InvalidConfig {
                setting: "backoff",
                reason: "the base must be above zero and not above the cap".into(),
            });
        }
        Ok(())
    }

    /// The parsed URL of the first node, with the heartbeat and frame size
    /// filled in.
    #[cfg(test)]
    pub(crate) fn uri(&self) -> Result<AMQPUri, AmqpError> {
        self.uri_of(&self.url)
    }

    /// Every node's URL, parsed as [`uri`](Self::uri) does, with its
    /// redacted form for logs.
    pub(crate) fn uris(&self) -> Result<Vec<(String, AMQPUri)>, AmqpError> {
        self.urls()
            .map(|raw| Ok((redact_url(raw), self.uri_of(raw)?)))
            .collect()
    }

    /// One node's URL, parsed and checked; errors show it redacted.
    fn uri_of(&self, raw: &str) -> Result<AMQPUri, AmqpError> {
        let redacted = redact_url(raw);
        let invalid = |reason: String| AmqpError::InvalidUrl {
            url: redacted.clone(),
            reason,
        };
        if raw.trim().is_empty() {
            return Err(invalid("no URL was given".into()));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(format!("it is not a URL ({e})")))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(invalid(format!(
                "its scheme is {:?}, not amqp or amqps",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it names no host".into()));
        }
        let mut uri: AMQPUri = raw
            .parse()
            // amq-protocol's messages may quote the whole URL.
            .map_err(|e: String| invalid(e.replace(raw, &redacted)))?;
        // amq-protocol-uri takes only *domain* hosts from the URL and puts
        // "localhost" in place of an IP address; use the address given.
        match url.host() {
            Some(url::Host::Ipv4(ip)) => uri.authority.host = ip.to_string(),
            Some(url::Host::Ipv6(ip)) => uri.authority.host = ip.to_string(),
            Some(url::Host::Domain(_)) | None => {}
        }
        if uri.query.heartbeat == Some(0) {
            return Err(invalid(
                "heartbeat=0 disables dead-connection detection".into(),
            ));
        }
        uri.query
            .heartbeat
            .get_or_insert(self.heartbeat.as_secs().clamp(1, 600) as u16);
        uri.query.frame_max.get_or_insert(self.frame_max);
        Ok(uri)
    }

    /// The CA file's PEM text, if one is configured.
    pub(crate) fn ca_pem(&self) -> Result<Option<String>, AmqpError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path).map_err(|e| AmqpError::CaFile {
            path: path.clone(),
            reason: format!("cannot read it ({e})"),
        })?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(AmqpError::CaFile {
                path: path.clone(),
                reason: "it holds no \"-----BEGIN CERTIFICATE-----\" block".into(),
            });
        }
        Ok(Some(pem))
    }

    /// The delay before retry number `attempt` (0-based): `base · 2^attempt`
    /// capped at `cap`, then jittered to between half and all of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.backoff_cap);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

fn name_ok(setting: &'static str, name: &str) -> Result<(), AmqpError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(AmqpError::InvalidConfig {
            setting,
            reason: format!(
                "{:?} must be 1 to 255 bytes without control characters",
                name.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(())
}

/// `url` with any password replaced by `***`, for logs and errors.
///
/// Works on anything URL-shaped, even if it does not parse:
///
/// ```
/// use burnin_amqp::redact_url;
/// assert_eq!(redact_url("amqp://agent:s3cret@mq:5672/burnin"), "amqp://agent:***@mq:5672/burnin");
/// assert_eq!(redact_url("amqp://mq/%2f"), "amqp://mq/%2f");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL: it may still be a password; show only its length.
        return if url.contains('@') {
            format!("<unparseable URL of {} bytes>", url.len())
        } else {
            url.to_owned()
        };
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    // The userinfo ends at the last '@' anywhere: a password may hold an
    // unencoded '@', '/' or '?'. A vhost or query holding '@' only makes the
    // redaction hide too much, never too little.
    let at = rest.rfind('@');
    let Some(at) = at else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &userinfo[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        for (input, want) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/v",
                "amqp://guest:***@127.0.0.1:5672/v",
            ),
            (
                "amqps://u:p%40ss@h/v?heartbeat=5",
                "amqps://u:***@h/v?heartbeat=5",
            ),
            ("amqp://u:p@ss/w@rd@h:1/v", "amqp://u:***@h:1/v"),
            ("amqp://u@h/v", "amqp://u@h/v"),
            ("amqp://h", "amqp://h"),
            ("", ""),
            ("u:secret@h", "<unparseable URL of 10 bytes>"),
        ] {
            assert_eq!(redact_url(input), want, "{input}");
        }
        let c = AmqpConfig::new("amqp://a:topsecret@h/v");
        assert!(!format!("{c:?}").contains("topsecret"));
        let c = AmqpConfig::cluster(["amqp://a:s1@h1/v", "", "amqp://a:s2@h2/v"]);
        assert_eq!(c.redacted_url(), "amqp://a:***@h1/v, amqp://a:***@h2/v");
        assert!(!format!("{c:?}").contains("s2"));
        assert_eq!(
            c.urls().collect::<Vec<_>>(),
            ["amqp://a:s1@h1/v", "amqp://a:s2@h2/v"]
        );
        assert_eq!(AmqpConfig::cluster(Vec::<String>::new()).url, "");
        assert_eq!(c.reannounce, Some(DEFAULT_REANNOUNCE));
        assert_eq!(AmqpConfig::cluster(["amqp://h/v"]).reannounce, None);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let c = AmqpConfig::new("amqp://h");
        for attempt in 0..40 {
            let d = c.backoff(attempt);
            let full = (c.backoff_base * 2u32.pow(attempt.min(20))).min(c.backoff_cap);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?} vs {full:?}");
        }
        assert!(c.backoff(30) >= Duration::from_secs(15));
    }

    #[test]
    fn urls_are_checked_before_any_connection_and_never_shown_with_the_password() {
        for (url, want) in [
            ("http://u:pw@h/", "scheme is \"http\""),
            ("not a url", "not a URL"),
            ("amqp://u:pw@/v", "host"),
            ("amqp:/v", "names no host"),
            ("amqp://u:pw@h/v?heartbeat=0", "heartbeat=0"),
        ] {
            let e = AmqpConfig::new(url).validate().unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, AmqpError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(text.contains(want), "{url}: {text}");
            assert!(text.starts_with("--amqp-url "), "{url}: {text}");
            assert!(!text.contains("pw"), "{url}: {text}");
        }
        let uri = AmqpConfig::new("amqps://u:pw@10.0.0.7:5671/v")
            .uri()
            .unwrap();
        assert_eq!(uri.authority.host, "10.0.0.7");
        assert_eq!(uri.query.heartbeat, Some(20));
        AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
            .validate()
            .unwrap();
    }

    #[test]
    fn the_ca_file_must_be_readable_and_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("burnin-amqp-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = AmqpConfig::new("amqps://h/v");
        c.ca_file = Some(dir.join("missing.pem"));
        let text = c.validate().unwrap_err().to_string();
        assert!(text.starts_with("--amqp-ca-file "), "{text}");
        assert!(
            text.contains("missing.pem") && text.contains("cannot read"),
            "{text}"
        );
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        c.ca_file = Some(not_pem);
        let text = c.validate().unwrap_err().to_string();
        assert!(text.contains("BEGIN CERTIFICATE"), "{text}");
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        c.ca_file = Some(pem);
        c.validate().unwrap();
        assert!(c.ca_pem().unwrap().unwrap().contains("AAAA"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation() {
        let mut c = AmqpConfig::new("amqp://h");
        c.validate().unwrap();
        c.reply_queue = "amq.x".into();
        assert!(c.validate().unwrap_err().to_string().contains("amq."));
        c.reply_queue = "x".repeat(250);
        assert!(c.validate().is_err(), "name plus .rejected exceeds 255");
        c.reply_queue = "ok".into();
        c.prefetch = 0;
        assert!(c.validate().is_err());
        c.prefetch = 1;
        c.validate().unwrap();
        assert_eq!("quorum".parse::<QueueType>().unwrap(), QueueType::Quorum);
        assert!("Quorum".parse::<QueueType>().is_err());
    }
}
