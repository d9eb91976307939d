//! Linear kernels: every SIMD kernel against the scalar reference on the same packed input, the
//! scalar quantized kernels against dequantize-then-dot, and the int8-activation path against
//! the f32 path.

mod common;

use common::{assert_close, dequantized_product, magnitudes, Rng};
use llamane_cpu::kernels::out_columns::{whole, ColumnSplitter, OutColumns};
use llamane_cpu::kernels::q8_rows::Q8Rows;
use llamane_cpu::kernels::{self, Isa, Kernels};
use llamane_cpu::quantize::{int4_block32, int4_per_channel, int8_block32, int8_per_channel};
use llamane_cpu::weights::{Scales, WeightData, WeightFormat, Weights};

/// Owned packed weights of one format, with f32 or f16 scales.
struct Packed {
    n: usize,
    k: usize,
    format: WeightFormat,
    f32: Vec<f32>,
    bits: Vec<u16>,
    bytes: Vec<u8>,
    scales_f32: Vec<f32>,
    scales_f16: Vec<u16>,
    f16_scales: bool,
}

fn to_f16(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect()
}

impl Packed {
    fn new(format: WeightFormat, n: usize, k: usize, f16_scales: bool, rng: &mut Rng) -> Self {
        let w = rng.normals(n * k, 0.05);
        let mut p = Packed {
            n,
            k,
            format,
            f32: vec![],
            bits: vec![],
            bytes: vec![],
            scales_f32: vec![],
            scales_f16: vec![],
            f16_scales,
        };
        match format {
            WeightFormat::F32 => p.f32 = w,
            WeightFormat::F16 => p.bits = to_f16(&w),
            WeightFormat::Int8PerChannel => {
                let (q, s) = int8_per_channel(&w, n, k);
                p.bytes = q.iter().map(|&v| v as u8).collect();
                p.scales_f32 = s;
            }
            WeightFormat::Int4PerChannel => (p.bytes, p.scales_f32) = int4_per_channel(&w, n, k),
            WeightFormat::Int4Block32 => (p.bytes, p.scales_f32) = int4_block32(&w, n, k),
            WeightFormat::Int8Block32 => {
                let (q, s) = int8_block32(&w, n, k);
                p.bytes = q.iter().map(|&v| v as u8).collect();
                p.scales_f32 = s;
            }
            WeightFormat::Lut4 | WeightFormat::Lut6 => {
                unreachable!("palettized weights are tested in palette_kernels.rs")
            }
        }
        if f16_scales {
            p.scales_f16 = to_f16(&p.scales_f32);
        }
        p
    }

    fn weights(&self) -> Weights<'_> {
        let scales = if self.f16_scales {
            Scales::F16(&self.scales_f16)
        } else {
            Scales::F32(&self.scales_f32)
        };
        let data = match self.format {
            WeightFormat::F32 => WeightData::F32(&self.f32),
            WeightFormat::F16 => WeightData::F16(&self.bits),
            WeightFormat::Int8PerChannel => WeightData::Int8PerChannel {
                data: bytemuck_i8(&self.bytes),
                scales,
            },
            WeightFormat::Int4PerChannel => WeightData::Int4PerChannel {
                packed: &self.bytes,
                scales,
            },
            WeightFormat::Int4Block32 => WeightData::Int4Block32 {
                packed: &self.bytes,
                scales,
            },
            WeightFormat::Int8Block32 => WeightData::Int8Block32 {
                data: bytemuck_i8(&self.bytes),
                scales,
            },
            WeightFormat::Lut4 | WeightFormat::Lut6 => {
                unreachable!("palettized weights are tested in palette_kernels.rs")
            }
        };
        Weights::new(self.n, self.k, data).unwrap()
    }
}

fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment, and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), b.len()) }
}

const FORMATS: [WeightFormat; 6] = [
    WeightFormat::F32,
    WeightFormat::F16,
    WeightFormat::Int8PerChannel,
    WeightFormat::Int4PerChannel,
    WeightFormat::Int4Block32,
    WeightFormat::Int8Block32,
];

