//! # burnin-amqp
//!
//! burnin's transport over RabbitMQ (AMQP 0-9-1): the
//! [`burnin_core::ports`] the edge and the agent run on, implemented with
//! [lapin](https://docs.rs/lapin) on tokio, TLS through rustls (no
//! OpenSSL).
//!
//! ## Design overview
//!
//! | side | [`connect`](edge::connect) returns | core port |
//! | --- | --- | --- |
//! | edge | [`AmqpCommandPublisher`], [`AmqpReplyStream`] | [`CommandPublisher`](burnin_core::CommandPublisher), [`ReplyStream`](burnin_core::ReplyStream) |
//! | agent | [`AmqpCommandSource`], [`AmqpReplySink`] | [`CommandSource`](burnin_core::CommandSource), [`ReplySink`](burnin_core::ReplySink) |
//!
//! The two halves of a side share one connection. Declarations follow
//! SPEC §4 exactly:
//!
//! | what | name | declaration | by |
//! | --- | --- | --- | --- |
//! | command exchange | `devicescan` | fanout, durable, not auto-delete | both |
//! | agent queue | server-named (`amq.gen-…`) | exclusive, auto-delete, bound to the exchange | agent |
//! | reply queue | `hwinfo_queue` | durable, `x-queue-type` classic or quorum; a quorum one also `x-single-active-consumer: true` | edge |
//! | rejected replies | `hwinfo_queue.rejected` | durable, `x-queue-type` as the reply queue | edge |
//!
//! [`check_edge`] (`burnin-edge check`) logs in and declares as the edge
//! does, then closes, taking no reply.
//!
//! A declaration the broker refuses with PRECONDITION_FAILED (the object
//! exists with other arguments) is an [`AmqpError::Conflict`] naming the
//! object, the differing argument and the fix; nothing is ever deleted.
//!
//! **One consumer per reply queue** (SPEC §11.3). The edge is the only
//! consumer of its reply queue; a second edge is refused with
//! [`AmqpError::QueueInUse`] instead of splitting the replies. See
//! [`edge`] for how that holds on both queue types, after a reconnect and
//! when a standby takes over.
//!
//! **Messages.** Commands: `content_type` application/json, persistent,
//! `expiration` = the window in ms, confirmed. Replies: to the default
//! exchange with routing key = `replyTo`, persistent, `mandatory`,
//! `correlation_id` = the operation id, confirmed; a nack, a return
//! (`312 NO_ROUTE`: the reply queue does not exist yet) or a missing
//! confirm is retried with backoff until the command's deadline, then
//! reported as [`TransportError::DeadlinePassed`](burnin_core::TransportError)
//! naming the operation. Replies are consumed with manual acks and a
//! prefetch limit; see [`edge`] for acks and the rejected queue.
//!
//! **A cluster** (SPEC §10.3). [`AmqpConfig::other_urls`] (or
//! [`AmqpConfig::cluster`]) lists more nodes: every connection attempt
//! tries all of them in a fresh random order — so a fleet spreads over the
//! nodes — and a lost connection fails over to whichever node answers,
//! with the backoff below between full rounds. Give each connection a
//! [`connection_name`](AmqpConfig::connection_name) (`burnin-agent SN`,
//! `burnin-edge HOST`) so the broker shows which client is on which node.
//! Use [`QueueType::Quorum`] for the reply and rejected queues there: they
//! then survive the loss of a node with the replies they hold. The edge
//! announces an open command again while its window is open (see [`edge`]),
//! so an agent that reconnected to another node still answers it (every 5 s
//! when several nodes are given, and after the edge's own reconnect).
//!
//! **Connection loss.** Heartbeats (default 20 s, never 0) detect a dead
//! peer. Each side then reconnects with capped exponential backoff and
//! jitter, declares everything again, binds again and consumes again; the
//! reply stream and command source report the loss once as a retryable
//! `Some(Err(TransportError::Unavailable))` and go on. Replies the edge had
//! not acknowledged stay with the broker and are delivered again (marked
//! `redelivered`; the core counts a second copy as a duplicate).
//! lapin's built-in recovery is **not** used: it re-declares the agent's
//! server-named queue under its old `amq.gen-*` name, which RabbitMQ
//! refuses; this crate opens a fresh connection instead, and the agent gets
//! a fresh server-named queue.
//!
//! **Memory.** lapin keeps 32 frames of read and of write buffer per
//! connection; [`AmqpConfig::frame_max`] (default 8 KiB) keeps that at
//! 512 KiB instead of the 8 MiB the broker's default 128 KiB frames cost.
//!
//! **TLS.** `amqps://` goes through rustls with the *ring* provider (smaller
//! than aws-lc-rs: the agent binary is 0.7 MB lighter) and the platform's
//! trusted roots; [`AmqpConfig::ca_file`] adds a private CA. Hosts given
//! as IP addresses are used as given (amq-protocol-uri alone would replace
//! them with `localhost`).
//!
//! **Secrets.** Passwords in URLs never appear in logs or errors: every
//! message shows [`redact_url`]'s form.
//!
//! ## Least privilege (SPEC §8)
//!
//! An agent needs: `configure` on its server-named queue, `write` on the
//! default exchange (replies) and its queue (the binding), `read` on the
//! command exchange (the binding) and its queue (consuming):
//!
//! ```text
//! rabbitmqctl set_permissions -p VHOST burnin-agent '^amq\.gen-.*$' '^(amq\.default|amq\.gen-.*)$' '^(devicescan|amq\.gen-.*)$'
//! ```
//!
//! Such a user may not declare `devicescan`; the agent then checks that
//! the edge has declared it (passively) and waits for it if not. It cannot
//! publish commands (no `write` on `devicescan`) nor consume replies (no
//! `read` on `hwinfo_queue`); other agents' queues are exclusive to their
//! connections.
//!
//! ## Getting started
//!
//! ```no_run
//! use burnin_amqp::{AmqpConfig, agent};
//! use burnin_core::CommandSource;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = AmqpConfig::new("amqps://agent:secret@mq.factory:5671/burnin");
//! config.ca_file = Some("/etc/burnin/ca.pem".into());
//! let (mut commands, sink) = agent::connect(config).await?;
//! while let Some(next) = commands.next_command().await {
//!     // hand `next` to burnin_core::agent …
//! #   let _ = (&next, &sink);
//! }
//! # Ok(()) }
//! ```
//!
//! Throw-away vhosts and the 3-node test cluster for integration tests are
//! in `burnin-testkit` (`vhost`, `cluster`).

mod acks;
pub mod agent;
mod check;
mod config;
pub mod edge;
mod error;
mod link;

pub use agent::{AmqpCommandSource, AmqpReplySink};
pub use check::{EdgeCheck, check_edge};
pub use config::{
    AmqpConfig, DEFAULT_EXCHANGE, DEFAULT_PREFETCH, DEFAULT_REANNOUNCE, DEFAULT_REPLY_QUEUE,
    QueueType, SINGLE_ACTIVE_CONSUMER, redact_url,
};
pub use edge::{AmqpCommandPublisher, AmqpReplyStream, REASON_HEADER};
pub use error::AmqpError;
