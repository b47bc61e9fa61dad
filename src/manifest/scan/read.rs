//! One directory entry with a manifest's name to what it holds: only
//! regular files are read (following symlinks), never more than the size
//! limit, and a file unchanged since its last parse is not read again.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::{parse_file_with, ManifestError, ManifestPod};
use crate::settings::ManifestValidation;

/// The default of `--max-manifest-size`: 4 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 20;

/// A file changed less than this before it was read may change again
/// without its fingerprint changing (file systems keep coarse times), so
/// its parse is not reused.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Linux's "too many levels of symbolic links" (`io::ErrorKind::FilesystemLoop`
/// is not stable yet).
const ELOOP: i32 = 40;

/// What tells two versions of a file apart without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(m: &Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether the file changed within `window` before `now`.
    fn recent(&self, now: SystemTime, window: Duration) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return true;
        };
        let at = |(secs, nanos): (i64, i64)| match (u64::try_from(secs), u32::try_from(nanos)) {
            (Ok(s), Ok(n)) => Some(Duration::new(s, n)),
            _ => None,
        };
        [self.mtime, self.ctime]
            .into_iter()
            .any(|t| at(t).is_none_or(|t| t + window > now))
    }
}

/// Why an entry with a manifest's name is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// A directory.
    Directory,
    /// A FIFO, socket or device (named): never opened.
    Special(&'static str),
    /// A symlink that leads back to itself.
    SymlinkLoop,
    /// A symlink to nothing; its pods go as if the file were removed.
    Dangling,
}

impl Skip {
    /// Whether the entry still stands for its file, so that the pods it
    /// had keep running (only a dangling symlink counts as removed).
    pub fn keeps_pods(self) -> bool {
        self != Skip::Dangling
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Directory => f.write_str("is a directory, not a manifest file; skipped"),
            Skip::Special(kind) => write!(f, "is {kind}, not a regular file; not read"),
            Skip::SymlinkLoop => f.write_str("is a symlink loop; not read"),
            Skip::Dangling => f.write_str("is a symlink to nothing; skipped"),
        }
    }
}

/// What one entry holds.
#[derive(Debug)]
pub enum Outcome {
    /// Parsed and valid (a `List` may hold no pods).
    Pods(Vec<ManifestPod>),
    /// Empty, or comments and document markers only.
    Blank,
    /// Unreadable, too large, or not a valid manifest.
    Failed(ManifestError),
    /// Not a regular file.
    Skipped(Skip),
    /// Gone between the listing and the read.
    Gone,
}

impl Outcome {
    /// A copy of an outcome read from a file's content, for the cache.
    fn copy(&self) -> Outcome {
        match self {
            Outcome::Pods(pods) => Outcome::Pods(pods.clone()),
            Outcome::Blank => Outcome::Blank,
            Outcome::Failed(e) => Outcome::Failed(copy_error(e)),
            Outcome::Skipped(s) => Outcome::Skipped(*s),
            Outcome::Gone => Outcome::Gone,
        }
    }
}

/// A copy of an error (`io::Error` is not `Clone`: kind and text are kept).
fn copy_error(e: &ManifestError) -> ManifestError {
    let io = |s: &io::Error| io::Error::new(s.kind(), s.to_string());
    match e {
        ManifestError::ReadDir { dir, source } => ManifestError::ReadDir {
            dir: dir.clone(),
            source: io(source),
        },
        ManifestError::ReadFile { file, source } => ManifestError::ReadFile {
            file: file.clone(),
            source: io(source),
        },
        ManifestError::Syntax {
            file,
            line,
            column,
            message,
        } => ManifestError::Syntax {
            file: file.clone(),
            line: *line,
            column: *column,
            message: message.clone(),
        },
        ManifestError::Document {
            file,
            doc_index,
            message,
        } => ManifestError::Document {
            file: file.clone(),
            doc_index: *doc_index,
            message: message.clone(),
        },
        ManifestError::Invalid {
            file,
            doc_index,
            error,
        } => ManifestError::Invalid {
            file: file.clone(),
            doc_index: *doc_index,
            error: error.clone(),
        },
        ManifestError::Duplicate {
            file,
            doc_index,
            item_index,
            namespace,
            name,
            first,
        } => ManifestError::Duplicate {
            file: file.clone(),
            doc_index: *doc_index,
            item_index: *item_index,
            namespace: namespace.clone(),
            name: name.clone(),
            first: first.clone(),
        },
    }
}

/// Reads manifest files under a size limit, remembering each file's parse
/// by its fingerprint (device, inode, size, mtime, ctime).
#[derive(Debug)]
pub struct FileReader {
    max_size: u64,
    /// Unknown or duplicate fields: refused, or only logged.
    validation: ManifestValidation,
    racy: Duration,
    /// Each file's last outcome, with its fingerprint when it can be
    /// trusted (the file was not changed just before it was read). An
    /// untrusted one is read again, but its pods are still shared with the
    /// new parse where they are equal.
    cache: HashMap<PathBuf, (Option<Fingerprint>, Outcome)>,
    /// Files read (not reused) since the last [`FileReader::take_reads`].
    reads: usize,
}

impl Default for FileReader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SIZE)
    }
}

