//! `podvisor validate PATH…`: the daemon's parse, defaults and validation
//! of manifest files, offline.
//!
//! Each directory is read as the daemon reads its manifest directory
//! (every file but dot-files and editor leftovers, sorted, each skipped one
//! noted); a file named on the command line is
//! read whatever its name. A pod declared twice across everything given is
//! kept once, as the daemon keeps it. Problems are written one a line, as
//! the daemon logs them (`file: document N: field: message`), then a
//! summary; `-o yaml` writes the pods with their defaults.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::manifest::{
    ignored_name, scan_files, FileReader, Ignored, ManifestError, ScanResult, DEFAULT_MAX_SIZE,
};
use crate::settings::ManifestValidation;

/// Exit code when every manifest is valid.
pub const EXIT_OK: u8 = 0;
/// Exit code when a manifest has a problem.
pub const EXIT_PROBLEMS: u8 = 1;

/// `--manifest-validation` of `podvisor validate`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// Unknown or duplicate fields are problems.
    #[default]
    Strict,
    /// Unknown or duplicate fields are warned about only.
    Warn,
}

/// `-o` of `podvisor validate`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The pods, defaults applied, as a YAML stream.
    Yaml,
}

/// Checks Pod manifests as `podvisor run` would, without an engine.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Manifest files or directories (a directory's manifest files are read as the daemon reads them)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Unknown or duplicate manifest fields: strict (a problem) or warn (a warning)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Validation::Strict)]
    pub manifest_validation: Validation,
    /// Print the pods with defaults applied
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_enum)]
    pub output: Option<Output>,
}

/// What a validation found, ready to print.
#[derive(Debug)]
pub struct Report {
    /// For stdout (`-o yaml`), else empty.
    pub stdout: String,
    /// Problems, notes and the summary, for stderr.
    pub stderr: String,
    pub exit: u8,
}

/// Runs `podvisor validate`.
pub fn run(args: &ValidateArgs) -> Report {
    let validation = match args.manifest_validation {
        Validation::Strict => ManifestValidation::Strict,
        Validation::Warn => ManifestValidation::Warn,
    };
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let files = files_of(&args.paths, &mut errors, &mut ignored);
    let file_count = files.len();
    let mut reader = FileReader::new(DEFAULT_MAX_SIZE).with_validation(validation);
    let mut scan = scan_files(files, &mut reader);
    scan.ignored = ignored;
    errors.append(&mut scan.errors);
    scan.errors = errors;
    report(&scan, file_count, args.output)
}

/// The files to read: directories expanded (manifest names, sorted), the
/// others as given. A directory that cannot be listed is a problem.
fn files_of(
    paths: &[PathBuf],
    errors: &mut Vec<ManifestError>,
    ignored: &mut Vec<(PathBuf, Ignored)>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            // The reader takes a file gone since a listing for removed;
            // a file named here must exist.
            match fs::symlink_metadata(path) {
                Ok(_) => files.push(path.clone()),
                Err(source) => errors.push(ManifestError::ReadFile {
                    file: path.clone(),
                    source,
                }),
            }
            continue;
        }
        match list_dir(path, ignored) {
            Ok(mut found) => files.append(&mut found),
            Err(source) => errors.push(ManifestError::ReadDir {
                dir: path.clone(),
                source,
            }),
        }
    }
    files
}

/// A directory's manifest files, sorted, by the daemon's rule
/// ([`ignored_name`]); the others go to `ignored`.
fn list_dir(dir: &Path, ignored: &mut Vec<(PathBuf, Ignored)>) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        files.push(entry?.path());
    }
    files.sort();
    files.retain(|path| match ignored_name(path) {
        Some(why) => {
            ignored.push((path.clone(), why));
            false
        }
        None => true,
    });
    Ok(files)
}

