//! How far a pull is: the engine's per-layer progress lines
//! (`Pulling fs layer`, `Downloading` with bytes, `Pull complete`, …) added
//! up into layers and bytes done of the total, for the waiting message and
//! the Pulling event.

use std::collections::HashMap;
use std::fmt;

/// A pull's progress so far. `bytes_total` counts only the layers whose
/// size the engine has told (it tells a layer's size once its download
/// starts); a layer already present counts as done, with no bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub layers_done: usize,
    pub layers_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl PullProgress {
    /// Whether the engine has said anything about layers yet.
    pub fn started(&self) -> bool {
        self.layers_total > 0
    }
}

impl fmt::Display for PullProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} layers", self.layers_done, self.layers_total)?;
        if self.bytes_total > 0 {
            write!(
                f,
                ", {} of {}",
                mebibytes(self.bytes_done),
                mebibytes(self.bytes_total)
            )?;
        }
        Ok(())
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[derive(Debug, Default, Clone, Copy)]
struct Layer {
    done: bool,
    current: u64,
    total: u64,
}

/// Adds up the engine's progress lines, layer by layer.
#[derive(Debug, Default)]
pub struct LayerTracker {
    layers: HashMap<String, Layer>,
}

impl LayerTracker {
    /// Takes in one progress line: the layer `id`, its `status`, and the
    /// bytes `current`/`total` when given. Lines that are not about a layer
    /// (`Pulling from …`, `Digest: …`, `Status: …`) are ignored. Returns
    /// whether the summary may have changed.
    pub fn observe(
        &mut self,
        id: Option<&str>,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
    ) -> bool {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return false;
        };
        let kind = LayerStatus::of(status);
        if kind == LayerStatus::Other {
            return false;
        }
        let layer = self.layers.entry(id.to_string()).or_default();
        let bytes = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        match kind {
            LayerStatus::Downloading => {
                if let Some(t) = bytes(total).filter(|t| *t > 0) {
                    layer.total = t;
                }
                if let Some(c) = bytes(current) {
                    layer.current = match layer.total {
                        0 => c,
                        t => c.min(t),
                    };
                }
            }
            LayerStatus::Downloaded => layer.current = layer.total,
            LayerStatus::Complete => {
                layer.done = true;
                layer.current = layer.total;
            }
            LayerStatus::Announced | LayerStatus::Other => {}
        }
        true
    }

    pub fn summary(&self) -> PullProgress {
        let mut p = PullProgress {
            layers_total: self.layers.len(),
            ..Default::default()
        };
        for l in self.layers.values() {
            p.layers_done += usize::from(l.done);
            p.bytes_done += l.current;
            p.bytes_total += l.total;
        }
        p
    }
}

/// The layer statuses the engine (its distribution code) prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerStatus {
    /// `Pulling fs layer`, `Waiting`, `Retrying in N seconds`.
    Announced,
    /// `Downloading` (with bytes).
    Downloading,
    /// `Verifying Checksum`, `Download complete`, `Extracting`.
    Downloaded,
    /// `Pull complete`, `Already exists`.
    Complete,
    Other,
}

impl LayerStatus {
    fn of(status: &str) -> Self {
        match status {
            "Pulling fs layer" | "Waiting" => Self::Announced,
            s if s.starts_with("Retrying in") => Self::Announced,
            "Downloading" => Self::Downloading,
            "Verifying Checksum" | "Download complete" | "Extracting" => Self::Downloaded,
            "Pull complete" | "Already exists" => Self::Complete,
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `docker pull` of a two-layer image prints when one layer is
    /// already present, in the engine's order.
    #[test]
    fn a_pull_adds_up_layers_and_bytes() {
        let mut t = LayerTracker::default();
        let mib = 1024 * 1024;
        assert!(!t.observe(Some("1"), "Pulling from e2e/big", None, None));
        assert!(!t.summary().started());
        assert!(t.observe(Some("aaa"), "Already exists", None, None));
        assert!(t.observe(Some("bbb"), "Pulling fs layer", None, None));
        assert_eq!(t.summary().to_string(), "1 of 2 layers");
        t.observe(Some("bbb"), "Downloading", Some(mib), Some(16 * mib));
        assert_eq!(
            t.summary().to_string(),
            "1 of 2 layers, 1.0 MiB of 16.0 MiB"
        );
        t.observe(Some("bbb"), "Downloading", Some(8 * mib), Some(16 * mib));
        t.observe(Some("bbb"), "Verifying Checksum", None, None);
        let p = t.summary();
        assert_eq!(
            (p.bytes_done, p.bytes_total),
            (16 * mib as u64, 16 * mib as u64)
        );
        assert_eq!(p.layers_done, 1, "downloaded but not yet extracted");
        // Extraction's own byte counts are not download progress.
        t.observe(Some("bbb"), "Extracting", Some(100), Some(16 * mib));
        assert_eq!(t.summary().bytes_done, 16 * mib as u64);
        t.observe(Some("bbb"), "Pull complete", None, None);
        assert!(!t.observe(None, "Digest: sha256:0123", None, None));
        assert!(!t.observe(None, "Status: Downloaded newer image", None, None));
        assert_eq!(
            t.summary(),
            PullProgress {
                layers_done: 2,
                layers_total: 2,
                bytes_done: 16 * mib as u64,
                bytes_total: 16 * mib as u64,
            }
        );
    }

    #[test]
    fn a_retried_layer_is_not_done_and_keeps_its_size() {
        let mut t = LayerTracker::default();
        t.observe(Some("l"), "Downloading", Some(10), Some(100));
        t.observe(Some("l"), "Retrying in 5 seconds", None, None);
        let p = t.summary();
        assert_eq!((p.layers_done, p.layers_total), (0, 1));
        assert_eq!((p.bytes_done, p.bytes_total), (10, 100));
        // A nonsense negative count is not taken.
        t.observe(Some("l"), "Downloading", Some(-5), Some(-1));
        assert_eq!(t.summary().bytes_done, 10);
    }
}
