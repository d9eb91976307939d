//! `LLAMANE_CPU_KERNELS` forces a kernel table. Its own test binary: the choice is made once per
//! process, so the variable is set before anything selects.

use std::ffi::CStr;

use llamane_cpu::ffi::llamane_kernel_isa;
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
    for isa in [Isa::Avx2, Isa::Avx512, Isa::Neon] {
        let present = kernels::available().iter().any(|t| t.isa == isa);
        assert_eq!(kernels::by_name(isa.name()).is_ok(), present, "{isa:?}");
    }

    std::env::set_var(FORCE_VARIABLE, "scalar");
    assert_eq!(kernels::selected().isa, Isa::Scalar);
    // SAFETY: the function returns a static NUL-terminated string.
    let reported = unsafe { CStr::from_ptr(llamane_kernel_isa()) };
    assert_eq!(reported.to_str().unwrap(), "scalar");
}
