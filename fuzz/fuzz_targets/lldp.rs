//! Fuzz target `lldp`: the body is `burnin_fuzz_replay::lldp`, which the
//! normal test run replays over `fuzz/corpus/lldp/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::lldp(data));