/// Runs the f32-activation kernel of `table` over all columns.
fn run_f32(table: &Kernels, x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    let mut y = vec![0.0; m * w.n()];
    (table.linear_f32.get(w.format()))(&mut OutColumns::full(&mut y, m, w.n()), x, w);
    y
}

fn run_q8(table: &Kernels, xq: &Q8Rows, w: &Weights) -> Vec<f32> {
    let mut y = vec![0.0; xq.m() * w.n()];
    let kernel = table.linear_q8.get(w.format()).unwrap();
    kernel(&mut OutColumns::full(&mut y, xq.m(), w.n()), xq, w);
    y
}

/// [`run_q8`] in tasks of `per_task` columns, as threads take them: column tiles cut short by a
/// task's range.
fn run_q8_in_tasks(table: &Kernels, xq: &Q8Rows, w: &Weights, per_task: usize) -> Vec<f32> {
    let (m, n) = (xq.m(), w.n());
    let kernel = table.linear_q8.get(w.format()).unwrap();
    let mut y = vec![f32::NAN; m * n];
    let (widths, parts) = ([n], whole(n));
    let tasks = ColumnSplitter::new(&mut y, m, &widths, &parts, per_task);
    for t in 0..tasks.len() {
        // SAFETY: one call per task, one at a time.
        unsafe { tasks.columns(t, |_, mut out| kernel(&mut out, xq, w)) };
    }
    y
}

fn simd_tables() -> Vec<&'static Kernels> {
    kernels::available().into_iter().skip(1).collect()
}

/// Shapes that reach every tail: k below, at and past whole blocks, m around the 4-row tile,
/// n odd and not a multiple of any thread count.
const KS_BLOCKED: [usize; 4] = [32, 64, 96, 2080];
const KS_ANY: [usize; 5] = [1, 7, 40, 100, 258];
const MS: [usize; 6] = [1, 2, 3, 5, 8, 33];
const NS: [usize; 4] = [1, 3, 9, 37];

fn ks_for(format: WeightFormat) -> Vec<usize> {
    let mut ks = KS_BLOCKED.to_vec();
    if !matches!(
        format,
        WeightFormat::Int4Block32 | WeightFormat::Int8Block32
    ) {
        ks.extend(KS_ANY);
    }
    ks
}

#[test]
fn simd_f32_path_matches_scalar_for_every_format_and_tail() {
    let mut rng = Rng::new(1);
    for table in simd_tables() {
        for format in FORMATS {
            for k in ks_for(format) {
                for (i, &m) in MS.iter().enumerate() {
                    let n = NS[i % NS.len()];
                    let f16_scales = i % 2 == 1;
                    let p = Packed::new(format, n, k, f16_scales, &mut rng);
                    let w = p.weights();
                    let x = rng.activations(m, k);
                    let want = run_f32(kernels::scalar(), &x, m, &w);
                    let got = run_f32(table, &x, m, &w);
                    let what = format!("{:?} {format:?} m={m} n={n} k={k}", table.isa);
                    assert_close(&what, &got, &want, &magnitudes(&x, m, &w), 2e-5);
                }
            }
        }
    }
}

#[test]
fn simd_q8_path_matches_scalar_on_the_same_quantized_input() {
    let mut rng = Rng::new(2);
    for table in simd_tables() {
        for format in &FORMATS[2..] {
            for k in KS_BLOCKED {
                for (i, &m) in MS.iter().enumerate() {
                    let n = NS[(i + 1) % NS.len()];
                    let p = Packed::new(*format, n, k, i % 2 == 0, &mut rng);
                    let w = p.weights();
                    let x = rng.activations(m, k);
                    let layout = table.linear_q8.layout(*format);
                    // Quantized once, by the scalar reference, so both kernels see the same bytes.
                    let xq = Q8Rows::quantize(kernels::scalar(), &x, m, k, layout);
                    let want = run_q8(kernels::scalar(), &xq, &w);
                    let got = run_q8(table, &xq, &w);
                    let xd: Vec<f32> = (0..m * k).map(|i| xq.dequantized(i / k, i % k)).collect();
                    let what = format!("{:?} {format:?} q8 m={m} n={n} k={k}", table.isa);
                    assert_close(&what, &got, &want, &magnitudes(&xd, m, &w), 2e-5);
                }
            }
        }
    }
}

