//! Versioned migrations.

use tokio_postgres::Client;

use crate::Error;

/// The schema version this build writes (the highest row of `burnin_schema`).
pub const SCHEMA_VERSION: i32 = 2;

/// Serialises migrations of edges starting at once (transaction-scoped
/// advisory lock; "brnm").
const MIGRATION_LOCK: i64 = 0x6272_6E6D;

/// Migration `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE burnin_operations (
        run           BIGSERIAL PRIMARY KEY,
        operation_id  TEXT    NOT NULL,
        params        TEXT    NOT NULL,
        state         TEXT    NOT NULL
                      CHECK (state IN ('collecting', 'reporting', 'done', 'failed')),
        started_ms    BIGINT  NOT NULL,
        deadline_ms   BIGINT  NOT NULL,
        finished_ms   BIGINT,
        error         TEXT,
        results       TEXT,
        errors        TEXT
    );
    CREATE UNIQUE INDEX burnin_operations_running ON burnin_operations (operation_id)
        WHERE finished_ms IS NULL;
    CREATE INDEX burnin_operations_by_id ON burnin_operations (operation_id, run);
    CREATE TABLE burnin_replies (
        seq           BIGSERIAL PRIMARY KEY,
        run           BIGINT  NOT NULL REFERENCES burnin_operations (run),
        sn            TEXT    NOT NULL,
        body          BYTEA   NOT NULL,
        received_ms   BIGINT  NOT NULL,
        UNIQUE (run, sn)
    );
    CREATE TABLE burnin_deliveries (
        seq           BIGSERIAL PRIMARY KEY,
        run           BIGINT  NOT NULL REFERENCES burnin_operations (run),
        kind          TEXT    NOT NULL
                      CHECK (kind IN ('log', 'pair', 'directBurn', 'notify')),
        ok            BOOLEAN NOT NULL,
        error         TEXT,
        at_ms         BIGINT  NOT NULL,
        token         BIGINT  NOT NULL UNIQUE
    );
    CREATE INDEX burnin_deliveries_by_run ON burnin_deliveries (run, seq);
    CREATE TABLE burnin_leader (
        one           BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        identity      TEXT    NOT NULL,
        since_ms      BIGINT  NOT NULL
    );",
    // 1 → 2: runs are numbered per operation id (`run_no`; NULL for rows
    // written before, which read as run 0 and keep their old idempotency
    // keys), and a serial may have several replies in one run (a second
    // board answering with the same serial is a conflict). A write retried
    // after a lost connection must still not insert a reply twice: the
    // unique key becomes (run, sn, md5(body)). A reply that came after its
    // run stopped collecting is kept too, marked `late`.
    "ALTER TABLE burnin_operations ADD COLUMN run_no BIGINT;
    ALTER TABLE burnin_replies DROP CONSTRAINT burnin_replies_run_sn_key;
    CREATE UNIQUE INDEX burnin_replies_once ON burnin_replies (run, sn, md5(body));
    ALTER TABLE burnin_replies ADD COLUMN late BOOLEAN NOT NULL DEFAULT false;",
];

/// Applies the missing migrations in one transaction, under an advisory
/// lock; refuses a database of a newer schema.
pub(crate) async fn migrate(client: &mut Client, shown: &str) -> Result<(), Error> {
    let sql = |action: &str| {
        let url = shown.to_owned();
        let action = action.to_owned();
        move |source| Error::Sql {
            url,
            action,
            source,
        }
    };
    let tx = client
        .transaction()
        .await
        .map_err(sql("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql("waiting for other edges' migrations"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS burnin_schema (
            version     INTEGER PRIMARY KEY,
            applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(sql("creating burnin_schema"))?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM burnin_schema", &[])
        .await
        .map_err(sql("reading the schema version"))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            url: shown.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = from as i32 + 1;
        tx.batch_execute(migration)
            .await
            .map_err(sql(&format!("migration {from} → {to}")))?;
        tx.execute("INSERT INTO burnin_schema (version) VALUES ($1)", &[&to])
            .await
            .map_err(sql(&format!("recording schema version {to}")))?;
        tracing::info!(url = %shown, version = to, "PostgreSQL schema migrated");
    }
    tx.commit().await.map_err(sql("committing the migration"))
}
