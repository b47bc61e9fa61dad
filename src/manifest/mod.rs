//! Reading static pod manifests from a directory.
//!
//! Every file of a manifest directory is a manifest, as the kubelet reads
//! it, but dot-files and editor leftovers ([`ignored_name`]); `*.json` files
//! are JSON, the others YAML. A YAML file holds one
//! or more `---`-separated documents, a JSON file exactly one. Each document is a `v1`
//! `Pod` or a `v1` `List` whose `items` are Pods (as `kubectl get -o yaml` writes); empty
//! documents are skipped. Pods get the API server's defaults ([`apply_defaults`]) and are
//! then validated ([`validate_pod`]).
//!
//! A file is all-or-nothing: one bad document rejects the whole file (a half-applied file
//! surprises users), while the other files still load. When two documents define the same
//! `namespace/name`, the first one in sorted file order, then document order, wins.
//!
//! - `scan`: the directory, which file names are manifests, duplicates across files;
//! - `parse`: one file's documents to pods (`Pod` or `List`), errors with lines;
//! - `yaml11`: plain YAML scalars as kubectl reads them (`010` is 8, `yes`
//!   is true: YAML 1.1), so a file means what `kubectl apply` makes of it;
//! - `strict`: unknown and duplicate fields, refused or warned about
//!   (`--manifest-validation`), as `kubectl apply`'s strict validation;
//! - `defaults`: [`apply_defaults`]; `validate`: [`validate_pod`];
//! - `field_error`: [`FieldError`] and the name rules the validators share
//!   ([`is_dns1123_label`], [`is_dns1123_subdomain`]).

mod defaults;
mod field_error;
mod parse;
mod scan;
mod strict;
#[cfg(test)]
mod test_support;
mod validate;
mod yaml11;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::model::PodExt;

pub use defaults::apply_defaults;
pub use field_error::{is_dns1123_label, is_dns1123_subdomain, FieldError};
pub use parse::{parse_file, parse_file_with};
pub use scan::{
    ignored_name, is_blank, is_manifest_file, scan_dir, scan_dir_preferring, scan_dir_with,
    scan_files, FileReader, Ignored, Outcome, ScanResult, Skip, DEFAULT_MAX_SIZE, RACY_WINDOW,
};
pub use validate::validate_pod;
pub use yaml11::to_yaml;

/// A validated, defaulted pod and where it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestPod {
    /// The pod, with [`apply_defaults`] applied; `metadata.name` and
    /// `metadata.namespace` are set. Shared: the reader's cache, the
    /// source's memory and the desired set hold one copy between them.
    pub pod: Arc<Pod>,
    /// The file it came from (the scanned directory joined with the file name).
    pub file: PathBuf,
    /// 0-based index of the document in the file (empty documents count too).
    pub doc_index: usize,
    /// Index in the `items` of a `List` document, `None` for a `Pod` document.
    pub item_index: Option<usize>,
}

impl ManifestPod {
    /// The pod's namespace (always set after defaulting).
    pub fn namespace(&self) -> &str {
        PodExt::namespace(&*self.pod)
    }

    /// The pod's name (always set after validation).
    pub fn name(&self) -> &str {
        PodExt::name(&*self.pod)
    }
}

/// Why a directory, a file, a document or a pod was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest directory does not exist or cannot be listed.
    #[error("{}: cannot read manifest directory: {source}", .dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A manifest file cannot be read (or is not UTF-8).
    #[error("{}: cannot read file: {source}", .file.display())]
    ReadFile {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// YAML/JSON syntax error, or a document whose `apiVersion`/`kind` cannot be read.
    #[error("{}: line {line} column {column}: {message}", .file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message, without the location.
        message: String,
    },
    /// A document that cannot be decoded as a Pod / List of Pods, or of an unsupported kind.
    #[error("{}: document {doc_index}: {message}", .file.display())]
    Document {
        /// The file.
        file: PathBuf,
        /// 0-based document index.
        doc_index: usize,
        /// What is wrong (decoding errors include the line).
        message: String,
    },
    /// A pod that fails validation. For `List` items the path starts with `items[N].`.
    #[error("{}: document {doc_index}: {error}", .file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 0-based document index.
        doc_index: usize,
        /// The failing field.
        error: FieldError,
    },
    /// A pod whose `namespace/name` was already defined earlier; only this pod is refused.
    #[error(
        "{}: {}: pod {namespace}/{name} is already defined in {first}",
        .file.display(), doc_ref(*.doc_index, *.item_index)
    )]
    Duplicate {
        /// The file of the refused pod.
        file: PathBuf,
        /// Document index of the refused pod.
        doc_index: usize,
        /// `List` item index of the refused pod.
        item_index: Option<usize>,
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// Where the pod that was kept comes from.
        first: Box<PodSource>,
    },
}

/// Where a pod was defined; displays as `a.yaml (document 0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSource {
    /// The file.
    pub file: PathBuf,
    /// 0-based document index.
    pub doc_index: usize,
    /// `List` item index, `None` for a `Pod` document.
    pub item_index: Option<usize>,
}

impl fmt::Display for PodSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doc = doc_ref(self.doc_index, self.item_index);
        write!(f, "{} ({doc})", self.file.display())
    }
}

impl ManifestError {
    /// The file (or, for [`ManifestError::ReadDir`], the directory) the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Self::ReadDir { dir, .. } => dir,
            Self::ReadFile { file, .. }
            | Self::Syntax { file, .. }
            | Self::Document { file, .. }
            | Self::Invalid { file, .. }
            | Self::Duplicate { file, .. } => file,
        }
    }
    /// The variant, as a metric label (`podvisor_manifest_errors_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ReadDir { .. } => "read_dir",
            Self::ReadFile { .. } => "read_file",
            Self::Syntax { .. } => "syntax",
            Self::Document { .. } => "document",
            Self::Invalid { .. } => "invalid",
            Self::Duplicate { .. } => "duplicate",
        }
    }
}

fn doc_ref(doc_index: usize, item_index: Option<usize>) -> String {
    match item_index {
        Some(item) => format!("document {doc_index}, items[{item}]"),
        None => format!("document {doc_index}"),
    }
}