#[test]
fn scalar_quantized_kernels_match_dequantize_then_dot() {
    let mut rng = Rng::new(3);
    for format in FORMATS {
        for k in ks_for(format) {
            let (m, n) = (3, 5);
            for f16_scales in [false, true] {
                let p = Packed::new(format, n, k, f16_scales, &mut rng);
                let w = p.weights();
                let x = rng.activations(m, k);
                let got = run_f32(kernels::scalar(), &x, m, &w);
                let want = dequantized_product(&x, m, &w);
                let what = format!("scalar {format:?} k={k} f16 scales {f16_scales}");
                assert_close(&what, &got, &want, &magnitudes(&x, m, &w), 2e-5);

                if format.is_quantized() && k % 32 == 0 {
                    // The q8 kernel computes exactly the product of the dequantized int8 rows.
                    let xq = Q8Rows::quantize(
                        kernels::scalar(),
                        &x,
                        m,
                        k,
                        kernels::scalar().linear_q8.layout(format),
                    );
                    let xd: Vec<f32> = (0..m * k).map(|i| xq.dequantized(i / k, i % k)).collect();
                    let got = run_q8(kernels::scalar(), &xq, &w);
                    let want = dequantized_product(&xd, m, &w);
                    assert_close(
                        &format!("{what} q8"),
                        &got,
                        &want,
                        &magnitudes(&xd, m, &w),
                        2e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn int8_activations_stay_close_to_f32_activations() {
    // Quantizing activations to 8 bits per block of 32 costs about 1% of sum |x w| on
    // Llama-like data; 2% leaves room without hiding a broken kernel (that would be ~100%).
    let mut rng = Rng::new(4);
    let (m, n, k) = (8, 16, 2048);
    for format in &FORMATS[2..] {
        let p = Packed::new(*format, n, k, true, &mut rng);
        let w = p.weights();
        let x = rng.activations(m, k);
        let table = kernels::selected();
        let exact = run_f32(table, &x, m, &w);
        let xq = Q8Rows::quantize(table, &x, m, k, table.linear_q8.layout(*format));
        let approx = run_q8(table, &xq, &w);
        assert_close(
            &format!("{format:?} int8 vs f32 activations"),
            &approx,
            &exact,
            &magnitudes(&x, m, &w),
            0.02,
        );
    }
}

#[test]
fn simd_q8_decode_tiles_match_scalar() {
    // One row: the decode tile takes four columns at a time, then single columns.
    let mut rng = Rng::new(5);
    for table in simd_tables() {
        for format in &FORMATS[2..] {
            for n in [4, 9, 37, 64] {
                let k = 96;
                let p = Packed::new(*format, n, k, n % 2 == 0, &mut rng);
                let w = p.weights();
                let x = rng.activations(1, k);
                let xq =
                    Q8Rows::quantize(kernels::scalar(), &x, 1, k, table.linear_q8.layout(*format));
                let want = run_q8(kernels::scalar(), &xq, &w);
                let got = run_q8(table, &xq, &w);
                let xd: Vec<f32> = (0..k).map(|j| xq.dequantized(0, j)).collect();
                let what = format!("{:?} {format:?} decode n={n}", table.isa);
                assert_close(&what, &got, &want, &magnitudes(&xd, 1, &w), 2e-5);
            }
        }
    }
}

#[test]
fn q8_rows_do_not_depend_on_the_number_of_rows_in_any_table() {
    // Decode tiles (1 row, 4 columns), prefill tiles (4 rows, several columns) and their tails
    // must give each output the same bits: a 33-row call against each row alone.
    let mut rng = Rng::new(6);
    for table in kernels::available() {
        for format in &FORMATS[2..] {
            for k in [96, 2080] {
                let (m, n) = (33, 37);
                let p = Packed::new(*format, n, k, k == 96, &mut rng);
                let w = p.weights();
                let x = rng.activations(m, k);
                let layout = table.linear_q8.layout(*format);
                let all = run_q8(table, &Q8Rows::quantize(table, &x, m, k, layout), &w);
                for r in 0..m {
                    let row = &x[r * k..(r + 1) * k];
                    let one = run_q8(table, &Q8Rows::quantize(table, row, 1, k, layout), &w);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&one),
                        bits(&all[r * n..(r + 1) * n]),
                        "{:?} {format:?} k={k}: row {r} alone differs",
                        table.isa
                    );
                }
            }
        }
    }
}

#[test]
fn avx512_q8_path_is_bit_identical_to_avx2() {
    // The VNNI kernels sum the same products per lane as the AVX2 ones and scale them in the
    // same order: a machine gives the same logits whichever of the two it runs, in tiles of any
    // shape (AVX-512's int4 prefill tiles take columns in pairs, a lone one with itself).
    let tables = kernels::available();
    let find = |isa| tables.iter().find(|t| t.isa == isa).copied();
    let (Some(avx2), Some(avx512)) = (find(Isa::Avx2), find(Isa::Avx512)) else {
        eprintln!("no AVX-512 VNNI on this CPU: nothing compared");
        return;
    };
    let mut rng = Rng::new(7);
    for format in &FORMATS[2..] {
        for k in KS_BLOCKED {
            for (i, &m) in MS.iter().enumerate() {
                let n = NS[(i + 2) % NS.len()];
                let p = Packed::new(*format, n, k, i % 2 == 1, &mut rng);
                let w = p.weights();
                let x = rng.activations(m, k);
                let layout = avx2.linear_q8.layout(*format);
                assert_eq!(layout, avx512.linear_q8.layout(*format));
                let xq = Q8Rows::quantize(kernels::scalar(), &x, m, k, layout);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let want = bits(&run_q8(avx2, &xq, &w));
                for per_task in [n, 8, 5, 3] {
                    let got = bits(&run_q8_in_tasks(avx512, &xq, &w, per_task));
                    let what = format!("{format:?} m={m} n={n} k={k} columns per task {per_task}");
                    assert_eq!(got, want, "{what}");
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[test]
fn arm_q8_paths_give_the_scalar_bits_for_any_rows_and_column_range() {
    // The NEON, dotprod and i8mm kernels take each block's exact integer dot product and combine
    // the blocks in the scalar reference's order, so every tile gives its bits: 1 to 4 rows (i8mm
    // pairs rows, a lone one with itself) and column tiles of 4 cut short by a thread's range.
    let tables = simd_tables();
    assert!(!tables.is_empty(), "every aarch64 CPU has NEON");
    let mut rng = Rng::new(8);
    for table in tables {
        for format in &FORMATS[2..] {
            for k in [32, 64, 2080] {
                for (i, m) in [1, 2, 3, 4, 5, 6, 7, 9].into_iter().enumerate() {
                    let n = [1, 5, 13, 37][i % 4];
                    let p = Packed::new(*format, n, k, i % 2 == 1, &mut rng);
                    let w = p.weights();
                    let x = rng.activations(m, k);
                    let layout = table.linear_q8.layout(*format);
                    let xq = Q8Rows::quantize(kernels::scalar(), &x, m, k, layout);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    let want = bits(&run_q8(kernels::scalar(), &xq, &w));
                    for per_task in [n, 8, 5, 3] {
                        let y = run_q8_in_tasks(table, &xq, &w, per_task);
                        let what = format!(
                            "{:?} {format:?} m={m} n={n} k={k} columns per task {per_task}",
                            table.isa
                        );
                        assert_eq!(bits(&y), want, "{what}");
                    }
                }
            }
        }
    }
}
