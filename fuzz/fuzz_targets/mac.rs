//! Fuzz target `mac`: the body is `burnin_fuzz_replay::mac`, which the
//! normal test run replays over `fuzz/corpus/mac/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::mac(data));
