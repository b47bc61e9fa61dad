//! What the unit tests of the settings share: a clap command around [`RunArgs`] and a fixture
//! that resolves flags against a temporary manifest directory and `HOME`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use tempfile::TempDir;

use super::{resolve, RunArgs, Settings, SettingsError};

#[derive(clap::Parser)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) run: RunArgs,
}

/// A manifest directory, a HOME without docker config, and helpers to resolve.
pub(super) struct Fixture {
    pub(super) dir: TempDir,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        Fixture {
            dir: TempDir::new().expect("tempdir"),
        }
    }

    pub(super) fn manifests(&self) -> PathBuf {
        let path = self.dir.path().join("manifests");
        std::fs::create_dir_all(&path).expect("mkdir");
        path
    }

    pub(super) fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    pub(super) fn env(&self, vars: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("HOME".into())
            .or_insert_with(|| self.dir.path().display().to_string());
        env
    }

    /// Resolves `flags` after `--pod-manifest-path=<tempdir> --node-name=n1` (a flag given
    /// twice: the last wins).
    pub(super) fn resolve(
        &self,
        flags: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Settings, SettingsError> {
        let mut argv = vec![
            "podvisor".to_string(),
            format!("--pod-manifest-path={}", self.manifests().display()),
            "--node-name=n1".to_string(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        let args = Cli::try_parse_from(argv).expect("flags parse").run;
        resolve(&args, &self.env(vars))
    }
}

pub(super) fn err(result: Result<Settings, SettingsError>) -> String {
    result.expect_err("should be refused").to_string()
}
