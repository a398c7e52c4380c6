//! Fuzz target `sysfs_files`: the body is `burnin_fuzz_replay::sysfs_files`, which the
//! normal test run replays over `fuzz/corpus/sysfs_files/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burnin_fuzz_replay::sysfs_files(data));
