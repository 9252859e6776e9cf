//! The static report site: one page per run, the comparison page across runs.