impl FileReader {
    /// A reader refusing files over `max_size` bytes.
    pub fn new(max_size: u64) -> Self {
        Self::with_racy_window(max_size, RACY_WINDOW)
    }

    /// Parses as `--manifest-validation` says (strict by default).
    pub fn with_validation(mut self, validation: ManifestValidation) -> Self {
        self.validation = validation;
        self
    }

    /// [`FileReader::new`], reusing the parse of files changed more than
    /// `racy` before they were read (tests use zero).
    pub fn with_racy_window(max_size: u64, racy: Duration) -> Self {
        Self {
            max_size,
            validation: ManifestValidation::Strict,
            racy,
            cache: HashMap::new(),
            reads: 0,
        }
    }

    /// How many files were read and parsed (not reused) since the last call.
    pub fn take_reads(&mut self) -> usize {
        std::mem::take(&mut self.reads)
    }

    /// Forgets every file not in `keep`.
    pub(super) fn retain(&mut self, keep: &[PathBuf]) {
        self.cache.retain(|path, _| keep.contains(path));
    }

    /// What `path` holds. Blocking (`std::fs`).
    pub fn read(&mut self, path: &Path) -> Outcome {
        let failed = |source: io::Error| {
            Outcome::Failed(ManifestError::ReadFile {
                file: path.to_path_buf(),
                source,
            })
        };
        // The type first: only a regular file is ever opened.
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.raw_os_error() == Some(ELOOP) => {
                return Outcome::Skipped(Skip::SymlinkLoop)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                return if link {
                    Outcome::Skipped(Skip::Dangling)
                } else {
                    Outcome::Gone
                };
            }
            Err(e) => return failed(e),
        };
        if let Some(skip) = skip_of(&meta) {
            return Outcome::Skipped(skip);
        }
        if meta.len() > self.max_size {
            return failed(self.too_large(meta.len()));
        }
        if let Some((Some(fp), outcome)) = self.cache.get(path) {
            if *fp == Fingerprint::of(&meta) {
                return outcome.copy();
            }
        }
        let started = SystemTime::now();
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Outcome::Gone,
            Err(e) => return failed(e),
        };
        // What was opened, which may have been replaced since the stat.
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return failed(e),
        };
        if let Some(skip) = skip_of(&meta) {
            return Outcome::Skipped(skip);
        }
        let mut bytes = Vec::new();
        // At most one byte over the limit: a growing file is caught too.
        let limit = self.max_size.saturating_add(1);
        if let Err(e) = file.take(limit).read_to_end(&mut bytes) {
            return failed(e);
        }
        if bytes.len() as u64 > self.max_size {
            return failed(self.too_large(bytes.len() as u64));
        }
        self.reads += 1;
        let mut outcome = match String::from_utf8(bytes) {
            Err(_) => failed(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )),
            Ok(text) if is_blank(&text) => Outcome::Blank,
            Ok(text) => match parse_file_with(path, &text, self.validation) {
                Ok(pods) => Outcome::Pods(pods),
                Err(e) => Outcome::Failed(e),
            },
        };
        if let (Outcome::Pods(new), Some((_, Outcome::Pods(old)))) =
            (&mut outcome, self.cache.get(path))
        {
            share_unchanged(new, old);
        }
        let fp = Fingerprint::of(&meta);
        let trusted = !fp.recent(started, self.racy);
        self.cache
            .insert(path.to_path_buf(), (trusted.then_some(fp), outcome.copy()));
        outcome
    }

    fn too_large(&self, size: u64) -> io::Error {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "{size} bytes or more, over the limit of {} bytes (--max-manifest-size); not read",
                self.max_size
            ),
        )
    }
}

/// Gives each pod of a new parse that equals the pod at the same place in
/// the last parse that pod's spec: a file read again (changed, touched, or
/// written just before it was read) keeps one copy of each unchanged pod,
/// shared with everything that holds the last one.
fn share_unchanged(new: &mut [ManifestPod], old: &[ManifestPod]) {
    for p in new {
        let same = old
            .iter()
            .find(|o| (o.doc_index, o.item_index) == (p.doc_index, p.item_index) && o.pod == p.pod);
        if let Some(o) = same {
            p.pod = o.pod.clone();
        }
    }
}

/// Why an entry of this type is not read, if it is not a regular file.
fn skip_of(meta: &Metadata) -> Option<Skip> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some(Skip::Directory)
    } else if t.is_fifo() {
        Some(Skip::Special("a FIFO"))
    } else if t.is_socket() {
        Some(Skip::Special("a socket"))
    } else if t.is_char_device() {
        Some(Skip::Special("a character device"))
    } else if t.is_block_device() {
        Some(Skip::Special("a block device"))
    } else {
        Some(Skip::Special("not a file"))
    }
}

/// Whether a manifest holds nothing: whitespace, comments and document
/// markers (`---`, `...`) only.
pub fn is_blank(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').lines().all(|line| {
        let line = line.trim();
        let rest = line
            .strip_prefix("---")
            .or_else(|| line.strip_prefix("..."))
            .unwrap_or(line)
            .trim_start();
        rest.is_empty() || rest.starts_with('#')
    })
}
