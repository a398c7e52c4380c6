//! Replays every committed fuzz corpus file through its target's body, so
//! the inputs the fuzzers found keep passing in the normal test run.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burnin_fuzz_replay::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The files of one corpus; panics when the directory is missing or empty
/// (a corpus that silently disappeared would make the replay pass vacuously).
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fuzz corpus {} cannot be read: {e}; run `cargo +nightly fuzz run {target}` \
             in fuzz/ and commit the minimised corpus",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "fuzz corpus {} is empty; commit the minimised corpus of `{target}`",
        dir.display()
    );
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let mut failures = Vec::new();
    for path in corpus(target) {
        let data = fs::read(&path).expect("corpus file");
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} corpus file(s) fail (panic message above each): {failures:#?}",
        failures.len()
    );
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in TARGETS {
        assert!(!corpus(target).is_empty());
    }
}

#[test]
fn serve_request_corpus() {
    replay("serve_request", burnin_fuzz_replay::serve_request);
}

#[test]
fn mac_corpus() {
    replay("mac", burnin_fuzz_replay::mac);
}

#[test]
fn reply_corpus() {
    replay("reply", burnin_fuzz_replay::reply);
}

#[test]
fn command_corpus() {
    replay("command", burnin_fuzz_replay::command);
}

#[test]
fn mes_body_corpus() {
    replay("mes_body", burnin_fuzz_replay::mes_body);
}

#[test]
fn lldp_corpus() {
    replay("lldp", burnin_fuzz_replay::lldp);
}

#[test]
fn cabling_plan_corpus() {
    replay("cabling_plan", burnin_fuzz_replay::cabling_plan);
}

#[test]
fn sysfs_files_corpus() {
    replay("sysfs_files", burnin_fuzz_replay::sysfs_files);
}

/// The replay can fail: a body that breaks its target's promise is caught.
#[test]
fn replay_reports_a_failing_input() {
    fn broken(data: &[u8]) {
        assert!(data.is_empty(), "not empty");
    }
    let caught = catch_unwind(|| replay("mac", broken));
    assert!(caught.is_err());
}

/// The hand-written seeds (`fuzz/seeds/`) reach the accepting paths, so the
/// round-trip checks run on real documents, not only on rejections.
#[test]
fn seeds_reach_the_accepting_paths() {
    let seed = |target: &str, name: &str| {
        fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/seeds")
                .join(target)
                .join(name),
        )
        .expect("seed file")
    };
    for name in ["spec", "text_op", "null_op"] {
        let report = burnin_core::DeviceReport::from_slice(&seed("reply", name));
        assert!(report.is_ok(), "reply/{name}: {report:?}");
    }
    for name in ["full", "minimal"] {
        let cmd = burnin_core::ScanCommand::from_slice(&seed("command", name));
        assert!(cmd.is_ok(), "command/{name}: {cmd:?}");
    }
    let sn = burnin_core::SerialNumber::new("Q186I15901").unwrap();
    let record = seed("mes_body", "record");
    let body = &record[record.iter().position(|&b| b == b'\n').unwrap() + 1..];
    assert_eq!(burnin_http::parse_mes_record(&sn, body).unwrap().len(), 2);
    assert!(burnin_http::parse_mes_record(&sn, &seed("mes_body", "default_sn")).is_ok());
    assert_eq!(
        burnin_local::FileMes::from_json(&seed("mes_body", "file"))
            .unwrap()
            .len(),
        2
    );
    assert!(burnin_sysfs::fuzz::address(&seed("sysfs_files", "address")).is_ok());
    assert!(burnin_sysfs::fuzz::dmi_serial(&seed("sysfs_files", "serial")).is_ok());
    assert!(matches!(
        burnin_sysfs::fuzz::dmi_serial(&seed("sysfs_files", "placeholder")),
        Err(burnin_sysfs::Rejected::Placeholder(_))
    ));
    for name in ["lldpd_frame", "spec_lldpdu"] {
        let data = seed("lldp", name);
        let heard = burnin_lldp::parse_frame(&data).or_else(|_| burnin_lldp::parse(&data));
        assert!(heard.is_ok(), "lldp/{name}: {heard:?}");
    }
    assert_eq!(
        burnin_sysfs::fuzz::driver_name("../../../../bus/pci/drivers/igb"),
        "igb"
    );
}
