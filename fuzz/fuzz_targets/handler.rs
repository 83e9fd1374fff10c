#![no_main]
//! libFuzzer entry of the `handler` target; the work is in src/handler.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| irondhcp_fuzz::handler::run(data));
