//! Palettized linear kernels: the scalar references against dequantize-then-dot, and every SIMD
//! table's int8-activation kernels bit for bit against the scalar reference, for 4-bit and 6-bit
//! indices, on shapes that reach every tail (odd block counts, 1 to 33 rows, odd columns).

mod common;

use common::{assert_close, dequantized_product, magnitudes, Rng};
use llamane_cpu::kernels::out_columns::OutColumns;
use llamane_cpu::kernels::q8_rows::Q8Rows;
use llamane_cpu::kernels::{self, Kernels};
use llamane_cpu::palette::{index_at, pack_indices, quantize_levels, Palettes};
use llamane_cpu::weights::{Scales, WeightData, WeightFormat, Weights};

/// Owned palettized weights: random indices and Gaussian palettes.
struct Owned {
    n: usize,
    k: usize,
    bits: u32,
    group_rows: usize,
    packed: Vec<u8>,
    values: Vec<u16>,
    levels: Vec<i16>,
    steps: Vec<f32>,
}

impl Owned {
    fn new(bits: u32, n: usize, k: usize, group_rows: usize, rng: &mut Rng) -> Self {
        let entries = 1usize << bits;
        let indices: Vec<u8> = (0..n * k)
            .map(|_| (rng.next_u64() % entries as u64) as u8)
            .collect();
        let values: Vec<u16> = rng
            .normals(n / group_rows * entries, 0.05)
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        let (levels, steps) = quantize_levels(Scales::F16(&values), entries);
        Owned {
            n,
            k,
            bits,
            group_rows,
            packed: pack_indices(&indices, bits),
            values,
            levels,
            steps,
        }
    }

    fn weights(&self) -> Weights<'_> {
        let p = Palettes {
            bits: self.bits,
            indices: &self.packed,
            group_rows: self.group_rows,
            values: Scales::F16(&self.values),
            levels: &self.levels,
            steps: &self.steps,
        };
        Weights::new(self.n, self.k, WeightData::Palettized(p)).unwrap()
    }

    /// The weights as the int8 kernels see them: each level times its palette's step.
    fn level_product(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k, entries) = (self.n, self.k, 1usize << self.bits);
        let mut y = vec![0.0; m * n];
        for c in 0..n {
            let g = c / self.group_rows;
            for r in 0..m {
                let dot: f64 = (0..k)
                    .map(|j| {
                        let level =
                            self.levels[g * entries + index_at(&self.packed, self.bits, c * k + j)];
                        f64::from(x[r * k + j]) * f64::from(level) * f64::from(self.steps[g])
                    })
                    .sum();
                y[r * n + c] = dot as f32;
            }
        }
        y
    }
}

fn run_q8(table: &Kernels, xq: &Q8Rows, w: &Weights) -> Vec<f32> {
    let mut y = vec![0.0; xq.m() * w.n()];
    let kernel = table.linear_q8.get(w.format()).unwrap();
    kernel(&mut OutColumns::full(&mut y, xq.m(), w.n()), xq, w);
    y
}

const KS: [usize; 4] = [32, 96, 576, 2080];
const MS: [usize; 6] = [1, 2, 3, 5, 8, 33];
const NS: [(usize, usize); 4] = [(1, 1), (3, 3), (12, 4), (48, 16)];

#[test]
fn pack_indices_inverts_index_at_for_4_and_6_bits() {
    let mut rng = Rng::new(1);
    for bits in [4, 6] {
        let indices: Vec<u8> = (0..101)
            .map(|_| (rng.next_u64() % (1 << bits)) as u8)
            .collect();
        let packed = pack_indices(&indices, bits);
        assert_eq!(packed.len(), (101 * bits as usize).div_ceil(8));
        for (i, &v) in indices.iter().enumerate() {
            assert_eq!(
                index_at(&packed, bits, i),
                usize::from(v),
                "bits {bits} index {i}"
            );
        }
    }
}

