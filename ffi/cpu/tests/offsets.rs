//! Quantized weights with offsets (`w = scale * (q - offset)`): on every kernel set and both
//! activation paths, `linear` gives the product of the dequantized weights, and exactly the
//! product without offsets minus the offsets' share computed here in group order.

mod common;

use common::{assert_close, Rng};
use llamane_cpu::kernels::q8_rows::Q8Rows;
use llamane_cpu::kernels::{self, Kernels};
use llamane_cpu::linear::{linear, ActivationPath, Cpu, LinearOptions};
use llamane_cpu::quantize::{int4_block32, int4_per_channel, int8_per_channel, pack_int4};
use llamane_cpu::thread_pool::ThreadPool;
use llamane_cpu::weights::{Offsets, Scales, WeightData, WeightFormat, Weights, BLOCK};

/// Packed data and scales of one format, and offsets of every stored type.
struct Packed {
    format: WeightFormat,
    n: usize,
    k: usize,
    bytes: Vec<u8>,
    int8: Vec<i8>,
    scales: Vec<f32>,
    /// Integer offsets in [-8, 7], as i8 and packed as i4.
    offsets_i8: Vec<i8>,
    offsets_i4: Vec<u8>,
    offsets_f32: Vec<f32>,
    offsets_f16: Vec<u16>,
}

impl Packed {
    fn new(format: WeightFormat, n: usize, k: usize, rng: &mut Rng) -> Self {
        let w = rng.normals(n * k, 0.05);
        let (bytes, int8, scales) = match format {
            WeightFormat::Int8PerChannel => {
                let (q, s) = int8_per_channel(&w, n, k);
                (vec![], q, s)
            }
            WeightFormat::Int4PerChannel => {
                let (b, s) = int4_per_channel(&w, n, k);
                (b, vec![], s)
            }
            WeightFormat::Int4Block32 => {
                let (b, s) = int4_block32(&w, n, k);
                (b, vec![], s)
            }
            _ => unreachable!("dense formats take no offsets"),
        };
        let groups = scales.len();
        let offsets_i8: Vec<i8> = (0..groups)
            .map(|_| (rng.next_u64() % 16) as i8 - 8)
            .collect();
        let offsets_f32: Vec<f32> = (0..groups).map(|_| 8.0 * rng.normal()).collect();
        Packed {
            format,
            n,
            k,
            bytes,
            int8,
            scales,
            offsets_i4: pack_int4(&offsets_i8),
            offsets_i8,
            offsets_f16: offsets_f32
                .iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect(),
            offsets_f32,
        }
    }

    fn plain(&self) -> Weights<'_> {
        let scales = Scales::F32(&self.scales);
        let data = match self.format {
            WeightFormat::Int8PerChannel => WeightData::Int8PerChannel {
                data: &self.int8,
                scales,
            },
            WeightFormat::Int4PerChannel => WeightData::Int4PerChannel {
                packed: &self.bytes,
                scales,
            },
            _ => WeightData::Int4Block32 {
                packed: &self.bytes,
                scales,
            },
        };
        Weights::new(self.n, self.k, data).unwrap()
    }

    /// Every kind of offsets the data can take: integers of their own type, f16 and f32.
    fn offsets(&self) -> Vec<Offsets<'_>> {
        let integers = if self.format == WeightFormat::Int8PerChannel {
            Offsets::Int8(&self.offsets_i8)
        } else {
            Offsets::Int4 {
                packed: &self.offsets_i4,
                len: self.offsets_i8.len(),
            }
        };
        vec![
            integers,
            Offsets::F16(&self.offsets_f16),
            Offsets::F32(&self.offsets_f32),
        ]
    }
}

fn run(table: &'static Kernels, x: &[f32], w: &Weights, path: ActivationPath) -> Vec<f32> {
    static POOL: std::sync::OnceLock<ThreadPool> = std::sync::OnceLock::new();
    let cpu = Cpu {
        kernels: table,
        pool: POOL.get_or_init(|| ThreadPool::new(2)),
    };
    let mut y = vec![0.0; x.len() / w.k() * w.n()];
    let options = LinearOptions { bias: None, path };
    linear(cpu, &mut y, x, w, &options).unwrap();
    y
}

/// The int8 activations the kernels of `table` make of `x` for `w`.
fn q8_rows(table: &Kernels, x: &[f32], m: usize, k: usize, w: &Weights) -> Q8Rows {
    Q8Rows::quantize(table, x, m, k, table.linear_q8.layout(w.format()))
}

