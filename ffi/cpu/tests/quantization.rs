//! Weight packing and activation quantization.

mod common;

use common::Rng;
use llamane_cpu::kernels::q8_rows::{Q8Layout, Q8Rows};
use llamane_cpu::kernels::{self, Kernels};
use llamane_cpu::quantize::{pack_int4, quantize_symmetric};
use llamane_cpu::weights::{int4_at, Scales, WeightData, Weights};

#[test]
fn int4_packing_is_lsb_first_twos_complement_with_both_extremes() {
    let values: Vec<i8> = vec![-8, 7, 0, -1, 1, -8, 7, 3, -5];
    let packed = pack_int4(&values);
    // Element 2b in the low nibble of byte b, 2b + 1 in the high nibble.
    assert_eq!(packed, vec![0x78, 0xF0, 0x81, 0x37, 0x0B]);
    for (i, &v) in values.iter().enumerate() {
        assert_eq!(int4_at(&packed, i), v, "element {i}");
    }
}

#[test]
fn symmetric_quantization_uses_max_over_qmax() {
    // max |w| = 8 over qmax 7: the scale is 8/7, so -8 maps to -7, 8 to 7, 2 to round(1.75).
    let w = [8.0f32, -8.0, 2.0, 0.0];
    let (q, s) = quantize_symmetric(&w, 1, 4, 4, 4);
    assert_eq!(s, vec![8.0 / 7.0]);
    assert_eq!(q, vec![7, -7, 2, 0]);
    // An all-zero group has scale 0 and zeros.
    let (q, s) = quantize_symmetric(&[0.0; 4], 1, 4, 8, 4);
    assert_eq!((q, s), (vec![0; 4], vec![0.0]));
}

#[test]
fn dequantize_row_reads_every_format_and_scale_type() {
    let packed = pack_int4(&[-8, 7, 1, -1]);
    let scales16 = [half::f16::from_f32(0.5).to_bits()];
    let w = Weights::new(
        1,
        4,
        WeightData::Int4PerChannel {
            packed: &packed,
            scales: Scales::F16(&scales16),
        },
    )
    .unwrap();
    let mut row = [0f32; 4];
    w.dequantize_row(0, &mut row);
    assert_eq!(row, [-4.0, 3.5, 0.5, -0.5]);
    let data = [-128i8, 127, 0, 5];
    let w = Weights::new(
        1,
        4,
        WeightData::Int8PerChannel {
            data: &data,
            scales: Scales::F32(&[2.0]),
        },
    )
    .unwrap();
    w.dequantize_row(0, &mut row);
    assert_eq!(row, [-256.0, 254.0, 0.0, 10.0]);
}

#[test]
fn weights_reject_mismatched_buffers() {
    let packed = [0u8; 8];
    let s = [1.0f32; 2];
    let bad_k = Weights::new(
        2,
        8,
        WeightData::Int4Block32 {
            packed: &packed,
            scales: Scales::F32(&s),
        },
    );
    assert!(bad_k.unwrap_err().message().contains("divisible by 32"));
    let short = Weights::new(
        2,
        9,
        WeightData::Int4PerChannel {
            packed: &packed,
            scales: Scales::F32(&s),
        },
    );
    assert!(short.unwrap_err().message().contains("expected 9"));
    let scales = Weights::new(
        2,
        8,
        WeightData::Int4PerChannel {
            packed: &packed,
            scales: Scales::F32(&s[..1]),
        },
    );
    assert!(scales.unwrap_err().message().contains("scales"));
}

fn simd_tables() -> Vec<&'static Kernels> {
    kernels::available().into_iter().skip(1).collect()
}

#[test]
fn activation_quantization_matches_scalar_exactly_in_every_layout() {
    let mut rng = Rng::new(20);
    let (m, k) = (3, 2080);
    let mut x = rng.activations(m, k);
    x[32..64].fill(0.0); // an all-zero block
    x[64] = 1e-30; // a block whose max is tiny
    for layout in [Q8Layout::Natural, Q8Layout::EvenOdd, Q8Layout::Pairs] {
        let want = Q8Rows::quantize(kernels::scalar(), &x, m, k, layout);
        for table in simd_tables() {
            let got = Q8Rows::quantize(table, &x, m, k, layout);
            assert_eq!(
                got.values(),
                want.values(),
                "{:?} {layout:?} values",
                table.isa
            );
            assert_eq!(
                got.scales(),
                want.scales(),
                "{:?} {layout:?} scales",
                table.isa
            );
            assert_eq!(
                got.row_sums(),
                want.row_sums(),
                "{:?} {layout:?} row sums",
                table.isa
            );
            assert_eq!(
                got.pair_scales(),
                want.pair_scales(),
                "{:?} {layout:?} pair scales",
                table.isa
            );
        }
        // Quantization error: at most half a step of each block's scale.
        for r in 0..m {
            for j in 0..k {
                let step = want.scales()[r * (k / 32) + j / 32];
                let err = (want.dequantized(r, j) - x[r * k + j]).abs();
                assert!(
                    err <= 0.5 * step * 1.0001 + 1e-37,
                    "{layout:?} ({r}, {j}): error {err} > step/2"
                );
            }
        }
    }
}

#[test]
fn even_odd_layout_puts_low_nibble_elements_first() {
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let q = Q8Rows::quantize(kernels::scalar(), &x, 1, 32, Q8Layout::EvenOdd);
    let expected: Vec<i8> = (0..16)
        .map(|i| 2 * i)
        .chain((0..16).map(|i| 2 * i + 1))
        .map(|v| (v as f32 * 127.0 / 31.0).round_ties_even() as i8)
        .collect();
    assert_eq!(q.values(), &expected[..]);
}

#[test]
fn pairs_layout_interleaves_two_blocks_and_leaves_a_last_odd_one_alone() {
    // Three blocks of values 0..96: blocks 0 and 1 as a pair, block 2 alone.
    let x: Vec<f32> = (0..96).map(|i| i as f32).collect();
    let q = Q8Rows::quantize(kernels::scalar(), &x, 1, 96, Q8Layout::Pairs);
    let scale = |b: usize| (31.0 + 32.0 * b as f32) / 127.0;
    let quantized = |j: usize| (j as f32 / scale(j / 32)).round_ties_even() as i8;
    let order: Vec<usize> = (0..16)
        .map(|i| 2 * i)
        .chain((0..16).map(|i| 32 + 2 * i))
        .chain((0..16).map(|i| 2 * i + 1))
        .chain((0..16).map(|i| 33 + 2 * i))
        .chain((0..16).map(|i| 64 + 2 * i))
        .chain((0..16).map(|i| 65 + 2 * i))
        .collect();
    let expected: Vec<i8> = order.iter().map(|&j| quantized(j)).collect();
    assert_eq!(q.values(), &expected[..]);
    let lanes = |a: usize, b: usize| [[scale(a); 4], [scale(b); 4]].concat();
    assert_eq!(q.pair_scales(), &[lanes(0, 1), lanes(2, 2)].concat()[..]);
    for j in 0..96 {
        assert_eq!(q.dequantized(0, j), f32::from(quantized(j)) * scale(j / 32));
    }
}
