//! Bounded reads confined to the sysfs root.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Problem;

/// The most bytes read from any one file; larger files are refused.
pub const MAX_FILE_BYTES: u64 = 4096;

/// Why a path inside the tree could not be used.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The path does not exist (or a link on the way dangles).
    Missing,
    /// Anything else: a problem worth a warning.
    Problem(Problem),
}

impl From<Problem> for Fault {
    fn from(p: Problem) -> Self {
        Fault::Problem(p)
    }
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            Fault::Missing
        } else {
            Fault::Problem(Problem::Unreadable {
                error: e.to_string(),
            })
        }
    }
}

/// A sysfs tree whose links are only followed while they stay inside it.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The canonical root.
    root: PathBuf,
}

impl Tree {
    /// Opens the tree at `root`, which must exist.
    pub(crate) fn open(root: &Path) -> io::Result<Tree> {
        Ok(Tree {
            root: fs::canonicalize(root)?,
        })
    }

    /// The canonical root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves every link in `path`; refuses a result outside the root.
    pub(crate) fn resolve(&self, path: &Path) -> Result<PathBuf, Fault> {
        let real = fs::canonicalize(path)?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(Problem::OutsideRoot { target: real }.into())
        }
    }

    /// Reads a small text file inside the tree, trimmed of surrounding
    /// whitespace.
    pub(crate) fn read(&self, path: &Path) -> Result<String, Fault> {
        let real = self.resolve(path)?;
        read_bounded(&real)
    }

    /// Reads `file` (one name) in the directory `dir`, which must be a
    /// canonical path inside the tree (a result of [`Tree::resolve`]).
    ///
    /// Sysfs attributes are plain files, so the common case costs one
    /// `lstat` instead of resolving every component; a file that is a link
    /// is resolved and checked like any other.
    pub(crate) fn read_in(&self, dir: &Path, file: &str) -> Result<String, Fault> {
        let path = dir.join(file);
        if !dir.starts_with(&self.root) {
            return self.read(&path);
        }
        // One `open` with O_NOFOLLOW instead of `lstat` then `open`: a file
        // that is a link fails with ELOOP and is resolved and checked.
        match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => read_file(file),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => self.read(&path),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads at most [`MAX_FILE_BYTES`] of UTF-8 text from `path`, trimmed.
pub(crate) fn read_bounded(path: &Path) -> Result<String, Fault> {
    read_file(File::open(path)?)
}

/// Reads at most [`MAX_FILE_BYTES`] of UTF-8 text from an open file, trimmed.
fn read_file(file: File) -> Result<String, Fault> {
    let mut buf = Vec::with_capacity(64);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    Ok(text_of(buf)?)
}

/// A file's content as the probe uses it: at most [`MAX_FILE_BYTES`] of
/// UTF-8 text, trimmed. Every file read goes through here.
pub(crate) fn text_of(buf: Vec<u8>) -> Result<String, Problem> {
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Problem::TooLarge {
            limit: MAX_FILE_BYTES,
        });
    }
    let text = String::from_utf8(buf).map_err(|_| Problem::NotUtf8)?;
    Ok(text.trim().to_owned())
}

/// The last component of `path` as text (sysfs names are ASCII).
pub(crate) fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_read_limits_size_and_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        fs::write(&ok, " 0x8086\n").unwrap();
        assert_eq!(read_bounded(&ok).unwrap(), "0x8086");

        let exact = dir.path().join("exact");
        fs::write(&exact, vec![b'a'; MAX_FILE_BYTES as usize]).unwrap();
        assert_eq!(read_bounded(&exact).unwrap().len(), MAX_FILE_BYTES as usize);

        let big = dir.path().join("big");
        fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            read_bounded(&big),
            Err(Fault::Problem(Problem::TooLarge {
                limit: MAX_FILE_BYTES
            }))
        ));

        let bin = dir.path().join("bin");
        fs::write(&bin, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(
            read_bounded(&bin),
            Err(Fault::Problem(Problem::NotUtf8))
        ));

        assert!(matches!(
            read_bounded(&dir.path().join("none")),
            Err(Fault::Missing)
        ));
    }

    #[test]
    fn resolve_refuses_links_leaving_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../..", dir.path().join("up")).unwrap();
        let tree = Tree::open(dir.path()).unwrap();
        assert!(matches!(
            tree.read(&dir.path().join("link")),
            Err(Fault::Problem(Problem::OutsideRoot { .. }))
        ));
        assert!(matches!(
            tree.resolve(&dir.path().join("up")),
            Err(Fault::Problem(Problem::OutsideRoot { .. }))
        ));
        assert!(matches!(
            tree.resolve(&dir.path().join("nope")),
            Err(Fault::Missing)
        ));
    }
}
