//! Fuzz target `mes_body`: the body is `burnin_fuzz_replay::mes_body`, which the
//! normal test run replays over `fuzz/corpus/mes_body/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::mes_body(data));