/// `x W^T` of the dequantized rows in f64, and `sum |x w|` per output.
fn dequantized_product(x: &[f32], m: usize, w: &Weights) -> (Vec<f32>, Vec<f32>) {
    let (n, k) = (w.n(), w.k());
    let (mut row, mut y, mut mag) = (vec![0.0; k], vec![0.0; m * n], vec![0.0; m * n]);
    for c in 0..n {
        w.dequantize_row(c, &mut row);
        for r in 0..m {
            let terms = (0..k).map(|j| f64::from(x[r * k + j]) * f64::from(row[j]));
            y[r * n + c] = terms.clone().sum::<f64>() as f32;
            mag[r * n + c] = terms.map(f64::abs).sum::<f64>() as f32;
        }
    }
    (y, mag)
}

/// The offsets' share `sum_g scale * offset * sum(x over g)`, f32 in group order, with the
/// group sums the path uses: f32 sums of `x`, or the int8 blocks' scaled integer sums.
fn offset_share(x: &[f32], xq: Option<&Q8Rows>, w: &Weights, offsets: &Offsets) -> Vec<f32> {
    let (n, k) = (w.n(), w.k());
    let m = x.len() / k;
    let group = if w.format() == WeightFormat::Int4Block32 {
        BLOCK
    } else {
        k
    };
    let groups = k / group;
    let scales = w.scales().unwrap();
    let block_sum = |r: usize, g: usize| -> f32 {
        match xq {
            // The row sum of int8 blocks: each block's scaled integer sum, in block order.
            Some(xq) if groups == 1 => (0..k / BLOCK).map(|b| block_sum_q8(xq, r, b)).sum(),
            Some(xq) => block_sum_q8(xq, r, g),
            None => x[r * k + g * group..r * k + (g + 1) * group].iter().sum(),
        }
    };
    let mut share = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            let mut s = 0.0f32;
            for g in 0..groups {
                let i = c * groups + g;
                s += scales.get(i) * offsets.get(i) * block_sum(r, g);
            }
            share[r * n + c] = s;
        }
    }
    share
}

/// Block `b` of row `r` of int8 activations summed as `scale * sum(q)`, its values found through
/// the layout.
fn block_sum_q8(xq: &Q8Rows, r: usize, b: usize) -> f32 {
    let k = xq.k();
    let total: i32 = (b * BLOCK..(b + 1) * BLOCK)
        .map(|j| i32::from(xq.values()[r * k + xq.layout().position(j, k)]))
        .sum();
    xq.scales()[r * (k / BLOCK) + b] * total as f32
}

const FORMATS: [WeightFormat; 3] = [
    WeightFormat::Int8PerChannel,
    WeightFormat::Int4PerChannel,
    WeightFormat::Int4Block32,
];

#[test]
fn linear_with_offsets_is_the_product_of_the_dequantized_weights_on_every_kernel_set() {
    let mut rng = Rng::new(11);
    for table in kernels::available() {
        for format in FORMATS {
            for (m, n, k) in [(1, 9, 64), (5, 37, 96), (33, 8, 2080)] {
                let p = Packed::new(format, n, k, &mut rng);
                let x = rng.activations(m, k);
                for offsets in p.offsets() {
                    let w = p.plain().with_offsets(offsets).unwrap();
                    for path in [ActivationPath::F32, ActivationPath::Int8] {
                        let what = format!("{:?} {format:?} {path:?} m={m} n={n} k={k}", table.isa);
                        let xq =
                            (path == ActivationPath::Int8).then(|| q8_rows(table, &x, m, k, &w));
                        let xs: Vec<f32> = match &xq {
                            Some(xq) => (0..m * k).map(|i| xq.dequantized(i / k, i % k)).collect(),
                            None => x.clone(),
                        };
                        let got = run(table, &x, &w, path);
                        let (want, magnitude) = dequantized_product(&xs, m, &w);
                        assert_close(&what, &got, &want, &magnitude, 2e-5);
                        // Exactly the kernel's product without offsets, less the offsets' share.
                        let plain = run(table, &x, &p.plain(), path);
                        let share = offset_share(&x, xq.as_ref(), &w, &offsets);
                        let exact: Vec<f32> =
                            plain.iter().zip(&share).map(|(y, s)| y - s).collect();
                        assert_eq!(got, exact, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn offsets_must_match_the_scales_and_quantized_data() {
    let mut rng = Rng::new(12);
    let p = Packed::new(WeightFormat::Int4Block32, 4, 64, &mut rng);
    let short = Offsets::F32(&p.offsets_f32[1..]);
    let err = p.plain().with_offsets(short).unwrap_err().to_string();
    assert!(err.contains("offsets"), "{err}");
    let dense = [0.0f32; 4 * 64];
    let w = Weights::new(4, 64, WeightData::F32(&dense)).unwrap();
    let err = w
        .with_offsets(Offsets::F32(&p.offsets_f32))
        .unwrap_err()
        .to_string();
    assert!(err.contains("take no offsets"), "{err}");
}
