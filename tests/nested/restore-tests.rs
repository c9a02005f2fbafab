//! The nested tier's restore scenario (tests/nested/l1/restores.sh runs it
//! under `vmdbg test` on the KVM engine): twenty tests, each run alone in
//! the default Linux guest restored from one snapshot. Each checks that it
//! starts from the snapshot (no earlier test's marker), runs a program the
//! way `vmdbg run` does, sleeps one second measured on the guest's
//! monotonic clock, and prints that and the guest's wall clock before and
//! after for the harness to hold against the host's.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn from_the_snapshot() {
    let marker = Path::new("/root/restore-marker");
    assert!(
        !marker.exists(),
        "an earlier test's marker is here: this test did not start from the snapshot"
    );
    std::fs::write(marker, b"written by a restore test").expect("write the marker");
    let uname = Command::new("/bin/busybox")
        .args(["uname", "-s"])
        .output()
        .expect("run busybox uname");
    assert_eq!(String::from_utf8_lossy(&uname.stdout).trim(), "Linux");
    let wall_start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the guest's clock is after 1970");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let slept = started.elapsed();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the guest's clock is after 1970");
    println!(
        "@@SLEPT-MS {} @@GUEST-START-MS {} @@GUEST-CLOCK-MS {}",
        slept.as_millis(),
        wall_start.as_millis(),
        wall.as_millis()
    );
}

macro_rules! restore_tests {
    ($($name:ident)*) => { $( #[test] fn $name() { from_the_snapshot() } )* };
}

restore_tests!(r01 r02 r03 r04 r05 r06 r07 r08 r09 r10 r11 r12 r13 r14 r15 r16 r17 r18 r19 r20);
