//! The directory scan: which files are manifests, in which order they are
//! read, and which of two documents defining one pod wins.
//!
//! `read` turns one entry into what it holds: only regular files are read,
//! under the size limit, and a file unchanged since its last parse is not
//! read again ([`FileReader`]).

mod read;

use std::collections::{hash_map::Entry, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::{ManifestError, ManifestPod, PodSource};

pub use read::{is_blank, FileReader, Outcome, Skip, DEFAULT_MAX_SIZE, RACY_WINDOW};

/// Everything [`scan_dir`] found: the pods that load, and why the others don't.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Pods in sorted file order, then document order; `namespace/name` is unique.
    pub pods: Vec<ManifestPod>,
    /// Unreadable directory or files, rejected files and refused duplicate pods.
    pub errors: Vec<ManifestError>,
    /// Files that are empty, or comments only: they declare nothing, and
    /// are no valid edit of a file whose pods ran.
    pub blank: Vec<PathBuf>,
    /// Entries with a manifest's name that are not regular files.
    pub skipped: Vec<(PathBuf, Skip)>,
    /// Entries not read for their name (dot-files, editor leftovers), in
    /// sorted order; podvisor's own temporary files are left out.
    pub ignored: Vec<(PathBuf, Ignored)>,
}

/// Why a directory entry is not read, by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ignored {
    /// A dot-file (as the kubelet, which reads every other file). The
    /// API's own temporary files (`.NAME.tmp-PID`) are dot-files too.
    Hidden,
    /// An editor's or package manager's leftover beside the real file.
    Leftover,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ignored::Hidden => "is a hidden file (its name starts with \".\"); not read",
            Ignored::Leftover => {
                "looks like an editor or package manager leftover (*~, #*#, .swp, .swo, .swx, \
                 .bak, .orig, .rej, .tmp, .dpkg-*, .rpmnew, .rpmsave); not read"
            }
        })
    }
}

/// Endings of editor and package manager leftovers (any case).
const LEFTOVER_ENDINGS: &[&str] = &[
    "~",
    ".swp",
    ".swo",
    ".swx",
    ".bak",
    ".orig",
    ".rej",
    ".tmp",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-tmp",
    ".rpmnew",
    ".rpmsave",
];

/// Why `path` is not read, by its file name: a dot-file, or an editor
/// leftover (`a.yaml~`, `#a.yaml#`, `a.yaml.swp`, `a.yaml.bak`, ...). Every
/// other name is a manifest, whatever its extension (`kube-apiserver.manifest`
/// as GCE ships them, no extension at all): the kubelet reads every file
/// that is not hidden. Looks at the name only, not at the file system.
pub fn ignored_name(path: &Path) -> Option<Ignored> {
    let name = path.file_name()?.to_string_lossy();
    let lower = name.to_ascii_lowercase();
    if name.starts_with('.') {
        Some(Ignored::Hidden)
    } else if (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
        || LEFTOVER_ENDINGS.iter().any(|e| lower.ends_with(e))
    {
        Some(Ignored::Leftover)
    } else {
        None
    }
}

/// Whether `path`'s file name is a manifest's: anything but a dot-file or
/// an editor leftover ([`ignored_name`]). JSON is read as such when the
/// name ends in `.json`; every other file is read as YAML (a superset of
/// JSON).
pub fn is_manifest_file(path: &Path) -> bool {
    path.file_name().is_some() && ignored_name(path).is_none()
}

/// Whether a hidden file is one of podvisor's own temporary files (the
/// API writes `.NAME.tmp-PID`, then renames it; so do many tools), which
/// is not worth a note.
fn own_temporary(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with('.') && n.contains(".tmp"))
}

/// Reads every manifest file of `dir` (non-recursive) in sorted file-name order.
///
/// Blocking (`std::fs`): call it from `spawn_blocking`. A missing or unreadable `dir`
/// yields no pods and one [`ManifestError::ReadDir`].
pub fn scan_dir(dir: &Path) -> ScanResult {
    scan_dir_preferring(dir, &HashMap::new())
}

