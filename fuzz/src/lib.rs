//! What each fuzz target does with one input, kept apart from libFuzzer so
//! that the very same code replays the committed corpora and every crash
//! input as an ordinary `cargo test` (bench/tests/fuzz_regressions.rs
//! includes this file with `#[path]`).
//!
//! Each `run` function must not panic on any input: a panic is a finding.
//! Besides "no panic", the targets assert properties that must hold for
//! every input (see each module), so a wrong but non-crashing answer is a
//! finding too.
//!
//! Modules are declared with explicit `#[path]`s and refer to each other
//! through `super::`, never `crate::`, so the file works both as this
//! crate's root and as a module of another crate's test.

/// The handler fixtures' world and frame builders.
pub use irondhcp_testkit::fixtures as wire_support;

#[path = "config.rs"]
pub mod config;
#[path = "handler.rs"]
pub mod handler;
#[path = "loadgen_reply.rs"]
pub mod loadgen_reply;
#[path = "seeds.rs"]
pub mod seeds;
