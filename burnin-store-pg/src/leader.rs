//! Exactly one active edge among several on one database.
//!
//! **Why a PostgreSQL advisory lock** (and not RabbitMQ's single active
//! consumer): what must be exclusive is the *store* — who begins, records
//! and reports operations — and the lock lives in the same database, so
//! the one holding it is by construction the one whose writes count. A
//! session-level advisory lock (`pg_try_advisory_lock`) is held by one
//! database session and released by PostgreSQL the moment that session
//! ends: a killed `serve` (SIGKILL, power loss of its machine once TCP
//! notices) frees it without any lease to expire. A standby polls for it
//! every [`POLL`](Leadership::POLL) (1 s), so it takes over well within
//! SPEC §10.3's 10 s. Single active consumer would only make one edge
//! *consume* replies; starting operations, resuming them and POSTing to the
//! factory would still need a second mechanism.
//!
//! The lock is held on a **dedicated** session, separate from the store's
//! connections (those reconnect freely; a lock must never move silently).
//! The active edge pings that session every second, each ping bounded by
//! [`PING_TIMEOUT`](Leadership::PING_TIMEOUT), and watches it end: if the
//! session ends (on a restart, PostgreSQL's own FATAL 57P01 reaches the
//! idle session at once, before the server goes down — noticed then, not
//! at the next ping, so the active edge has stopped before a standby can
//! take the lock from the restarted server), is lost (the network cut) or
//! the ping does not come back in time, it is no longer active —
//! [`Leadership::lost`] completes, and the error it logs says why — and
//! `serve` stops acting on operations (it stops consuming and publishing,
//! then campaigns again as a standby with a new `Leadership`).
//!
//! **Who lets go first.** A killed edge's socket is closed by its kernel,
//! so PostgreSQL ends the session and frees the lock at once. A *silent*
//! cut (no reset reaches PostgreSQL) is noticed by PostgreSQL only through
//! TCP keepalives, which the lock session sets for itself to
//! [`KEEPALIVE`](Leadership::KEEPALIVE) (idle 5 s, then 3 probes 2 s
//! apart: ≈ 11 s), well after the active edge gave up on its own pings
//! (≤ 1 s + 2 s), so the old active has stopped before a standby can get
//! the lock. Where both still overlap — a payload already on the wire when
//! the active noticed — both send the same payload with the same
//! `Idempotency-Key`, so the factory still sees it once.
//!
//! The active edge writes its identity (e.g. `host:port` of its API) into
//! `burnin_leader`, so a standby can say who is active.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};

use crate::{Error, explain, open, open_watched, parse_url, redact_url};

/// The advisory lock key of the active edge ("brnl"), per database.
pub const LOCK_KEY: i64 = 0x6272_6E6C;

/// An edge's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Holds the lock: runs operations.
    Active,
    /// Waits for the lock: answers reads only.
    Standby,
    /// Held the lock and lost its session: must stop acting.
    Lost,
}

impl Role {
    /// `active`, `standby` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
            Role::Lost => "lost",
        }
    }
}

/// Campaigns for the active role; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Leadership {
    role: watch::Receiver<Role>,
    shown: Arc<str>,
    config: tokio_postgres::Config,
}

impl Leadership {
    /// How often a standby tries the lock and the active pings its session.
    pub const POLL: Duration = Duration::from_secs(1);
    /// How long the active waits for a ping before it counts its session lost.
    pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
    /// The lock session's server-side TCP keepalives (idle, interval, count):
    /// PostgreSQL ends a silently cut session, and frees the lock, after
    /// about idle + interval × count.
    pub const KEEPALIVE: (u32, u32, u32) = (5, 2, 3);

    /// Starts campaigning on the database at `url` as `identity` (shown to
    /// standbys and in `/healthz`). Returns once the first attempt was made:
    /// [`role`](Self::role) is then `Active` or `Standby`.
    ///
    /// # Errors
    /// If the database cannot be reached at all.
    pub async fn start(url: &str, identity: impl Into<String>) -> Result<Self, Error> {
        Self::campaign_on(parse_url(url)?, redact_url(url).into(), identity.into()).await
    }

