#![no_main]
//! libFuzzer entry of the `loadgen_reply` target; the work is in
//! src/loadgen_reply.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| irondhcp_fuzz::loadgen_reply::run(data));
