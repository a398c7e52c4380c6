//! Fuzz target `serve_request`: the body is `burnin_fuzz_replay::serve_request`,
//! which the normal test run replays over `fuzz/corpus/serve_request/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::serve_request(data));
