#![no_main]
//! libFuzzer entry of the `config` target; the work is in src/config.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| irondhcp_fuzz::config::run(data));
