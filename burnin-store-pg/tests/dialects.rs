//! The two stores keep the same tables: every column the SQLite store
//! creates, the PostgreSQL store creates under the same name (tables
//! prefixed `burnin_`), and the other way round — except what only a
//! shared store needs, listed here with why.

use std::collections::BTreeSet;

use burnin_store::SqliteStore;
use burnin_store_pg::PgStore;
use burnin_testkit::pg::TestDb;

/// Columns only the PostgreSQL store has: `deliveries.token` makes a
/// delivery written twice through a retried connection count once, and
/// `leader` records which of several edges is active.
const PG_ONLY: [&str; 4] = [
    "deliveries.token",
    "leader.one",
    "leader.identity",
    "leader.since_ms",
];

fn sqlite_columns(path: &std::path::Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = BTreeSet::new();
    for table in ["operations", "replies", "deliveries"] {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap);
        out.extend(names.map(|c| format!("{table}.{c}")));
    }
    out
}

fn pg_columns(db: &TestDb) -> BTreeSet<String> {
    db.psql(
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name LIKE 'burnin\\_%' \
         AND table_name <> 'burnin_schema'",
    )
    .lines()
    .map(|l| l.trim().trim_start_matches("burnin_").to_owned())
    .filter(|l| !l.is_empty())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_create_the_same_columns() {
    let Some(db) = TestDb::new("dialects") else {
        return;
    };
    let _pg = PgStore::connect(&db.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());

    let sqlite = sqlite_columns(&path);
    let pg = pg_columns(&db);
    assert!(sqlite.contains("operations.run_no"), "{sqlite:?}");
    let pg_only: BTreeSet<String> = PG_ONLY.iter().map(|c| (*c).to_owned()).collect();
    let missing_in_pg: Vec<_> = sqlite.difference(&pg).collect();
    let missing_in_sqlite: Vec<_> = pg
        .difference(&sqlite)
        .filter(|c| !pg_only.contains(*c))
        .collect();
    assert!(
        missing_in_pg.is_empty() && missing_in_sqlite.is_empty(),
        "only in SQLite: {missing_in_pg:?}; only in PostgreSQL: {missing_in_sqlite:?}"
    );
    for c in &pg_only {
        assert!(
            pg.contains(c),
            "{c} is listed as PostgreSQL-only but does not exist: {pg:?}"
        );
    }
}
