//! The C ABI, called as Deno would: status codes, messages in the per-call error buffer, dtype
//! conversions, and the linear test hook against the scalar reference.

mod common;

use std::ffi::{c_void, CStr};

use common::{assert_close, Rng};
use llamane_cpu::ffi::{
    linear_hook::llamane_linear, llamane_abi_version, llamane_kernel_isa, llamane_version,
    ABI_VERSION,
};
use llamane_cpu::kernels::out_columns::OutColumns;
use llamane_cpu::kernels::{self};
use llamane_cpu::linear::{linear, ActivationPath, Cpu, LinearOptions};
use llamane_cpu::quantize::int4_per_channel;
use llamane_cpu::thread_pool::ThreadPool;
use llamane_cpu::weights::{Scales, WeightData, Weights};

/// An error buffer for one call.
fn error_buffer() -> Vec<u8> {
    vec![0xff; 512]
}

/// The NUL-terminated message a failed call wrote into `buffer`.
fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).expect("no terminator");
    String::from_utf8(buffer[..end].to_vec()).unwrap()
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

    /// Calls the hook with f32 activations and output: the status and the message.
    fn call(&self, y: &mut [f32], format: u32, path: u32) -> (i32, String) {
        let mut error = error_buffer();
        // SAFETY: every pointer/length pair describes a live buffer of this case.
        let status = unsafe {
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
                error.as_mut_ptr(),
                error.len(),
            )
        };
        (
            status,
            if status == 0 {
                String::new()
            } else {
                message(&error)
            },
        )
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
    // n = 300 is not a multiple of any thread count, and m * n * k is large enough to split.
    let case = Case::new(3, 300, 256);
    let mut y = vec![0.0; 3 * 300];
    assert_eq!(case.call(&mut y, 3, 1), (0, String::new()));
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
    let case = Case::new(2, 40, 64);
    let x16: Vec<u16> = case
        .x
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    let mut y16 = vec![0u16; 2 * 40];
    // SAFETY: every pointer/length pair describes a live buffer.
    let mut error = error_buffer();
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
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 0, "{}", message(&error));
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
    let case = Case::new(20, 64, 512);
    let (mut exact, mut approx) = (vec![0.0; 20 * 64], vec![0.0; 20 * 64]);
    assert_eq!(case.call(&mut exact, 3, 1).0, 0);
    assert_eq!(case.call(&mut approx, 3, 2).0, 0);
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
    let case = Case::new(1, 8, 32);
    let mut y = vec![0.0; 8];
    let (status, text) = case.call(&mut y, 9, 0);
    assert_eq!(status, 1);
    assert!(text.contains("unknown weight format code 9"), "{text}");
    let (status, text) = case.call(&mut y, 3, 7);
    assert_eq!(status, 1);
    assert!(text.contains("activation path"), "{text}");
    let mut short = vec![0.0; 7];
    let (status, text) = case.call(&mut short, 3, 0);
    assert_eq!(status, 1);
    assert!(text.contains("linear: y"), "{text}");
    // Dense f32 weights given int4 bytes: the byte count does not match [8, 32] f32.
    assert_eq!(case.call(&mut y, 0, 0).0, 1);

    // y overlapping x.
    let mut buf = vec![0f32; 64];
    let ptr = buf.as_mut_ptr();
    // SAFETY: all pointers are inside `buf` or the case; the call must reject the overlap.
    let mut error = error_buffer();
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
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 1);
    assert!(
        message(&error).contains("overlaps x"),
        "{}",
        message(&error)
    );

    // A misaligned f32 pointer and a null pointer with a length.
    let bytes = [0u8; 4 * 33];
    let mut error = error_buffer();
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
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 1);
    assert!(
        message(&error).contains("not aligned"),
        "{}",
        message(&error)
    );
    // SAFETY: the null pointer must be rejected before any read.
    let mut error = error_buffer();
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
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 1);
    assert!(
        message(&error).contains("null pointer"),
        "{}",
        message(&error)
    );
}

#[test]
fn each_thread_reads_its_own_message_and_a_null_buffer_is_allowed() {
    let case = Case::new(1, 8, 32);
    std::thread::scope(|s| {
        let other = s.spawn(|| case.call(&mut [0.0; 8], 3, 7));
        let (status, text) = case.call(&mut [0.0; 8], 9, 0);
        assert_eq!(status, 1);
        assert!(text.contains("unknown weight format code 9"), "{text}");
        let (status, text) = other.join().unwrap();
        assert_eq!(status, 1);
        assert!(text.contains("activation path"), "{text}");
    });
    let x = [0f32; 32];
    // SAFETY: a failing call with no error buffer: only the status comes back.
    let status = unsafe {
        llamane_linear(
            std::ptr::null_mut(),
            8,
            0,
            x.as_ptr().cast(),
            x.len(),
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
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(status, 1);
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
