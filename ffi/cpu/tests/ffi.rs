//! The C ABI, called as Deno would: status codes, last-error text, dtype conversions, and the
//! linear test hook against the scalar reference.

mod common;

use std::ffi::{c_void, CStr};
use std::sync::{Mutex, MutexGuard};

use common::{assert_close, Rng};
use llamane_cpu::ffi::{
    llamane_abi_version, llamane_kernel_isa, llamane_last_error, llamane_linear, llamane_version,
    ABI_VERSION,
};
use llamane_cpu::kernels::out_columns::OutColumns;
use llamane_cpu::kernels::{self};
use llamane_cpu::linear::{linear, ActivationPath, Cpu, LinearOptions};
use llamane_cpu::quantize::int4_per_channel;
use llamane_cpu::thread_pool::ThreadPool;
use llamane_cpu::weights::{Scales, WeightData, Weights};

/// The last error is process-wide and tests run on parallel threads: every test that makes a
/// call and may read the message holds this lock.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn last_error() -> String {
    // SAFETY: a null buffer with capacity 0 only asks for the length.
    let len = unsafe { llamane_last_error(std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; len];
    // SAFETY: buf has len writable bytes.
    assert_eq!(unsafe { llamane_last_error(buf.as_mut_ptr(), len) }, len);
    String::from_utf8(buf).unwrap()
}

struct Case {
    n: usize,
    k: usize,
    packed: Vec<u8>,
    scales: Vec<u16>,
    bias: Vec<f32>,
    x: Vec<f32>,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Self {
        let mut rng = Rng::new(30);
        let (packed, s) = int4_per_channel(&rng.normals(n * k, 0.05), n, k);
        Case {
            n,
            k,
            packed,
            scales: s
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect(),
            bias: rng.normals(n, 1.0),
            x: rng.activations(m, k),
        }
    }

    fn weights(&self) -> Weights<'_> {
        let data = WeightData::Int4PerChannel {
            packed: &self.packed,
            scales: Scales::F16(&self.scales),
        };
        Weights::new(self.n, self.k, data).unwrap()
    }

    /// Scalar reference plus bias.
    fn reference(&self) -> Vec<f32> {
        let m = self.x.len() / self.k;
        let mut y = vec![0.0; m * self.n];
        let w = self.weights();
        (kernels::scalar().linear_f32.int4_per_channel)(
            &mut OutColumns::full(&mut y, m, self.n),
            &self.x,
            &w,
        );
        for row in y.chunks_mut(self.n) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        y
    }

    /// Calls the hook with f32 activations and output.
    fn call(&self, y: &mut [f32], format: u32, path: u32) -> i32 {
        // SAFETY: every pointer/length pair describes a live buffer of this case.
        unsafe {
            llamane_linear(
                y.as_mut_ptr().cast(),
                y.len(),
                0,
                self.x.as_ptr().cast(),
                self.x.len(),
                0,
                self.n,
                self.k,
                self.packed.as_ptr(),
                self.packed.len(),
                format,
                self.scales.as_ptr().cast(),
                self.scales.len(),
                1,
                self.bias.as_ptr(),
                self.bias.len(),
                path,
            )
        }
    }
}

#[test]
fn version_abi_and_isa_are_static_strings() {
    // SAFETY: both return static NUL-terminated strings.
    let (version, isa) = unsafe {
        (
            CStr::from_ptr(llamane_version()),
            CStr::from_ptr(llamane_kernel_isa()),
        )
    };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(isa.to_str().unwrap(), kernels::selected().isa.name());
    assert_eq!(llamane_abi_version(), ABI_VERSION);
}

#[test]
fn linear_hook_matches_the_scalar_reference_across_threads() {
    let _serial = serial();
    // n = 300 is not a multiple of any thread count, and m * n * k is large enough to split.
    let case = Case::new(3, 300, 256);
    let mut y = vec![0.0; 3 * 300];
    assert_eq!(case.call(&mut y, 3, 1), 0, "{}", last_error());
    let want = case.reference();
    assert_close(
        "hook f32",
        &y,
        &want,
        &vec![want.iter().fold(1.0f32, |m, v| m.max(v.abs())); y.len()],
        1e-5,
    );
}

#[test]
fn linear_hook_converts_f16_activations_and_output() {
    let _serial = serial();
    let case = Case::new(2, 40, 64);
    let x16: Vec<u16> = case
        .x
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    let mut y16 = vec![0u16; 2 * 40];
    // SAFETY: every pointer/length pair describes a live buffer.
    let status = unsafe {
        llamane_linear(
            y16.as_mut_ptr().cast(),
            y16.len(),
            1,
            x16.as_ptr().cast(),
            x16.len(),
            1,
            case.n,
            case.k,
            case.packed.as_ptr(),
            case.packed.len(),
            3,
            case.scales.as_ptr().cast(),
            case.scales.len(),
            1,
            case.bias.as_ptr(),
            case.bias.len(),
            0,
        )
    };
    assert_eq!(status, 0, "{}", last_error());
    let rounded = Case {
        x: x16
            .iter()
            .map(|&h| half::f16::from_bits(h).to_f32())
            .collect(),
        ..case
    };
    let want = rounded.reference();
    let got: Vec<f32> = y16
        .iter()
        .map(|&h| half::f16::from_bits(h).to_f32())
        .collect();
    // f16 output: half an f16 ulp of the value, plus f32 rounding.
    assert_close(
        "hook f16",
        &got,
        &want,
        &want.iter().map(|v| v.abs().max(1e-3)).collect::<Vec<_>>(),
        1e-3,
    );
}

