//! Whether a state database could be written, without writing it: what
//! `burnin-edge check` asks before a shift.

use std::path::Path;
use std::time::Duration;

use rusqlite::OpenFlags;

/// Why [`try_write`] could not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This user may not open or write the file.
    Permission,
    /// The file is not an SQLite database.
    NotADatabase,
    /// Another process held the write lock for over 5 s.
    Busy,
    /// Anything else (the message says what).
    Other,
}

/// A write [`try_write`] could not make: SQLite's message and its kind.
#[derive(Debug, Clone)]
pub struct WriteRefused {
    /// What SQLite said.
    pub message: String,
    /// Which kind of refusal, for the fix to suggest.
    pub refusal: Refusal,
}

impl std::fmt::Display for WriteRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Opens the existing database at `path` read-write (never creating it)
/// and creates a table inside a transaction that is rolled back, waiting
/// up to 5 s for another writer.
///
/// # Errors
///
/// [`WriteRefused`] when the file cannot be opened or written.
pub fn try_write(path: &Path) -> Result<(), WriteRefused> {
    let outcome = (|| {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let outcome = conn.execute_batch(
            "BEGIN IMMEDIATE; CREATE TABLE burnin_check_probe (x INTEGER); ROLLBACK;",
        );
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK;");
        }
        outcome
    })();
    outcome.map_err(|e| {
        use rusqlite::ErrorCode;
        let refusal = match e.sqlite_error_code() {
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                Refusal::Permission
            }
            Some(ErrorCode::NotADatabase) => Refusal::NotADatabase,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Refusal::Busy,
            _ => Refusal::Other,
        };
        WriteRefused {
            message: e.to_string(),
            refusal,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_writable_and_other_files_are_refused_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.sqlite3");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER);")
            .unwrap();
        try_write(&db).unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, vec![b'x'; 4096]).unwrap();
        assert_eq!(try_write(&text).unwrap_err().refusal, Refusal::NotADatabase);
        let missing = dir.path().join("missing.sqlite3");
        assert_eq!(
            try_write(&missing).unwrap_err().refusal,
            Refusal::Permission
        );
        assert!(!missing.exists(), "a check never creates the database");
    }
}
