//! Placeholder: filled in by the cni plugin work (issue 14).