    /// [`start`](Self::start) on the database `store` uses (same URL,
    /// its own session).
    ///
    /// # Errors
    /// If the database cannot be reached at all.
    pub async fn for_store(
        store: &crate::PgStore,
        identity: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::campaign_on(
            store.inner.config.clone(),
            store.url().into(),
            identity.into(),
        )
        .await
    }

    async fn campaign_on(
        mut config: tokio_postgres::Config,
        shown: Arc<str>,
        identity: String,
    ) -> Result<Self, Error> {
        // Named apart from the store's connections (pg_stat_activity).
        config.application_name("burnin-edge-leader");
        let (client, ended) = open_session(&config, &shown).await?;
        let (tx, rx) = watch::channel(Role::Standby);
        let first = try_lock(&client, &identity).await.map_err(|e| Error::Sql {
            url: shown.to_string(),
            action: "trying the active edge's advisory lock".into(),
            source: e,
        })?;
        if first {
            tracing::info!(url = %shown, "this edge is active (holds the advisory lock)");
            let _ = tx.send(Role::Active);
        } else {
            tracing::info!(url = %shown, "another edge is active; this one is standby");
        }
        tokio::spawn(campaign(
            config.clone(),
            shown.clone(),
            identity,
            (client, ended),
            first,
            tx,
        ));
        Ok(Leadership {
            role: rx,
            shown,
            config,
        })
    }

    /// The current role.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Completes once this edge is active (at once if it is).
    pub async fn active(&self) {
        let mut rx = self.role.clone();
        let _ = rx.wait_for(|r| *r == Role::Active).await;
    }

    /// Completes once this edge, having been active, lost its lock session.
    pub async fn lost(&self) {
        let mut rx = self.role.clone();
        let _ = rx.wait_for(|r| *r == Role::Lost).await;
    }

