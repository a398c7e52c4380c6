//! Fuzz target `reply`: the body is `burnin_fuzz_replay::reply`, which the
//! normal test run replays over `fuzz/corpus/reply/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::reply(data));
