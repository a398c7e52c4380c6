//! The `burnin-testkit` command gives clear errors, never panics, on a
//! busy port, an unwritable folder and bad input.

use std::process::Command;

fn testkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burnin-testkit"))
}

fn stderr_of(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("run burnin-testkit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn factory_on_a_busy_port_says_so_and_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = stderr_of(testkit().args(["factory", "--listen", &addr]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("--listen"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fixture_in_an_unwritable_folder_says_so_and_exits_2() {
    // A regular file where a folder should be: unwritable even for root.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("dut1");
    let (code, err) = stderr_of(testkit().arg("fixture").arg(&target).args([
        "--serial",
        "DUT-1",
        "--mac",
        "02:00:00:00:01:01",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&target.display().to_string()), "{err}");
    assert!(err.contains("pick a folder you can write"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fixture_with_a_bad_mac_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(testkit().arg("fixture").arg(dir.path().join("d")).args([
        "--serial",
        "DUT-1",
        "--mac",
        "not-a-mac",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not-a-mac"), "{err}");
}

#[test]
fn fixture_writes_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    let (code, err) = stderr_of(testkit().arg("fixture").arg(&root).args([
        "--serial",
        "DUT-1",
        "--mac",
        "02:00:00:00:01:01",
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert!(root.join("class/net/enp1s0/address").exists());
    assert!(!root.join(".burnin-testkit-write-check").exists());
}
