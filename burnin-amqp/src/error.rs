//! The crate's one error type.

use std::path::PathBuf;

use burnin_core::TransportError;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// What went wrong talking to RabbitMQ.
///
/// Every message names the object or value at fault and what to do; URLs
/// are always shown redacted (see [`redact_url`](crate::redact_url)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmqpError {
    /// The broker URL cannot be used.
    #[error(
        "--amqp-url {url} is invalid: {reason}; use amqp://USER:PASSWORD@HOST:PORT/VHOST or amqps://…"
    )]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid AMQP setting {setting}: {reason}")]
    InvalidConfig {
        /// Which setting (the flag name).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file cannot be read or holds no PEM certificate.
    #[error(
        "--amqp-ca-file {path}: {reason}; give a PEM file with the certificate of the CA that signed the broker's"
    )]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The broker cannot be reached, refused the login, or the connection
    /// was lost.
    #[error("cannot use the broker at {url}: {message}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// What happened.
        message: String,
    },
    /// A queue or exchange already exists with other arguments
    /// (PRECONDITION_FAILED). Nothing was deleted or changed.
    #[error(
        "{kind} {name:?} already exists with other arguments{arg}: the broker said \"{message}\". \
         Nothing was changed. Delete it (`rabbitmqctl delete_{kind} {name}`, after draining it) \
         so it is declared anew, or use another name{why}",
        arg = argument.as_ref().map(|a| format!(" (argument {a:?} differs)")).unwrap_or_default(),
        why = argument_note(argument.as_deref()),
    )]
    Conflict {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The argument that differs, when the broker named it.
        argument: Option<String>,
        /// The broker's message.
        message: String,
    },
    /// Another consumer holds the reply queue: an edge is its only consumer
    /// (SPEC §11.3). On a classic queue the broker refused the exclusive
    /// consume (403 ACCESS_REFUSED "in exclusive use"); on a quorum queue
    /// (single active consumer) the queue already had a consumer. Nothing
    /// was consumed.
    #[error(
        "another consumer holds queue {queue:?} on this vhost ({detail}): an edge must be the only \
         consumer of its reply queue, or replies would be split between the two. Stop the other \
         edge, or use its API, or give this one another vhost or --reply-queue"
    )]
    QueueInUse {
        /// The reply queue.
        queue: String,
        /// What the broker said or showed.
        detail: String,
    },
    /// The broker user lacks a permission.
    #[error("the broker refused {what}: {message}; check the user's permissions (SPEC §8, README)")]
    AccessRefused {
        /// What was attempted.
        what: String,
        /// The broker's message.
        message: String,
    },
    /// Another broker error.
    #[error("{what} failed: {message}")]
    Broker {
        /// What was attempted.
        what: String,
        /// What happened.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// The transport was closed.
    #[error("the broker connection was closed")]
    Closed,
}

impl AmqpError {
    /// Whether trying again (after reconnecting) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AmqpError::Connect { .. } => true,
            AmqpError::Broker { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Classifies a lapin error raised while doing `what` on `object`
    /// (`("queue", "hwinfo_queue")`), for a broker at `url` (redacted).
    pub(crate) fn from_lapin(
        e: &lapin::Error,
        what: &str,
        object: Option<(&'static str, &str)>,
    ) -> Self {
        if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
            let message = amqp.get_message().to_string();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
                    if let Some((kind, name)) = object {
                        return AmqpError::Conflict {
                            kind,
                            name: name.to_owned(),
                            argument: differing_argument(&message),
                            message,
                        };
                    }
                }
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => {
                    return AmqpError::AccessRefused {
                        what: what.to_owned(),
                        message,
                    };
                }
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND | AMQPSoftError::RESOURCELOCKED) => {
                    return AmqpError::Broker {
                        what: what.to_owned(),
                        message,
                        retryable: true,
                    };
                }
                _ => {}
            }
            return AmqpError::Broker {
                what: what.to_owned(),
                message,
                retryable: matches!(amqp.kind(), AMQPErrorKind::Hard(_)),
            };
        }
        AmqpError::Broker {
            what: what.to_owned(),
            message: e.to_string(),
            retryable: true,
        }
    }
}

/// Why a differing argument is declared at all, when it is one of ours.
fn argument_note(argument: Option<&str>) -> String {
    match argument {
        Some(crate::SINGLE_ACTIVE_CONSUMER) => format!(
            ". This release declares a quorum reply queue with {}: true, so that one edge \
             consumes it; a queue declared by an older release lacks it. Stop every edge using \
             the queue, let it drain, delete it, and start the edge again",
            crate::SINGLE_ACTIVE_CONSUMER
        ),
        _ => String::new(),
    }
}

/// `inequivalent arg 'x-queue-type' for queue …` → `x-queue-type`.
fn differing_argument(message: &str) -> Option<String> {
    let rest = message.split("inequivalent arg '").nth(1)?;
    Some(rest.split('\'').next()?.to_owned())
}

impl From<AmqpError> for TransportError {
    fn from(e: AmqpError) -> Self {
        match e {
            AmqpError::Closed => TransportError::Closed,
            e if e.is_retryable() => TransportError::Unavailable(e.to_string()),
            e => TransportError::Refused(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_the_argument_and_the_fix() {
        let e = AmqpError::Conflict {
            kind: "queue",
            name: "hwinfo_queue".into(),
            argument: differing_argument(
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'hwinfo_queue' in vhost '/': received 'quorum' but current is 'classic'",
            ),
            message: "…".into(),
        };
        let text = e.to_string();
        assert!(text.contains("queue \"hwinfo_queue\""), "{text}");
        assert!(text.contains("argument \"x-queue-type\" differs"), "{text}");
        assert!(
            text.contains("rabbitmqctl delete_queue hwinfo_queue"),
            "{text}"
        );
        assert!(matches!(
            TransportError::from(e),
            TransportError::Refused(_)
        ));
        assert_eq!(differing_argument("no such thing"), None);
    }
}
