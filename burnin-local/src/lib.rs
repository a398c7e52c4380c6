//! # burnin-local
//!
//! Adapters for [`burnin_core`]'s ports that need no servers:
//!
//! * [`SystemClock`] — the OS wall clock, sleeping on tokio's timer.
//! * [`FileMes`] — MES records from a JSON file (`--mes-file`):
//!   `{"<sn>": ["<mac>", ...], ...}`. A serial missing from the file is
//!   unknown to MES, like a 404. The whole file is validated when loaded, so
//!   a bad entry is reported at start-up with the file name and the serial,
//!   not in the middle of an operation.
//! * [`OutDirReporter`] — writes each payload to `<dir>/<op>.<kind>.json`
//!   (`--out-dir`), e.g. `1001.log.json`, `1001.pair.json`. Files are written
//!   to a temporary name and renamed, so a reader never sees half a file.
//!   Characters of a string operation id that are unsafe in a file name
//!   (`/`, `\`, NUL, a leading `.`, `%`) are percent-encoded.
//!
//! `burnin-edge demo` uses all three; `burnin-edge scan --mes-file --out-dir`
//! uses the last two instead of the factory's HTTP APIs.
//!
//! ```no_run
//! # async fn example() -> Result<(), burnin_local::Error> {
//! use burnin_core::{MesSource, SerialNumber};
//! let mes = burnin_local::FileMes::load("mes.json".as_ref())?;
//! let answer = mes.lookup(&SerialNumber::new("Q186I15901").unwrap()).await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use burnin_core::{
    Clock, FactoryReporter, Mac, MesAnswer, MesError, MesSource, Payload, ReportError,
    SerialNumber, Timestamp,
};

/// An error loading a local adapter's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read MES file {path}: {source}; check the --mes-file path")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not `{"<sn>": ["<mac>", ...]}`.
    #[error("MES file {path} is invalid: {message}; expected {{\"<sn>\": [\"<mac>\", ...]}}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong (names the serial and the value).
        message: String,
    },
    /// The output folder could not be created.
    #[error("cannot create output folder {path}: {source}; check --out-dir")]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The OS wall clock; sleeps on tokio's timer (needs a tokio runtime with
/// the time driver enabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        // Re-check after waking: the wall clock may have been adjusted.
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline.saturating_since(now)).await;
        }
    }
}

/// MES records loaded from a JSON file; see the [crate docs](crate).
#[derive(Debug, Clone, Default)]
pub struct FileMes {
    records: HashMap<SerialNumber, Vec<Mac>>,
}

impl FileMes {
    /// Loads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&bytes).map_err(|message| Error::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the file's contents; the error names the bad entry.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let raw: HashMap<String, Vec<String>> =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut records = HashMap::with_capacity(raw.len());
        for (sn, macs) in raw {
            let serial = SerialNumber::new(sn.clone()).map_err(|e| e.to_string())?;
            let macs = macs
                .iter()
                .map(|m| m.parse::<Mac>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("serial {sn:?}: {e}"))?;
            records.insert(serial, macs);
        }
        Ok(FileMes { records })
    }

    /// Builds a source from records in memory.
    pub fn from_records(records: impl IntoIterator<Item = (SerialNumber, Vec<Mac>)>) -> Self {
        FileMes {
            records: records.into_iter().collect(),
        }
    }

    /// The records as the file's JSON document (serials sorted).
    pub fn to_json(&self) -> Vec<u8> {
        let sorted: std::collections::BTreeMap<&str, Vec<String>> = self
            .records
            .iter()
            .map(|(sn, macs)| (sn.as_str(), macs.iter().map(Mac::to_string).collect()))
            .collect();
        serde_json::to_vec_pretty(&sorted).unwrap_or_default()
    }

    /// How many serials the file holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file holds no serial.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[async_trait]
