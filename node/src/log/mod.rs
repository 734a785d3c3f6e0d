//! The segmented commit-log storage engine.