#[test]
fn linear_hook_int8_path_stays_close() {
    let _serial = serial();
    let case = Case::new(20, 64, 512);
    let (mut exact, mut approx) = (vec![0.0; 20 * 64], vec![0.0; 20 * 64]);
    assert_eq!(case.call(&mut exact, 3, 1), 0);
    assert_eq!(case.call(&mut approx, 3, 2), 0);
    let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close(
        "int8 vs f32",
        &approx,
        &exact,
        &vec![scale; exact.len()],
        0.03,
    );
    assert_ne!(exact, approx, "the int8 path was not taken");
}

#[test]
fn bad_arguments_return_status_1_with_a_message() {
    let _serial = serial();
    let case = Case::new(1, 8, 32);
    let mut y = vec![0.0; 8];
    assert_eq!(case.call(&mut y, 9, 0), 1);
    assert!(
        last_error().contains("unknown weight format code 9"),
        "{}",
        last_error()
    );
    assert_eq!(case.call(&mut y, 3, 7), 1);
    assert!(last_error().contains("activation path"), "{}", last_error());
    let mut short = vec![0.0; 7];
    assert_eq!(case.call(&mut short, 3, 0), 1);
    assert!(last_error().contains("linear: y"), "{}", last_error());
    // Dense f32 weights given int4 bytes: the byte count does not match [8, 32] f32.
    assert_eq!(case.call(&mut y, 0, 0), 1);

    // y overlapping x.
    let mut buf = vec![0f32; 64];
    let ptr = buf.as_mut_ptr();
    // SAFETY: all pointers are inside `buf` or the case; the call must reject the overlap.
    let status = unsafe {
        llamane_linear(
            ptr.cast(),
            8,
            0,
            ptr.cast_const().cast(),
            32,
            0,
            8,
            32,
            case.packed.as_ptr(),
            case.packed.len(),
            3,
            case.scales.as_ptr().cast(),
            case.scales.len(),
            1,
            std::ptr::null(),
            0,
            0,
        )
    };
    assert_eq!(status, 1);
    assert!(last_error().contains("overlaps x"), "{}", last_error());

    // A misaligned f32 pointer and a null pointer with a length.
    let bytes = [0u8; 4 * 33];
    // SAFETY: the misaligned pointer still points to 32 readable floats' worth of bytes.
    let status = unsafe {
        llamane_linear(
            y.as_mut_ptr().cast(),
            8,
            0,
            bytes.as_ptr().add(1).cast::<c_void>(),
            32,
            0,
            8,
            32,
            case.packed.as_ptr(),
            case.packed.len(),
            3,
            case.scales.as_ptr().cast(),
            case.scales.len(),
            1,
            std::ptr::null(),
            0,
            0,
        )
    };
    assert_eq!(status, 1);
    assert!(last_error().contains("not aligned"), "{}", last_error());
    // SAFETY: the null pointer must be rejected before any read.
    let status = unsafe {
        llamane_linear(
            y.as_mut_ptr().cast(),
            8,
            0,
            std::ptr::null(),
            32,
            0,
            8,
            32,
            case.packed.as_ptr(),
            case.packed.len(),
            3,
            case.scales.as_ptr().cast(),
            case.scales.len(),
            1,
            std::ptr::null(),
            0,
            0,
        )
    };
    assert_eq!(status, 1);
    assert!(last_error().contains("null pointer"), "{}", last_error());
}

#[test]
fn last_error_returns_its_length_and_copies_at_most_the_capacity() {
    let _serial = serial();
    let case = Case::new(1, 8, 32);
    assert_eq!(case.call(&mut [0.0; 8], 9, 0), 1);
    let full = last_error();
    let mut tiny = [0u8; 4];
    // SAFETY: tiny has 4 writable bytes.
    let len = unsafe { llamane_last_error(tiny.as_mut_ptr(), tiny.len()) };
    assert_eq!(len, full.len());
    assert_eq!(&tiny, &full.as_bytes()[..4]);
    assert_eq!(last_error(), full, "reading must not change the message");
}

#[test]
fn last_error_is_shared_between_threads() {
    let _serial = serial();
    let case = Case::new(1, 8, 32);
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(case.call(&mut [0.0; 8], 9, 0), 1));
    });
    assert!(
        last_error().contains("unknown weight format code 9"),
        "a failure on another thread must be readable here: {}",
        last_error()
    );
}

#[test]
fn threaded_linear_is_bitwise_equal_to_single_threaded() {
    let case = Case::new(5, 1001, 512);
    let w = case.weights();
    let options = LinearOptions {
        bias: Some(&case.bias),
        path: ActivationPath::Auto,
    };
    let mut results = Vec::new();
    for threads in [1, 2, 3] {
        let pool = ThreadPool::new(threads);
        let cpu = Cpu {
            kernels: kernels::selected(),
            pool: &pool,
        };
        let mut y = vec![0.0; 5 * 1001];
        linear(cpu, &mut y, &case.x, &w, &options).unwrap();
        results.push(y);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}