impl MesSource for FileMes {
    async fn lookup(&self, sn: &SerialNumber) -> Result<MesAnswer, MesError> {
        Ok(match self.records.get(sn) {
            Some(macs) => MesAnswer::Record(macs.clone()),
            None => MesAnswer::Unknown,
        })
    }
}

/// Writes payloads to a folder; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct OutDirReporter {
    dir: PathBuf,
}

impl OutDirReporter {
    /// Writes into `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| Error::OutDir {
            path: dir.clone(),
            source,
        })?;
        Ok(OutDirReporter { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a payload is (or will be) written.
    pub fn path_for(&self, payload: &Payload) -> PathBuf {
        let op = file_safe(&payload.operation_id.to_string());
        self.dir.join(format!("{op}.{}.json", payload.kind))
    }

    fn write(&self, payload: &Payload) -> std::io::Result<PathBuf> {
        let path = self.path_for(payload);
        let tmp = path.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        // Byte for byte what an HTTP reporter would POST: no newline added.
        f.write_all(&payload.body)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

fn file_safe(op: &str) -> String {
    let mut out = String::with_capacity(op.len());
    for (i, c) in op.chars().enumerate() {
        match c {
            '/' | '\\' | '\0' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait]
impl FactoryReporter for OutDirReporter {
    async fn deliver(&self, payload: &Payload) -> Result<(), ReportError> {
        self.write(payload)
            .map(|_| ())
            .map_err(|e| ReportError::Unavailable {
                kind: payload.kind,
                message: format!("cannot write {}: {e}", self.path_for(payload).display()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burnin_core::{OperationId, payload};

    #[tokio::test]
    async fn file_mes_answers_records_and_unknown() {
        let mes = FileMes::from_json(br#"{"A": ["E0-18-7D-2E-CA-68", "e018.7d2e.ca69"]}"#).unwrap();
        let a = mes.lookup(&"A".parse().unwrap()).await.unwrap();
        assert_eq!(
            a,
            MesAnswer::Record(vec![
                "e0:18:7d:2e:ca:68".parse().unwrap(),
                "e0:18:7d:2e:ca:69".parse().unwrap()
            ])
        );
        assert_eq!(
            mes.lookup(&"B".parse().unwrap()).await.unwrap(),
            MesAnswer::Unknown
        );
        let back = FileMes::from_json(&mes.to_json()).unwrap();
        assert_eq!(back.len(), 1);
    }

    #[test]
    fn file_mes_errors_name_the_entry() {
        let e = FileMes::from_json(br#"{"A": ["nope"]}"#).unwrap_err();
        assert_eq!(
            e,
            "serial \"A\": \"nope\" is not a MAC address; expected 6 hex bytes such as \
             e0:18:7d:2e:ca:68, E0-18-7D-2E-CA-68, e0187d2eca68 or e018.7d2e.ca68"
        );
        assert!(
            FileMes::from_json(br#"{"A B": []}"#)
                .unwrap_err()
                .contains("\"A B\"")
        );
        assert!(FileMes::from_json(br#"["A"]"#).is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = FileMes::load(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
    }

    #[tokio::test]
    async fn out_dir_writes_each_payload_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let r = OutDirReporter::new(dir.path().join("out")).unwrap();
        let p = payload::notify(&OperationId::Number(7), &[], None);
        r.deliver(&p).await.unwrap();
        let written = fs::read(dir.path().join("out/7.notify.json")).unwrap();
        assert_eq!(written, b"{\"operationId\":7,\"scanInfo\":[]}");
        let p = payload::log(&OperationId::Text("../a/b%".into()), &[]);
        r.deliver(&p).await.unwrap();
        assert!(dir.path().join("out/%2E.%2Fa%2Fb%25.log.json").exists());
        assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_the_deadline() {
        let c = SystemClock;
        let deadline = c.now().saturating_add(std::time::Duration::from_millis(50));
        c.sleep_until(deadline).await;
        assert!(c.now() >= deadline);
    }
}
