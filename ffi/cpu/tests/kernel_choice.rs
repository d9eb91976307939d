//! The kernel set chosen at run time is the best one the CPU has, as told by a source other than
//! the detection the library uses: the Linux kernel's `/proc/cpuinfo` flags, or the QEMU CPU model
//! that `qemu_test.sh` runs the aarch64 tests on (qemu-user shows the host's cpuinfo).

#![cfg(target_os = "linux")]

use std::ffi::CStr;

use llamane_cpu::ffi::llamane_kernel_isa;
use llamane_cpu::kernels::{self, FORCE_VARIABLE};

/// The CPU features `/proc/cpuinfo` lists (the `flags` line on x86, `Features` on Arm), if any.
fn cpuinfo_features(key: &str) -> Option<Vec<String>> {
    let info = std::fs::read_to_string("/proc/cpuinfo").expect("reading /proc/cpuinfo");
    let line = info
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))?;
    let (_, flags) = line.split_once(':')?;
    Some(flags.split_whitespace().map(str::to_owned).collect())
}

/// The kernel sets the CPU's features promise, scalar first, best last.
#[cfg(target_arch = "x86_64")]
fn expected() -> Vec<&'static str> {
    let flags = cpuinfo_features("flags").expect("/proc/cpuinfo has no flags line");
    let has = |all: &[&str]| all.iter().all(|f| flags.iter().any(|g| g == f));
    let mut sets = vec!["scalar"];
    if has(&["avx2", "fma", "f16c"]) {
        sets.push("avx2");
        if has(&["avx_vnni"]) {
            sets.push("avxvnni");
        }
        if has(&["avx512f", "avx512vl", "avx512bw", "avx512_vnni"]) {
            sets.push("avx512");
        }
    }
    sets
}

/// As on x86; each aarch64 set needs the features of the one before it.
#[cfg(target_arch = "aarch64")]
fn expected() -> Vec<&'static str> {
    let sets = ["scalar", "neon", "dotprod", "i8mm"];
    let best = best_aarch64();
    sets[..=sets.iter().position(|&s| s == best).unwrap()].to_vec()
}

/// The best aarch64 set: from `/proc/cpuinfo`, or from the QEMU CPU model under qemu-user.
#[cfg(target_arch = "aarch64")]
fn best_aarch64() -> &'static str {
    if let Some(features) = cpuinfo_features("Features") {
        let has = |f: &str| features.iter().any(|g| g == f);
        return match (has("asimd"), has("asimddp"), has("i8mm")) {
            (true, true, true) => "i8mm",
            (true, true, false) => "dotprod",
            (true, false, _) => "neon",
            (false, _, _) => "scalar",
        };
    }
    // Under qemu-user: what each model implements (QEMU's target/arm/cpu64.c).
    let model = std::env::var("QEMU_CPU")
        .expect("no Features line in /proc/cpuinfo and no QEMU_CPU: cannot tell the features");
    match model.as_str() {
        "max" => "i8mm",
        "neoverse-n1" | "cortex-a76" => "dotprod",
        "cortex-a35" | "cortex-a53" | "cortex-a57" | "cortex-a72" => "neon",
        other => panic!("QEMU_CPU={other}: add the model's features to this test"),
    }
}

#[test]
fn the_library_offers_and_selects_the_sets_the_cpu_features_promise() {
    let names: Vec<_> = kernels::available().iter().map(|t| t.isa.name()).collect();
    let expected = expected();
    assert_eq!(names, expected, "available sets");
    // This binary's only test: nothing has selected yet, and nothing else reads the variable.
    std::env::remove_var(FORCE_VARIABLE);
    // SAFETY: the function returns a static NUL-terminated string.
    let selected = unsafe { CStr::from_ptr(llamane_kernel_isa()) };
    assert_eq!(selected.to_str().unwrap(), *expected.last().unwrap());
}
