//! The library half of `migrate-cli`: what the binary and the integration tests share.

pub mod layout;
