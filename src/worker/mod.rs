//! STUB: see design.md; filled in by its issue.