/// [`scan_dir`], where a pod declared in several files goes to the file
/// `prefer` names for it (the file that declared it first, as the caller
/// remembers it) as long as that file still declares it.
pub fn scan_dir_preferring(dir: &Path, prefer: &HashMap<(String, String), PathBuf>) -> ScanResult {
    scan_dir_with(dir, prefer, &mut FileReader::default())
}

/// [`scan_dir_preferring`], reading through `reader` (its size limit, and
/// the parses of files unchanged since it last read them).
pub fn scan_dir_with(
    dir: &Path,
    prefer: &HashMap<(String, String), PathBuf>,
    reader: &mut FileReader,
) -> ScanResult {
    let mut result = ScanResult::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            let dir = dir.to_path_buf();
            result.errors.push(ManifestError::ReadDir { dir, source });
            return result;
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => files.push(entry.path()),
            Err(source) => {
                let dir = dir.to_path_buf();
                result.errors.push(ManifestError::ReadDir { dir, source });
            }
        }
    }
    files.sort();
    files.retain(|path| match ignored_name(path) {
        Some(why) => {
            if !own_temporary(path) {
                result.ignored.push((path.clone(), why));
            }
            false
        }
        None => path.file_name().is_some(),
    });
    reader.retain(&files);
    read_files(files, prefer, reader, &mut result);
    result
}

/// Reads `files` in the order given, as [`scan_dir`] reads a directory's
/// (`podvisor validate` passes files and directories named on its command
/// line): each file all-or-nothing, and a pod declared twice kept once.
pub fn scan_files(files: Vec<PathBuf>, reader: &mut FileReader) -> ScanResult {
    let mut result = ScanResult::default();
    read_files(files, &HashMap::new(), reader, &mut result);
    result
}

