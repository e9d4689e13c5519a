//! The callbridge CRM store: one SQLite file holding users, campaigns, leads, call sessions, transcripts, call events and recordings.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
