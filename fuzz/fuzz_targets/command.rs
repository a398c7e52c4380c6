//! Fuzz target `command`: the body is `burnin_fuzz_replay::command`, which the
//! normal test run replays over `fuzz/corpus/command/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::command(data));
