//! Placeholder: filled in by the exec plugin work (issue 14).