    /// Who is active, as it recorded itself, and since when (Unix ms);
    /// `None` if nobody has been.
    ///
    /// # Errors
    /// If the database cannot be read.
    pub async fn active_identity(&self) -> Result<Option<(String, i64)>, Error> {
        let client = open(&self.config, &self.shown).await?;
        let row = client
            .query_opt("SELECT identity, since_ms FROM burnin_leader", &[])
            .await
            .map_err(|e| Error::Sql {
                url: self.shown.to_string(),
                action: "reading the active edge's identity".into(),
                source: e,
            })?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}

/// The lock session and, once it has ended, why.
type Session = (tokio_postgres::Client, oneshot::Receiver<String>);

/// Opens the lock session: a connection with the server-side keepalives of
/// [`Leadership::KEEPALIVE`].
async fn open_session(config: &tokio_postgres::Config, shown: &str) -> Result<Session, Error> {
    let (client, ended) = open_watched(config, shown).await?;
    let (idle, interval, count) = Leadership::KEEPALIVE;
    client
        .batch_execute(&format!(
            "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; \
             SET tcp_keepalives_count = {count}"
        ))
        .await
        .map_err(|e| Error::Sql {
            url: shown.to_owned(),
            action: "setting the lock session's keepalives".into(),
            source: e,
        })?;
    Ok((client, ended))
}

/// Why the active edge's lock session is gone, from the failed `ping`
/// and, if the session has ended, from how it ended (on a restart,
/// PostgreSQL's own FATAL 57P01, which reached the idle session before
/// any ping did).
async fn why_lost(
    client: &tokio_postgres::Client,
    ping: Result<Result<(), tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ended: &mut oneshot::Receiver<String>,
) -> String {
    let failed = match ping {
        Ok(Err(e)) if e.as_db_error().is_some() => return explain(&e),
        Ok(Err(e)) => explain(&e),
        Ok(Ok(())) => "the connection closed".to_owned(),
        Err(_) => format!("no answer to a ping within {:?}", Leadership::PING_TIMEOUT),
    };
    if !client.is_closed() {
        return failed;
    }
    // The driver task records the end just after it closed the client.
    match tokio::time::timeout(Duration::from_millis(200), ended).await {
        Ok(Ok(reason)) => reason,
        _ => failed,
    }
}

async fn try_lock(
    client: &tokio_postgres::Client,
    identity: &str,
) -> Result<bool, tokio_postgres::Error> {
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await?
        .get(0);
    if got {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        client
            .execute(
                "INSERT INTO burnin_leader (one, identity, since_ms) VALUES (TRUE, $1, $2)
                 ON CONFLICT (one) DO UPDATE SET identity = $1, since_ms = $2",
                &[&identity, &now],
            )
            .await?;
    }
    Ok(got)
}

async fn campaign(
    config: tokio_postgres::Config,
    shown: Arc<str>,
    identity: String,
    session: Session,
    mut active: bool,
    tx: watch::Sender<Role>,
) {
    let (mut client, mut ended) = session;
    loop {
        // The active edge notices its session's end as it happens, not at
        // the next ping: on a restart PostgreSQL ends it (FATAL 57P01)
        // before it goes down, and frees the lock; a standby may take the
        // lock as soon as PostgreSQL is back (often within the POLL), and
        // an active edge that had not noticed yet would keep committing
        // and acking replies, through its store's reconnected sessions,
        // that the new active edge — which already read the operation —
        // never sees.
        let ended_now = if active {
            tokio::select! {
                () = tokio::time::sleep(Leadership::POLL) => None,
                why = &mut ended => Some(why.unwrap_or_else(|_| "the connection ended".to_owned())),
            }
        } else {
            tokio::time::sleep(Leadership::POLL).await;
            None
        };
        if tx.is_closed() {
            return;
        }
        let lost = match ended_now {
            Some(why) => Some(why),
            None if active => {
                // Keep the session (and with it the lock) alive; notice its loss.
                let ping = tokio::time::timeout(Leadership::PING_TIMEOUT, async {
                    client.simple_query("SELECT 1").await.map(drop)
                })
                .await;
                if client.is_closed() || !matches!(ping, Ok(Ok(()))) {
                    Some(why_lost(&client, ping, &mut ended).await)
                } else {
                    None
                }
            }
            None => None,
        };
        if let Some(why) = lost {
            tracing::error!(
                url = %shown,
                "lost the PostgreSQL session holding the active edge's lock ({why}); \
                 this edge must stop acting until it holds the lock again, and campaigns \
                 for it as a standby, retrying until PostgreSQL answers"
            );
            let _ = tx.send(Role::Lost);
            return;
        }
        if active {
            continue;
        }
        if client.is_closed() {
            match open_session(&config, &shown).await {
                Ok(c) => (client, ended) = c,
                Err(e) => {
                    tracing::warn!(error = %e, "standby cannot reach PostgreSQL; retrying");
                    continue;
                }
            }
        }
        let tried =
            tokio::time::timeout(Leadership::PING_TIMEOUT, try_lock(&client, &identity)).await;
        let Ok(tried) = tried else {
            // A session that does not answer may hold the lock by now
            // without this edge knowing: start over on a new one.
            tracing::warn!(url = %shown, "standby's lock attempt did not answer; reconnecting");
            (client, ended) = match open_session(&config, &shown).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "standby cannot reach PostgreSQL; retrying");
                    continue;
                }
            };
            continue;
        };
        match tried {
            Ok(true) => {
                tracing::info!(url = %shown, "took over: this edge is now active");
                active = true;
                let _ = tx.send(Role::Active);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %explain(&e), "standby could not try the lock; retrying")
            }
        }
    }
}

#[async_trait::async_trait]
impl burnin_core::Candidacy for Leadership {
    async fn active(&self) {
        Leadership::active(self).await;
    }
    async fn lost(&self) {
        Leadership::lost(self).await;
    }
    async fn active_identity(&self) -> Result<Option<(String, i64)>, burnin_core::StoreError> {
        Ok(Leadership::active_identity(self).await?)
    }
}
