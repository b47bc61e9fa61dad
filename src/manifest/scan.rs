//! The directory scan: which files are manifests, in which order they are
//! read, and which of two documents defining one pod wins.

use std::collections::{hash_map::Entry, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::{parse_file_with, ManifestError, ManifestPod, PodSource};
use crate::settings::ManifestValidation;

/// Everything [`scan_dir`] found: the pods that load, and why the others don't.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Pods in sorted file order, then document order; `namespace/name` is unique.
    pub pods: Vec<ManifestPod>,
    /// Unreadable directory or files, rejected files and refused duplicate pods.
    pub errors: Vec<ManifestError>,
}

/// Whether `path`'s file name looks like a manifest: a `.yaml`, `.yml` or `.json` extension
/// (any case), and not a dot-file or an editor leftover (`*~`, `*.swp`, `*.swx`, `.#*`,
/// `#*#`). Looks at the name only, not at the file system.
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // Editor leftovers (`a.yaml~`, `a.yaml.swp`, `#a.yaml#`) fail the extension test;
    // `.#a.yaml` and `.a.yaml.swx` are dot-files.
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let known = ["yaml", "yml", "json"]
        .iter()
        .any(|e| ext.eq_ignore_ascii_case(e));
    known && !name.starts_with('.')
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
    scan_dir_preferring_with(dir, prefer, ManifestValidation::Strict)
}

/// [`scan_dir_preferring`], with unknown and duplicate fields refused or
/// only logged, as `validation` says (see [`parse_file_with`]).
pub fn scan_dir_preferring_with(
    dir: &Path,
    prefer: &HashMap<(String, String), PathBuf>,
    validation: ManifestValidation,
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
    files.retain(|path| is_manifest_file(path) && path.is_file());
    files.sort();

    let mut parsed_files = Vec::new();
    for file in files {
        let parsed = fs::read_to_string(&file)
            .map_err(|source| ManifestError::ReadFile {
                file: file.clone(),
                source,
            })
            .and_then(|content| parse_file_with(&file, &content, validation));
        match parsed {
            Ok(pods) => parsed_files.push(pods),
            Err(err) => result.errors.push(err),
        }
    }

    // (namespace, name) -> the pod that wins: the preferred owner's when
    // it still declares the pod, else the first in file order.
    let mut winner: HashMap<(String, String), (PathBuf, usize, Option<usize>)> = HashMap::new();
    for mp in parsed_files.iter().flatten() {
        let key = (mp.namespace().to_owned(), mp.name().to_owned());
        let preferred = prefer.get(&key) == Some(&mp.file);
        match winner.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert((mp.file.clone(), mp.doc_index, mp.item_index));
            }
            Entry::Occupied(mut slot) if preferred => {
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
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::test_support::*;

    #[test]
    fn manifest_file_names() {
        for good in ["a.yaml", "a.yml", "dir/a.json", "A.YAML"] {
            assert!(is_manifest_file(Path::new(good)), "{good}");
        }
        let bad = [
            ".a.yaml",
            "a.yaml~",
            "a.yaml.swp",
            ".a.yaml.swx",
            ".#a.yaml",
            "#a.yaml#",
            "a.txt",
            "a",
            "yaml",
        ];
        for bad in bad {
            assert!(!is_manifest_file(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn scan_ignores_leftovers_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            ".hidden.yaml",
            "web.yaml~",
            ".web.yaml.swp",
            ".#web.yaml",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), "not: [valid").expect("write");
        }
        fs::create_dir(dir.path().join("sub.yaml")).expect("mkdir");
        fs::write(dir.path().join("web.yaml"), WEB).expect("write");
        let result = scan_dir(dir.path());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(names(&result.pods), ["web"]);
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
}
