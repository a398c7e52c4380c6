//! Fuzz target `cabling_plan`: the body is `burnin_fuzz_replay::cabling_plan`,
//! which the normal test run replays over `fuzz/corpus/cabling_plan/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::cabling_plan(data));
