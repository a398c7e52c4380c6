//! Every run's raw output, kept: what is printed to stdout is also
//! collected and written to a file at the end (and on failure).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static OUT: Mutex<String> = Mutex::new(String::new());

/// Prints a line to stdout and keeps it for the record file.
macro_rules! say {
    () => { $crate::record::line(String::new()) };
    ($($arg:tt)*) => { $crate::record::line(format!($($arg)*)) };
}
pub(crate) use say;

/// See [`say!`].
pub(crate) fn line(text: String) {
    println!("{text}");
    let mut out = OUT.lock().unwrap_or_else(|e| e.into_inner());
    out.push_str(&text);
    out.push('\n');
}

/// `target/burnin-load/<kind>-<UTC time>.txt` (colons left out).
pub(crate) fn default_path(kind: &str, now: &str) -> PathBuf {
    let stamp: String = now.chars().filter(|c| *c != ':').collect();
    Path::new("target/burnin-load").join(format!("{kind}-{stamp}.txt"))
}

/// Writes everything said so far to `path`; returns the path written.
pub(crate) fn write(path: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the record", dir.display()))?;
    }
    let text = OUT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the record {}", path.display()))?;
    Ok(path.to_path_buf())
}