/// The text of a validation: problems one a line, notes about skipped or
/// blank files, the summary last; the pods as YAML when asked.
pub fn report(scan: &ScanResult, file_count: usize, output: Option<Output>) -> Report {
    let mut stderr = String::new();
    for e in &scan.errors {
        let _ = writeln!(stderr, "{e}");
    }
    for file in &scan.blank {
        let _ = writeln!(
            stderr,
            "{}: note: the file is empty (or comments only); nothing to run",
            file.display()
        );
    }
    for (file, skip) in &scan.skipped {
        let _ = writeln!(stderr, "{}: note: {skip}", file.display());
    }
    for (file, why) in &scan.ignored {
        let _ = writeln!(stderr, "{}: note: {why}", file.display());
    }
    let pods = match scan.pods.len() {
        1 => "1 pod".to_string(),
        n => format!("{n} pods"),
    };
    let files = match file_count {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    let exit = if scan.errors.is_empty() {
        let _ = writeln!(stderr, "{pods} in {files} OK");
        EXIT_OK
    } else {
        let problems = match scan.errors.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        let _ = writeln!(stderr, "{problems} ({pods} in {files} OK)");
        EXIT_PROBLEMS
    };
    let mut stdout = String::new();
    if output == Some(Output::Yaml) {
        for mp in &scan.pods {
            match crate::manifest::to_yaml(&*mp.pod) {
                Ok(text) => {
                    stdout.push_str("---\n");
                    stdout.push_str(&text);
                }
                Err(e) => {
                    let _ = writeln!(
                        stderr,
                        "{}: document {}: pod {}/{}: cannot write as YAML: {e}",
                        mp.file.display(),
                        mp.doc_index,
                        mp.namespace(),
                        mp.name()
                    );
                }
            }
        }
    }
    Report {
        stdout,
        stderr,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  \
                       containers:\n  - name: app\n    image: busybox:1\n";

    fn args(paths: &[&Path], output: Option<Output>) -> ValidateArgs {
        ValidateArgs {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            manifest_validation: Validation::Strict,
            output,
        }
    }

    #[test]
    fn good_files_exit_zero_with_a_summary_and_yaml() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("web.yaml"), WEB).expect("write");
        fs::write(d.path().join("web.yaml~"), "not a manifest").expect("write");
        fs::write(d.path().join(".hidden"), "not a manifest").expect("write");
        fs::write(d.path().join("db.manifest"), WEB.replace("web", "db")).expect("write");
        let r = run(&args(&[d.path()], Some(Output::Yaml)));
        assert_eq!(r.exit, EXIT_OK, "{}", r.stderr);
        let (hidden, leftover) = (d.path().join(".hidden"), d.path().join("web.yaml~"));
        assert_eq!(
            r.stderr,
            format!(
                "{}: note: {}\n{}: note: {}\n2 pods in 2 files OK\n",
                hidden.display(),
                Ignored::Hidden,
                leftover.display(),
                Ignored::Leftover
            )
        );
        assert!(r.stdout.starts_with("---\n"), "{}", r.stdout);
        assert!(
            r.stdout.contains("imagePullPolicy: IfNotPresent"),
            "{}",
            r.stdout
        );
    }

    #[test]
    fn a_duplicate_across_named_files_is_a_problem() {
        let d = tempfile::tempdir().expect("tempdir");
        let (a, b) = (d.path().join("a.yaml"), d.path().join("b.yaml"));
        fs::write(&a, WEB).expect("write");
        fs::write(&b, WEB).expect("write");
        let r = run(&args(&[&b, &a], None));
        assert_eq!(r.exit, EXIT_PROBLEMS);
        let first = r.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "{}: document 0: pod default/web is already defined in {} (document 0)",
                a.display(),
                b.display()
            ),
            "the order given decides which one is kept"
        );
        assert!(
            r.stderr.ends_with("1 problem (1 pod in 2 files OK)\n"),
            "{}",
            r.stderr
        );
    }

    #[test]
    fn a_missing_file_is_a_problem_naming_it() {
        let r = run(&args(&[Path::new("/nonexistent/x.yaml")], None));
        assert_eq!(r.exit, EXIT_PROBLEMS);
        assert!(
            r.stderr
                .starts_with("/nonexistent/x.yaml: cannot read file"),
            "{}",
            r.stderr
        );
    }
}
