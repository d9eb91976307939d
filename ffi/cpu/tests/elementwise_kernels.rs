//! Row and element-wise kernels: every SIMD table against the scalar reference, on lengths that
//! leave every tail (0..7 elements past a whole vector), plus edge values.

mod common;

use common::{assert_close, Rng};
use llamane_cpu::kernels::{self, Kernels, Rows};

const LENS: [usize; 8] = [1, 3, 8, 13, 16, 31, 64, 133];

fn simd_tables() -> Vec<&'static Kernels> {
    kernels::available().into_iter().skip(1).collect()
}

fn scalar() -> &'static Kernels {
    kernels::scalar()
}

/// Element-wise tolerance: `tol * max(|want|, floor)`.
fn magnitudes(want: &[f32], floor: f32) -> Vec<f32> {
    want.iter().map(|w| w.abs().max(floor)).collect()
}

#[test]
fn f16_conversions_match_scalar_exactly_including_edges() {
    let mut rng = Rng::new(10);
    let mut values = rng.normals(1000, 100.0);
    values.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        -1e6,
        1e-8,
        6.0e-5,
        5.96e-8,
        2.98e-8,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ]);
    let bits: Vec<u16> = (0..=u16::MAX)
        .filter(|b| b & 0x7C00 != 0x7C00 || b & 0x3FF == 0)
        .collect();
    for table in simd_tables() {
        for len in [values.len(), 7, 9] {
            let x = &values[..len];
            let (mut want, mut got) = (vec![0u16; len], vec![0u16; len]);
            (scalar().f32_to_f16)(&mut want, x);
            (table.f32_to_f16)(&mut got, x);
            assert_eq!(got, want, "{:?} f32_to_f16 len {len}", table.isa);
        }
        let (mut want, mut got) = (vec![0f32; bits.len()], vec![0f32; bits.len()]);
        (scalar().f16_to_f32)(&mut want, &bits);
        (table.f16_to_f32)(&mut got, &bits);
        let same = got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{:?} f16_to_f32 differs on some finite or infinite half",
            table.isa
        );
    }
}

#[test]
fn add_and_silu_mul_match_scalar() {
    let mut rng = Rng::new(11);
    for table in simd_tables() {
        for len in LENS {
            let a = rng.normals(len, 4.0);
            let b = rng.normals(len, 1.0);
            let (mut want, mut got) = (vec![0f32; len], vec![0f32; len]);
            (scalar().add)(&mut want, &a, &b);
            (table.add)(&mut got, &a, &b);
            assert_eq!(got, want, "{:?} add len {len}", table.isa);
            (scalar().silu_mul)(&mut want, &a, &b);
            (table.silu_mul)(&mut got, &a, &b);
            let what = format!("{:?} silu_mul len {len}", table.isa);
            assert_close(&what, &got, &want, &magnitudes(&want, 1e-6), 4e-6);
        }
        // Saturated gates: exp overflows to inf or underflows to 0.
        let a = [-100.0f32, -88.0, -20.0, 0.0, 20.0, 88.0, 100.0, 1e30, -1e30];
        let b = [1.5f32; 9];
        let (mut want, mut got) = (vec![0f32; 9], vec![0f32; 9]);
        (scalar().silu_mul)(&mut want, &a, &b);
        (table.silu_mul)(&mut got, &a, &b);
        let what = format!("{:?} silu_mul extremes", table.isa);
        assert_close(&what, &got, &want, &magnitudes(&want, 1e-30), 4e-6);
    }
}

