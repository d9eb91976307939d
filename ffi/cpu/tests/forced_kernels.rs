//! `LLAMANE_CPU_KERNELS` forces a kernel table. Its own test binary: the choice is made once per
//! process, so the variable is set before anything selects.

use std::ffi::CStr;

use llamane_cpu::ffi::{llamane_kernel_isa, llamane_kernel_set};
use llamane_cpu::kernels::{self, Isa, FORCE_VARIABLE};

#[test]
fn the_variable_forces_the_named_table_and_rejects_others() {
    // Every available table can be had by its name; unknown names and absent tables are errors
    // that list what this CPU has.
    for table in kernels::available() {
        assert_eq!(kernels::by_name(table.isa.name()).unwrap().isa, table.isa);
    }
    let err = kernels::by_name("avx1024").err().unwrap();
    assert!(
        err.contains("avx1024") && err.contains("scalar"),
        "unexpected message: {err}"
    );
    for isa in [Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Dotprod, Isa::I8mm] {
        let present = kernels::available().iter().any(|t| t.isa == isa);
        assert_eq!(kernels::by_name(isa.name()).is_ok(), present, "{isa:?}");
    }

    std::env::set_var(FORCE_VARIABLE, "scalar");
    assert_eq!(kernels::selected().isa, Isa::Scalar);
    // SAFETY: the function returns a static NUL-terminated string.
    let reported = unsafe { CStr::from_ptr(llamane_kernel_isa()) };
    assert_eq!(reported.to_str().unwrap(), "scalar");

    let (mut name, mut error) = ([0xFFu8; 8], [0u8; 256]);
    // SAFETY: both buffers are as long as the capacities passed.
    let status = unsafe { llamane_kernel_set(name.as_mut_ptr(), 8, error.as_mut_ptr(), 256) };
    assert_eq!(status, 0);
    assert_eq!(CStr::from_bytes_until_nul(&name).unwrap(), c"scalar");
    // "scalar" and its NUL need 7 bytes: 6 is refused, with a message.
    // SAFETY: as above.
    let status = unsafe { llamane_kernel_set(name.as_mut_ptr(), 6, error.as_mut_ptr(), 256) };
    assert_eq!(status, 1);
    let message = CStr::from_bytes_until_nul(&error)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(message.contains("6 bytes"), "unexpected message: {message}");
}