#[test]
fn scalar_palette_kernels_match_dequantize_then_dot() {
    let mut rng = Rng::new(2);
    let scalar = kernels::scalar();
    for bits in [4, 6] {
        for (i, &k) in [1, 7, 40, 96, 576].iter().enumerate() {
            let (n, group_rows) = NS[i % NS.len()];
            let m = MS[i % MS.len()];
            let owned = Owned::new(bits, n, k, group_rows, &mut rng);
            let w = owned.weights();
            assert!(matches!(
                w.format(),
                WeightFormat::Lut4 | WeightFormat::Lut6
            ));
            let x = rng.activations(m, k);
            let mut y = vec![0.0; m * n];
            (scalar.linear_f32.get(w.format()))(&mut OutColumns::full(&mut y, m, n), &x, &w);
            let what = format!("lut{bits} f32 m={m} n={n} k={k}");
            assert_close(
                &what,
                &y,
                &dequantized_product(&x, m, &w),
                &magnitudes(&x, m, &w),
                2e-5,
            );
            if k % 32 == 0 {
                let layout = scalar.linear_q8.layout(w.format());
                let xq = Q8Rows::quantize(scalar, &x, m, k, layout);
                let xd: Vec<f32> = (0..m * k).map(|i| xq.dequantized(i / k, i % k)).collect();
                let got = run_q8(scalar, &xq, &w);
                let what = format!("lut{bits} q8 m={m} n={n} k={k}");
                assert_close(
                    &what,
                    &got,
                    &owned.level_product(&xd, m),
                    &magnitudes(&xd, m, &w),
                    2e-5,
                );
            }
        }
    }
}

#[test]
fn levels_stay_within_half_a_step_of_the_palette() {
    let mut rng = Rng::new(3);
    let owned = Owned::new(6, 8, 32, 2, &mut rng);
    for (i, &v) in owned.values.iter().enumerate() {
        let value = half::f16::from_bits(v).to_f32();
        let step = owned.steps[i / 64];
        let error = (f32::from(owned.levels[i]) * step - value).abs();
        assert!(
            error <= step * 0.501,
            "entry {i}: {value} as {} * {step}",
            owned.levels[i]
        );
    }
}

#[test]
fn simd_palette_kernels_are_bit_identical_to_the_scalar_reference() {
    let mut rng = Rng::new(4);
    for table in kernels::available().into_iter().skip(1) {
        for bits in [4, 6] {
            for k in KS {
                for (i, &m) in MS.iter().enumerate() {
                    let (n, group_rows) = NS[i % NS.len()];
                    let owned = Owned::new(bits, n, k, group_rows, &mut rng);
                    let w = owned.weights();
                    let x = rng.activations(m, k);
                    // Each table's own activation layout: the reference reads any layout.
                    let layout = table.linear_q8.layout(w.format());
                    let xq = Q8Rows::quantize(kernels::scalar(), &x, m, k, layout);
                    let want = run_q8(kernels::scalar(), &xq, &w);
                    let got = run_q8(table, &xq, &w);
                    let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits_of(&got),
                        bits_of(&want),
                        "{:?} lut{bits} m={m} n={n} k={k}",
                        table.isa
                    );
                }
            }
        }
    }
}

#[test]
fn palettized_layers_split_over_threads_match_dequantize_then_dot() {
    use llamane_cpu::linear::{linear, ActivationPath, Cpu, LinearOptions};
    use llamane_cpu::thread_pool::ThreadPool;
    let mut rng = Rng::new(5);
    let (m, n, k) = (1, 6144, 576);
    let owned = Owned::new(4, n, k, 16, &mut rng);
    let w = owned.weights();
    let x = rng.activations(m, k);
    let pool = ThreadPool::new(3);
    let cpu = Cpu {
        kernels: kernels::selected(),
        pool: &pool,
    };
    let mut y = vec![0.0; m * n];
    let options = LinearOptions {
        bias: None,
        path: ActivationPath::Int8,
    };
    linear(cpu, &mut y, &x, &w, &options).unwrap();
    let xq = Q8Rows::quantize(
        kernels::scalar(),
        &x,
        m,
        k,
        kernels::selected().linear_q8.layout(w.format()),
    );
    let xd: Vec<f32> = (0..m * k).map(|i| xq.dequantized(i / k, i % k)).collect();
    assert_close(
        "threads",
        &y,
        &owned.level_product(&xd, m),
        &magnitudes(&xd, m, &w),
        1e-4,
    );
}