#[test]
fn norms_match_scalar() {
    let mut rng = Rng::new(12);
    for table in simd_tables() {
        for dim in LENS {
            let rows = 3;
            // An offset of 10 exercises layer norm's mean subtraction.
            let x: Vec<f32> = rng
                .normals(rows * dim, 2.0)
                .iter()
                .map(|v| v + 10.0)
                .collect();
            let gamma = rng.normals(dim, 1.0);
            let beta = rng.normals(dim, 1.0);
            let (mut want, mut got) = (vec![0f32; rows * dim], vec![0f32; rows * dim]);
            (scalar().rms_norm)(&mut want, &x, &gamma, 1e-5);
            (table.rms_norm)(&mut got, &x, &gamma, 1e-5);
            let what = format!("{:?} rms_norm dim {dim}", table.isa);
            assert_close(&what, &got, &want, &magnitudes(&want, 1e-3), 4e-6);
            for (g, b) in [
                (Some(&gamma[..]), Some(&beta[..])),
                (None, None),
                (Some(&gamma[..]), None),
            ] {
                (scalar().layer_norm)(&mut want, &x, dim, g, b, 1e-5);
                (table.layer_norm)(&mut got, &x, dim, g, b, 1e-5);
                let what = format!(
                    "{:?} layer_norm dim {dim} gamma {} beta {}",
                    table.isa,
                    g.is_some(),
                    b.is_some()
                );
                // Relative to the row's scale: (x - mean) / std is O(1), gamma and beta O(1).
                assert_close(&what, &got, &want, &vec![1.0; want.len()], 2e-5);
            }
        }
    }
}

#[test]
fn softmax_matches_scalar_with_masked_entries() {
    let mut rng = Rng::new(13);
    for table in simd_tables() {
        for dim in LENS {
            let rows = 3;
            let mut x = rng.normals(rows * dim, 5.0);
            // A causal-mask style row: -inf past some position (never the whole row).
            for (j, v) in x[dim..2 * dim].iter_mut().enumerate() {
                if j > dim / 2 {
                    *v = f32::NEG_INFINITY;
                }
            }
            x[2 * dim] = -1e4;
            let (mut want, mut got) = (vec![0f32; rows * dim], vec![0f32; rows * dim]);
            (scalar().softmax)(&mut want, &x, dim);
            (table.softmax)(&mut got, &x, dim);
            let what = format!("{:?} softmax dim {dim}", table.isa);
            assert_close(&what, &got, &want, &magnitudes(&want, 1e-7), 4e-6);
            for row in got.chunks(dim) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{what}: row sums to {sum}");
            }
            assert!(
                got[dim..2 * dim]
                    .iter()
                    .skip(dim / 2 + 1)
                    .all(|&v| v == 0.0),
                "{what}: masked not 0"
            );
        }
    }
}

#[test]
fn rope_matches_scalar_and_rotates_half_split_pairs() {
    let mut rng = Rng::new(14);
    for table in simd_tables() {
        for half in [1, 3, 4, 5, 32, 33] {
            let rows = 4;
            let x = rng.normals(rows * 2 * half, 1.0);
            let angles: Vec<f32> = (0..half).map(|i| 0.37 * i as f32 + 0.1).collect();
            let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
            let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
            let (mut want, mut got) = (vec![0f32; x.len()], vec![0f32; x.len()]);
            (scalar().rope)(&mut want, &x, &cos, &sin);
            (table.rope)(&mut got, &x, &cos, &sin);
            let what = format!("{:?} rope half {half}", table.isa);
            assert_close(&what, &got, &want, &vec![1.0; x.len()], 1e-6);
        }
    }
    // The reference itself: pairs are (x[i], x[i + half]); (1, 0) rotated by 90 degrees is
    // (0, 1), (0, 2) rotated by 0 degrees stays.
    let mut out = [0f32; 4];
    (scalar().rope)(&mut out, &[1.0, 0.0, 0.0, 2.0], &[0.0, 1.0], &[1.0, 0.0]);
    assert_eq!(out, [0.0, 0.0, 1.0, 2.0]);
}