/// Reads `files` into `result`: the pods that load, a duplicate refused
/// unless its file is the one `prefer` names for it.
fn read_files(
    files: Vec<PathBuf>,
    prefer: &HashMap<(String, String), PathBuf>,
    reader: &mut FileReader,
    result: &mut ScanResult,
) {
    let mut parsed_files = Vec::new();
    for file in files {
        match reader.read(&file) {
            Outcome::Pods(pods) => parsed_files.push(pods),
            Outcome::Blank => result.blank.push(file),
            Outcome::Failed(err) => result.errors.push(err),
            Outcome::Skipped(skip) => result.skipped.push((file, skip)),
            Outcome::Gone => {}
        }
    }

    // (namespace, name) -> the pod that wins: the preferred owner's when
    // it still declares the pod, else the first in file order; within one
    // file, always the first document.
    let mut winner: HashMap<(String, String), (PathBuf, usize, Option<usize>)> = HashMap::new();
    for mp in parsed_files.iter().flatten() {
        let key = (mp.namespace().to_owned(), mp.name().to_owned());
        let preferred = prefer.get(&key) == Some(&mp.file);
        match winner.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert((mp.file.clone(), mp.doc_index, mp.item_index));
            }
            Entry::Occupied(mut slot) if preferred && slot.get().0 != mp.file => {
                slot.insert((mp.file.clone(), mp.doc_index, mp.item_index));
            }
            Entry::Occupied(_) => {}
        }
    }
    for mp in parsed_files.into_iter().flatten() {
        let key = (mp.namespace().to_owned(), mp.name().to_owned());
        let Some((file, doc_index, item_index)) = winner.get(&key) else {
            continue;
        };
        if (file, *doc_index, *item_index) == (&mp.file, mp.doc_index, mp.item_index) {
            result.pods.push(mp);
            continue;
        }
        let (namespace, name) = key;
        result.errors.push(ManifestError::Duplicate {
            file: mp.file,
            doc_index: mp.doc_index,
            item_index: mp.item_index,
            namespace,
            name,
            first: Box::new(PodSource {
                file: file.clone(),
                doc_index: *doc_index,
                item_index: *item_index,
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::test_support::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn manifest_file_names() {
        for good in [
            "a.yaml",
            "a.yml",
            "dir/a.json",
            "A.YAML",
            "kube-apiserver.manifest",
            "etcd",
            "notes.txt",
            "a~b.yaml",
        ] {
            assert!(is_manifest_file(Path::new(good)), "{good}");
        }
        let hidden = [".a.yaml", ".a.yaml.swx", ".#a.yaml", ".a.yaml.tmp-42"];
        for name in hidden {
            assert_eq!(
                ignored_name(Path::new(name)),
                Some(Ignored::Hidden),
                "{name}"
            );
        }
        let leftovers = [
            "a.yaml~",
            "a.yaml.swp",
            "a.manifest.SWO",
            "#a.yaml#",
            "a.yaml.bak",
            "a.yaml.orig",
            "a.yaml.rej",
            "a.yaml.tmp",
            "a.yaml.dpkg-old",
            "a.yaml.rpmnew",
        ];
        for name in leftovers {
            assert_eq!(
                ignored_name(Path::new(name)),
                Some(Ignored::Leftover),
                "{name}"
            );
        }
    }

    #[test]
    fn scan_reads_every_file_but_hidden_ones_and_leftovers_and_names_those() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            ".hidden.yaml",
            "web.yaml~",
            ".web.yaml.swp",
            ".#web.yaml",
            "#web.yaml#",
            ".web.yaml.tmp-7",
        ] {
            fs::write(dir.path().join(name), "not: [valid").expect("write");
        }
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(dir.path().join("web.yaml"), WEB).expect("write");
        fs::write(dir.path().join("db.manifest"), pod_yaml("db", "")).expect("write");
        fs::write(dir.path().join("cache"), pod_yaml("cache", "")).expect("write");
        let result = scan_dir(dir.path());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(names(&result.pods), ["cache", "db", "web"]);
        assert_eq!(
            result.skipped,
            [(dir.path().join("sub"), Skip::Directory)],
            "the directory is named once, as skipped"
        );
        let ignored: Vec<_> = result
            .ignored
            .iter()
            .map(|(p, why)| (p.file_name().unwrap().to_string_lossy().into_owned(), *why))
            .collect();
        let want = [
            ("#web.yaml#", Ignored::Leftover),
            (".#web.yaml", Ignored::Hidden),
            (".hidden.yaml", Ignored::Hidden),
            (".web.yaml.swp", Ignored::Hidden),
            ("web.yaml~", Ignored::Leftover),
        ];
        let want: Vec<_> = want.iter().map(|(n, w)| (n.to_string(), *w)).collect();
        assert_eq!(ignored, want, "the API's own temporary file is not named");
    }

    #[test]
    fn scan_loads_good_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("a-bad.yaml"),
            format!("{WEB}---\nkind: Deployment\napiVersion: apps/v1\n"),
        )
        .expect("write");
        fs::write(dir.path().join("b-good.yml"), pod_yaml("db", "")).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["db"]);
        assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        let bad = dir.path().join("a-bad.yaml");
        assert_eq!(result.errors[0].file(), bad);
        assert!(result.errors[0]
            .to_string()
            .starts_with(&format!("{}: document 1: ", bad.display())));
    }

    #[test]
    fn scan_is_in_sorted_file_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["c", "a", "b"] {
            fs::write(dir.path().join(format!("{name}.yaml")), pod_yaml(name, "")).expect("write");
        }
        assert_eq!(names(&scan_dir(dir.path()).pods), ["a", "b", "c"]);
    }

    #[test]
    fn duplicate_pod_across_files_names_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        let b = format!("{}---\n{WEB}", pod_yaml("other", ""));
        fs::write(dir.path().join("b.yaml"), b).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["web", "other"]);
        assert_eq!(result.pods[0].file, dir.path().join("a.yaml"));
        assert_eq!(result.errors.len(), 1);
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        assert_eq!(
            result.errors[0].to_string(),
            format!(
                "{}: document 1: pod default/web is already defined in {} (document 0)",
                b.display(),
                a.display()
            )
        );
    }

    #[test]
    fn duplicate_pod_within_a_file_refuses_only_that_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let content = format!("{WEB}---\n{}---\n{WEB}", pod_yaml("db", ""));
        fs::write(dir.path().join("a.yaml"), content).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["web", "db"]);
        let err = result.errors[0].to_string();
        assert!(err.ends_with("a.yaml (document 0)"), "{err}");
        assert!(err.contains("a.yaml: document 2: pod default/web"), "{err}");
    }

    #[test]
    fn same_name_in_other_namespace_is_no_duplicate() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        let other = WEB.replace("  name: web\n", "  name: web\n  namespace: ops\n");
        fs::write(dir.path().join("b.yaml"), other).expect("write");
        let result = scan_dir(dir.path());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(result.pods.len(), 2);
    }

    #[test]
    fn missing_dir_is_one_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let result = scan_dir(&missing);
        assert!(result.pods.is_empty());
        assert_eq!(result.errors.len(), 1);
        assert!(matches!(result.errors[0], ManifestError::ReadDir { .. }));
        let err = result.errors[0].to_string();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00]).expect("write");
        let result = scan_dir(dir.path());
        assert!(
            matches!(result.errors[..], [ManifestError::ReadFile { .. }]),
            "{:?}",
            result.errors
        );
    }

    #[test]
    fn a_pod_twice_in_one_file_keeps_its_first_document_across_rescans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let second = WEB.replace("nginx:1.27", "nginx:2");
        let content = format!("{WEB}---\n{}---\n{second}", pod_yaml("db", ""));
        fs::write(dir.path().join("a.yaml"), content).expect("write");
        let a = dir.path().join("a.yaml");
        let key = ("default".to_string(), "web".to_string());
        // The first scan (a start), then rescans preferring the owner file.
        let mut prefer = HashMap::new();
        for round in 0..3 {
            let result = scan_dir_preferring(dir.path(), &prefer);
            let web = result.pods.iter().find(|p| p.name() == "web").expect("web");
            assert_eq!(web.doc_index, 0, "round {round}: the first document wins");
            let err = result.errors[0].to_string();
            assert_eq!(
                err,
                format!(
                    "{}: document 2: pod default/web is already defined in {} (document 0)",
                    a.display(),
                    a.display()
                ),
                "round {round}"
            );
            prefer.insert(key.clone(), a.clone());
        }
    }

    #[test]
    fn empty_and_comment_only_files_are_blank() {
        for blank in [
            "",
            "\n \n",
            "# only a comment\n",
            "---\n# c\n...\n",
            "--- # c\n",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for text in [WEB, "{}", "--- !!map\n", "x: 1 # c\n"] {
            assert!(!is_blank(text), "{text:?}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.yaml"), "").expect("write");
        fs::write(dir.path().join("b.yaml"), "# later\n").expect("write");
        fs::write(dir.path().join("c.json"), " \n").expect("write");
        let result = scan_dir(dir.path());
        assert!(result.pods.is_empty() && result.errors.is_empty());
        let blank: Vec<_> = ["a.yaml", "b.yaml", "c.json"]
            .map(|f| dir.path().join(f))
            .into();
        assert_eq!(result.blank, blank);
    }

    /// Scans in a thread: a scan that blocks fails the test, not the run.
    fn scan_within(dir: &Path, reader: FileReader) -> ScanResult {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let mut reader = reader;
            let _ = tx.send(scan_dir_with(&dir, &HashMap::new(), &mut reader));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the scan finishes (a FIFO must not be opened)")
    }

    #[test]
    fn odd_entries_are_skipped_with_their_reason_and_never_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |f: &str| dir.path().join(f);
        fs::write(p("web.yaml"), WEB).expect("write");
        fs::create_dir(p("dir.yaml")).expect("mkdir");
        let made = std::process::Command::new("mkfifo")
            .arg(p("fifo.yaml"))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        std::os::unix::fs::symlink(p("loop.yaml"), p("loop.yaml")).expect("symlink");
        std::os::unix::fs::symlink(p("nothing"), p("dangling.yaml")).expect("symlink");
        std::os::unix::fs::symlink(p("web.yaml"), p("zlink.yaml")).expect("symlink");
        let result = scan_within(dir.path(), FileReader::default());
        let mut skipped = result.skipped.clone();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                (p("dangling.yaml"), Skip::Dangling),
                (p("dir.yaml"), Skip::Directory),
                (p("fifo.yaml"), Skip::Special("a FIFO")),
                (p("loop.yaml"), Skip::SymlinkLoop),
            ]
        );
        assert_eq!(
            format!("{}", Skip::Special("a FIFO")),
            "is a FIFO, not a regular file; not read"
        );
        // A symlink to a regular file is read: the same pod twice.
        assert_eq!(names(&result.pods), ["web"]);
        assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        assert!(result.errors[0].to_string().contains("zlink.yaml"));
    }

    #[test]
    fn files_over_the_size_limit_are_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit = WEB.len() as u64;
        fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        fs::write(dir.path().join("b.yaml"), format!("{WEB}\n")).expect("write");
        let result = scan_within(dir.path(), FileReader::new(limit));
        assert_eq!(names(&result.pods), ["web"], "a file at the limit is read");
        let [err] = &result.errors[..] else {
            panic!("{:?}", result.errors);
        };
        assert!(
            matches!(err, ManifestError::ReadFile { source, .. } if source.kind() == std::io::ErrorKind::FileTooLarge),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("b.yaml") && msg.contains("--max-manifest-size"),
            "{msg}"
        );
    }

    #[test]
    fn unchanged_files_are_not_parsed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.yaml");
        fs::write(&a, WEB).expect("write");
        fs::write(dir.path().join("b.yaml"), "{ broken").expect("write");
        let mut reader = FileReader::with_racy_window(DEFAULT_MAX_SIZE, Duration::ZERO);
        let scan = |reader: &mut FileReader| {
            let result = scan_dir_with(dir.path(), &HashMap::new(), reader);
            (
                names(&result.pods).join(","),
                result.errors.len(),
                reader.take_reads(),
            )
        };
        assert_eq!(scan(&mut reader), ("web".into(), 1, 2));
        assert_eq!(
            scan(&mut reader),
            ("web".into(), 1, 0),
            "nothing read again"
        );
        fs::write(&a, pod_yaml("db", "")).expect("write");
        assert_eq!(
            scan(&mut reader),
            ("db".into(), 1, 1),
            "the changed file is read"
        );
        // A file changed just now may change again unseen: read every time.
        let mut fresh = FileReader::default();
        assert_eq!(scan(&mut fresh).2, 2);
        assert_eq!(scan(&mut fresh).2, 2);
    }

    #[test]
    fn a_file_read_again_shares_its_unchanged_pods_with_the_last_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.yaml");
        let two =
            |db_image: &str| format!("{}---\n{}", pod_yaml("web", ""), pod_yaml("db", db_image));
        fs::write(&a, two("")).expect("write");
        // Every read is racy here (the default window): the file is read
        // and parsed each time.
        let mut reader = FileReader::default();
        let Outcome::Pods(first) = reader.read(&a) else {
            panic!("not parsed")
        };
        let Outcome::Pods(again) = reader.read(&a) else {
            panic!("not parsed")
        };
        assert_eq!(reader.take_reads(), 2, "read twice");
        assert!(Arc::ptr_eq(&first[0].pod, &again[0].pod));
        assert!(Arc::ptr_eq(&first[1].pod, &again[1].pod));
        // Only the changed pod is a new one.
        fs::write(&a, two("    env: [{name: X, value: z}]\n")).expect("write");
        let Outcome::Pods(edited) = reader.read(&a) else {
            panic!("not parsed")
        };
        assert!(Arc::ptr_eq(&first[0].pod, &edited[0].pod));
        assert!(!Arc::ptr_eq(&first[1].pod, &edited[1].pod));
        assert_ne!(first[1].pod, edited[1].pod);
    }
}