#[test]
fn silu_and_sigmoid_match_scalar_including_saturation() {
    let mut rng = Rng::new(15);
    for table in simd_tables() {
        for len in LENS {
            let mut x = rng.normals(len, 6.0);
            if len >= 9 {
                x[..9]
                    .copy_from_slice(&[-100.0, -88.0, -20.0, 0.0, 20.0, 88.0, 100.0, 1e30, -1e30]);
            }
            let (mut want, mut got) = (vec![0f32; len], vec![0f32; len]);
            for (name, reference, simd) in [
                ("silu", scalar().silu, table.silu),
                ("sigmoid", scalar().sigmoid, table.sigmoid),
            ] {
                reference(&mut want, &x);
                simd(&mut got, &x);
                let what = format!("{:?} {name} len {len}", table.isa);
                assert_close(&what, &got, &want, &magnitudes(&want, 1e-30), 4e-6);
            }
        }
    }
}

#[test]
fn softmax_of_a_fully_masked_row_is_zero_and_masked_tails_change_nothing() {
    let mut rng = Rng::new(16);
    for table in kernels::available() {
        let dim = 40;
        let mut x = vec![f32::NEG_INFINITY; 2 * dim];
        let visible = rng.normals(33, 3.0);
        x[dim..dim + 33].copy_from_slice(&visible);
        let mut got = vec![1f32; 2 * dim];
        (table.softmax)(&mut got, &x, dim);
        assert!(
            got[..dim].iter().all(|&v| v == 0.0),
            "{:?}: {got:?}",
            table.isa
        );
        // The same 33 visible entries without the 7 masked ones: bit-identical.
        let mut short = vec![0f32; 33];
        (table.softmax)(&mut short, &visible, 33);
        assert_eq!(short, got[dim..dim + 33], "{:?}", table.isa);
    }
}

#[test]
fn matmul_rows_matches_scalar_for_f32_and_f16_operands() {
    use llamane_cpu::kernels::out_columns::OutColumns;
    let mut rng = Rng::new(17);
    for table in simd_tables() {
        for (m, k, n) in [
            (1, 1, 1),
            (2, 7, 8),
            (3, 130, 33),
            (5, 300, 64),
            (4, 129, 70),
            (1, 40, 16),
        ] {
            let a = rng.normals(m * k, 1.0);
            let b = rng.normals(k * n, 1.0);
            let halves: Vec<u16> = b
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            for rows in [Rows::F32(&b), Rows::F16(&halves)] {
                let (mut want, mut got) = (vec![0f32; m * n], vec![7f32; m * n]);
                (scalar().matmul_rows)(&mut OutColumns::full(&mut want, m, n), &a, rows);
                (table.matmul_rows)(&mut OutColumns::full(&mut got, m, n), &a, rows);
                let what = format!("{:?} matmul_rows m={m} k={k} n={n}", table.isa);
                // Both fuse every multiply-add in the same order: identical.
                assert_eq!(got, want, "{what}");
            }
        }
    }
}

#[test]
fn transpose_matches_scalar_and_its_definition() {
    let mut rng = Rng::new(16);
    for table in simd_tables() {
        for (rows, width) in [(1, 1), (8, 8), (13, 64), (24, 9), (7, 3)] {
            let x = rng.normals(rows * width, 1.0);
            let halves: Vec<u16> = x
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            // Columns from 3 on, in rows of 40: the kernel writes into the middle of a matrix.
            let stride = rows + 5;
            for source in [Rows::F32(&x), Rows::F16(&halves)] {
                let len = 3 + (width - 1) * stride + rows;
                let (mut want, mut got) = (vec![-1f32; len], vec![-1f32; len]);
                (scalar().transpose)(&mut want[3..], stride, source, width);
                (table.transpose)(&mut got[3..], stride, source, width);
                let what = format!("{:?} transpose [{rows}, {width}]", table.isa);
                assert_eq!(got, want, "{what}");
                for r in 0..rows {
                    for c in 0..width {
                        assert_eq!(
                            want[3 + c * stride + r],
                            source.get(r * width + c),
                            "{what}"
                        );
                    }
                }
                // Nothing outside the columns 0..rows of each row is touched.
                assert!(want[..3].iter().all(|&v| v == -1.0));
                assert!((0..width).all(|c| want[3 + c * stride + rows..]
                    .iter()
                    .take(stride - rows)
                    .all(|&v| v == -1.0)));
            }
        }
    }
}
