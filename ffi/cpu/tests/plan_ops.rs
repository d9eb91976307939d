//! Every step kind of a plan against a naive reference on small shapes: broadcasting and
//! transposes, every weight format, mixed input and output types, and f16 rounding of outputs.

mod common;

use common::plan_builder::{bytes_of, f16_bytes, i32_bytes, rounded, values_of, PlanBuilder};
use common::Rng;
use llamane_cpu::quantize::{pack_int4, quantize_symmetric};
use serde_json::json;

/// Row-major index of `index` in `shape`.
fn ravel(index: &[usize], shape: &[usize]) -> usize {
    index.iter().zip(shape).fold(0, |acc, (&i, &s)| acc * s + i)
}

/// The multi-index of flat `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        index[d] = i % shape[d];
        i /= shape[d];
    }
    index
}

/// Flat index in `shape` (broadcast to `out`) read at out's multi-index.
fn broadcast_at(out_index: &[usize], shape: &[usize]) -> usize {
    let offset = out_index.len() - shape.len();
    let index: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &s)| if s == 1 { 0 } else { out_index[offset + d] })
        .collect();
    ravel(&index, shape)
}

fn assert_near(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * scale,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol} x {scale})"
        );
    }
}

fn run_one(b: &PlanBuilder) -> Vec<u8> {
    b.run().unwrap_or_else(|e| panic!("{e}")).remove(0)
}

/// A weight in one of the linear formats: `(dtype, data bytes, scales, group, dequantized)`.
struct Format {
    name: &'static str,
    dtype: &'static str,
    bits: u32,
    group: Option<usize>,
}

const FORMATS: [Format; 6] = [
    Format {
        name: "f32",
        dtype: "f32",
        bits: 0,
        group: None,
    },
    Format {
        name: "f16",
        dtype: "f16",
        bits: 0,
        group: None,
    },
    Format {
        name: "c8w",
        dtype: "i8",
        bits: 8,
        group: Some(0),
    },
    Format {
        name: "c4w",
        dtype: "i4",
        bits: 4,
        group: Some(0),
    },
    Format {
        name: "b4w",
        dtype: "i4",
        bits: 4,
        group: Some(32),
    },
    Format {
        name: "int8 per block of 32",
        dtype: "i8",
        bits: 8,
        group: Some(32),
    },
];

/// Adds `w [n, k]` as a weight operand in `format` (group 0 = per channel); returns the JSON
/// operand and the dequantized values the kernels must use.
fn add_weight(
    b: &mut PlanBuilder,
    format: &Format,
    w: &[f32],
    (n, k): (usize, usize),
    scale_dtype: &str,
) -> (serde_json::Value, Vec<f32>) {
    match format.group {
        None => {
            let t = b.weight(format.dtype, &[n, k], w);
            (json!({ "data": t }), rounded(format.dtype, w))
        }
        Some(g) => {
            let group = if g == 0 { k } else { g };
            let (q, scales) = quantize_symmetric(w, n, k, format.bits, group);
            let scales = rounded(scale_dtype, &scales);
            let data = if format.dtype == "i4" {
                pack_int4(&q)
            } else {
                q.iter().map(|&v| v as u8).collect()
            };
            let dt = b.weight_bytes(format.dtype, &[n, k], &data);
            let st = b.weight(scale_dtype, &[n, k / group], &scales);
            let deq = q
                .iter()
                .enumerate()
                .map(|(i, &v)| f32::from(v) * scales[(i / k) * (k / group) + (i % k) / group])
                .collect();
            (json!({ "data": dt, "scale": st, "group": group }), deq)
        }
    }
}

#[test]
fn linear_matches_the_dequantized_product_for_every_format() {
    let mut rng = Rng::new(100);
    let (m, n, k) = (5, 24, 64);
    for format in &FORMATS {
        for (x_dtype, out_dtype, scale_dtype) in [("f32", "f32", "f32"), ("f16", "f16", "f16")] {
            let x = rng.activations(m, k);
            let w = rng.normals(n * k, 0.1);
            let bias = rng.normals(n, 0.5);
            let mut b = PlanBuilder::new();
            let xt = b.input(x_dtype, &[1, m, k], &x);
            let (weight, deq) = add_weight(&mut b, format, &w, (n, k), scale_dtype);
            let bt = b.weight(scale_dtype, &[n], &bias);
            let out = b.output(out_dtype, &[1, m, n]);
            b.step(json!({ "op": "linear", "x": xt, "weight": weight, "bias": bt, "out": out }));
            let got = values_of(out_dtype, &run_one(&b));
            let (x, bias) = (rounded(x_dtype, &x), rounded(scale_dtype, &bias));
            let want: Vec<f64> = (0..m * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    let dot: f64 = (0..k)
                        .map(|j| f64::from(x[r * k + j]) * f64::from(deq[c * k + j]))
                        .sum();
                    dot + f64::from(bias[c])
                })
                .collect();
            // Quantized weights take int8 activations (about 1% error); dense ones are exact up
            // to f32 (or the f16 output's) rounding.
            let tol = match (format.group, out_dtype) {
                (Some(_), _) => 3e-2,
                (None, "f16") => 2e-3,
                _ => 1e-5,
            };
            assert_near(
                &format!("linear {} {x_dtype}", format.name),
                &got,
                &want,
                tol,
            );
        }
    }
}

#[test]
fn linear_with_an_odd_k_uses_f32_activations_exactly() {
    // K = 40 is not a multiple of 32: even quantized weights take the f32 path.
    let mut rng = Rng::new(101);
    let (m, n, k) = (3, 8, 40);
    let x = rng.activations(m, k);
    let w = rng.normals(n * k, 0.1);
    let mut b = PlanBuilder::new();
    let xt = b.input("f32", &[m, k], &x);
    let (weight, deq) = add_weight(&mut b, &FORMATS[3], &w, (n, k), "f32");
    let out = b.output("f32", &[m, n]);
    b.step(json!({ "op": "linear", "x": xt, "weight": weight, "out": out }));
    let got = values_of("f32", &run_one(&b));
    let want: Vec<f64> = (0..m * n)
        .map(|i| {
            (0..k)
                .map(|j| f64::from(x[(i / n) * k + j]) * f64::from(deq[(i % n) * k + j]))
                .sum()
        })
        .collect();
    assert_near("linear odd k", &got, &want, 1e-5);
}

#[test]
fn gather_reads_dense_and_quantized_tables() {
    let mut rng = Rng::new(102);
    let (v, d) = (10, 32);
    let table = rng.normals(v * d, 1.0);
    let indices = [3, 0, 9, 3, 7, 1];
    let cases = [
        (&FORMATS[0], None),
        (&FORMATS[1], None),
        (&FORMATS[2], Some(0)),
        (&FORMATS[3], Some(16)),
    ];
    for (format, group) in cases {
        for out_dtype in ["f32", "f16"] {
            let format = Format {
                group: group.or(format.group),
                ..*format
            };
            let mut b = PlanBuilder::new();
            let it = b.input_bytes("i32", &[2, 3], i32_bytes(&indices));
            let (weight, deq) = add_weight(&mut b, &format, &table, (v, d), "f16");
            let out = b.output(out_dtype, &[2, 3, d]);
            b.step(json!({ "op": "gather", "table": weight, "indices": it, "out": out }));
            let got = values_of(out_dtype, &run_one(&b));
            let want: Vec<f32> = indices
                .iter()
                .flat_map(|&i| deq[i as usize * d..(i as usize + 1) * d].to_vec())
                .collect();
            assert_eq!(
                got,
                rounded(out_dtype, &want),
                "gather {} {out_dtype}",
                format.name
            );
        }
    }
}

#[test]
fn gather_fails_the_run_on_an_index_outside_the_table() {
    let mut b = PlanBuilder::new();
    let it = b.input_bytes("i32", &[3], i32_bytes(&[0, 4, 1]));
    let t = b.weight("f32", &[4, 2], &[0.0; 8]);
    let out = b.output("f32", &[3, 2]);
    b.step(json!({ "op": "gather", "table": { "data": t }, "indices": it, "out": out }));
    let err = b.run().unwrap_err();
    assert!(
        err.contains("step 0 (gather)") && err.contains("index 4 at position 1"),
        "{err}"
    );
    b.input_data[0] = i32_bytes(&[0, -1, 1]);
    let err = b.run().unwrap_err();
    assert!(err.contains("index -1"), "{err}");
}

#[test]
fn dequantize_writes_the_dense_matrix() {
    let mut rng = Rng::new(103);
    let (n, k) = (6, 64);
    let w = rng.normals(n * k, 1.0);
    for format in &FORMATS {
        let mut b = PlanBuilder::new();
        let (weight, deq) = add_weight(&mut b, format, &w, (n, k), "f32");
        let out = b.output("f16", &[n, k]);
        b.step(json!({ "op": "dequantize", "weight": weight, "out": out }));
        let got = values_of("f16", &run_one(&b));
        assert_eq!(got, rounded("f16", &deq), "dequantize {}", format.name);
    }
}

#[test]
fn norms_match_their_definitions() {
    let mut rng = Rng::new(104);
    let (rows, d) = (3, 37);
    let x = rng.normals(rows * d, 3.0);
    let gain = rng.normals(d, 1.0);
    let beta = rng.normals(d, 1.0);
    let eps = 1e-5;
    let mut b = PlanBuilder::new();
    let xt = b.input("f32", &[rows, d], &x);
    let gt = b.weight("f32", &[d], &gain);
    let bt = b.inline(
        "f32",
        &[d],
        &beta.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
    );
    let rms = b.output("f32", &[rows, d]);
    let ln = b.output("f32", &[rows, d]);
    let ln_plain = b.output("f16", &[rows, d]);
    b.step(json!({ "op": "rms_norm", "x": xt, "gain": gt, "eps": eps, "out": rms }));
    b.step(json!({ "op": "layer_norm", "x": xt, "gamma": gt, "beta": bt, "eps": eps, "out": ln }));
    b.step(json!({ "op": "layer_norm", "x": xt, "eps": eps, "out": ln_plain }));
    let outs = b.run().unwrap();
    let (mut want_rms, mut want_ln, mut want_plain) = (vec![], vec![], vec![]);
    for row in x.chunks(d) {
        let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let ms = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        for (j, v) in row.iter().enumerate() {
            want_rms.push(v / (ms + eps).sqrt() * f64::from(gain[j]));
            let normed = (v - mean) / (var + eps).sqrt();
            want_ln.push(normed * f64::from(gain[j]) + f64::from(beta[j]));
            want_plain.push(normed);
        }
    }
    assert_near("rms_norm", &values_of("f32", &outs[0]), &want_rms, 1e-5);
    assert_near("layer_norm", &values_of("f32", &outs[1]), &want_ln, 1e-5);
    assert_near(
        "layer_norm f16",
        &values_of("f16", &outs[2]),
        &want_plain,
        1e-3,
    );
}

/// Runs `a kind b` with the given shapes and checks every element against the naive broadcast.
fn check_binary(kind: &str, a_shape: &[usize], b_shape: &[usize], out_shape: &[usize]) {
    let mut rng = Rng::new(105);
    let a: Vec<f32> = rng.normals(a_shape.iter().product(), 2.0);
    let bv: Vec<f32> = rng
        .normals(b_shape.iter().product(), 2.0)
        .iter()
        .map(|v| v + 3.0)
        .collect();
    let mut b = PlanBuilder::new();
    let at = b.input("f32", a_shape, &a);
    let bt = b.input("f16", b_shape, &bv);
    let out = b.output("f32", out_shape);
    b.step(json!({ "op": "binary", "kind": kind, "a": at, "b": bt, "out": out }));
    let got = values_of("f32", &run_one(&b));
    let bv = rounded("f16", &bv);
    let count: usize = out_shape.iter().product();
    for (i, &g) in got.iter().enumerate().take(count) {
        let index = unravel(i, out_shape);
        let (x, y) = (
            a[broadcast_at(&index, a_shape)],
            bv[broadcast_at(&index, b_shape)],
        );
        let want = match kind {
            "add" => x + y,
            "sub" => x - y,
            "mul" => x * y,
            _ => x / y,
        };
        assert_eq!(g, want, "{kind} {a_shape:?} {b_shape:?} at {index:?}");
    }
}

#[test]
fn binary_broadcasts_like_numpy_up_to_rank_5() {
    check_binary("add", &[2, 3, 4], &[4], &[2, 3, 4]);
    check_binary("sub", &[2, 1, 4], &[3, 1], &[2, 3, 4]);
    check_binary("mul", &[1, 8, 4, 8], &[8, 1, 8], &[1, 8, 4, 8]);
    check_binary("add", &[2, 2, 8, 40], &[1, 8, 40], &[2, 2, 8, 40]);
    check_binary("div", &[], &[2, 3], &[2, 3]);
    check_binary("mul", &[2, 3], &[], &[2, 3]);
    check_binary("sub", &[2, 1, 3, 1, 2], &[1, 4, 1, 5, 1], &[2, 4, 3, 5, 2]);
    check_binary("add", &[], &[], &[]);
}

#[test]
fn unary_activations_match_their_definitions() {
    let x: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.7).collect();
    let mut b = PlanBuilder::new();
    let xt = b.input("f32", &[4, 10], &x);
    let outs: Vec<usize> = (0..3).map(|_| b.output("f32", &[4, 10])).collect();
    for (kind, &out) in ["silu", "sigmoid", "rsqrt"].iter().zip(&outs) {
        b.step(json!({ "op": "unary", "kind": kind, "eps": 30.0, "x": xt, "out": out }));
    }
    let outs = b.run().unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let silu: Vec<f64> = x64.iter().map(|v| v / (1.0 + (-v).exp())).collect();
    let sigmoid: Vec<f64> = x64.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let rsqrt: Vec<f64> = x64.iter().map(|v| 1.0 / (v + 30.0).sqrt()).collect();
    assert_near("silu", &values_of("f32", &outs[0]), &silu, 1e-6);
    assert_near("sigmoid", &values_of("f32", &outs[1]), &sigmoid, 1e-6);
    assert_near("rsqrt", &values_of("f32", &outs[2]), &rsqrt, 1e-6);
}

#[test]
fn softmax_normalizes_rows_and_zeroes_fully_masked_ones() {
    let inf = f32::NEG_INFINITY;
    let x = [
        1.0, 2.0, 3.0, inf, 0.5, //
        inf, inf, inf, inf, inf, //
        -1e4, 0.0, inf, 7.0, 7.0,
    ];
    let mut b = PlanBuilder::new();
    let xt = b.input("f16", &[3, 5], &x);
    let out = b.output("f32", &[3, 5]);
    b.step(json!({ "op": "softmax", "x": xt, "out": out }));
    let got = values_of("f32", &run_one(&b));
    let mut want = Vec::new();
    for row in x.chunks(5) {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let e: Vec<f64> = row
            .iter()
            .map(|&v| {
                if max == f64::NEG_INFINITY {
                    0.0
                } else {
                    (f64::from(v) - max).exp()
                }
            })
            .collect();
        let sum: f64 = e.iter().sum();
        want.extend(e.iter().map(|v| if sum == 0.0 { 0.0 } else { v / sum }));
    }
    assert_near("softmax", &got, &want, 1e-6);
    assert!(got[5..10].iter().all(|&v| v == 0.0), "{got:?}");
}

/// Naive batched matmul with NumPy batch broadcasting.
fn naive_matmul(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    (ta, tb): (bool, bool),
    out_shape: &[usize],
) -> Vec<f64> {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let k = if ta {
        a_shape[a_shape.len() - 2]
    } else {
        a_shape[a_shape.len() - 1]
    };
    let batch = &out_shape[..r - 2];
    let a_batch = &a_shape[..a_shape.len() - 2];
    let b_batch = &b_shape[..b_shape.len() - 2];
    let count: usize = batch.iter().product();
    let mut out = Vec::new();
    for bi in 0..count {
        let index = unravel(bi, batch);
        let a0 = broadcast_at(&index, a_batch) * m * k;
        let b0 = broadcast_at(&index, b_batch) * k * n;
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| {
                        let av = if ta {
                            a[a0 + p * m + i]
                        } else {
                            a[a0 + i * k + p]
                        };
                        let bv = if tb {
                            b[b0 + j * k + p]
                        } else {
                            b[b0 + p * n + j]
                        };
                        f64::from(av) * f64::from(bv)
                    })
                    .sum();
                out.push(s);
            }
        }
    }
    out
}

fn check_matmul(
    a_shape: &[usize],
    b_shape: &[usize],
    flags: (bool, bool),
    out_shape: &[usize],
    dtype: &str,
) {
    let mut rng = Rng::new(106);
    let a = rounded(dtype, &rng.normals(a_shape.iter().product(), 1.0));
    let bv = rounded(dtype, &rng.normals(b_shape.iter().product(), 1.0));
    let mut b = PlanBuilder::new();
    let at = b.input(dtype, a_shape, &a);
    let bt = b.input(dtype, b_shape, &bv);
    let out = b.output("f32", out_shape);
    b.step(json!({
        "op": "matmul", "a": at, "b": bt, "transposeA": flags.0, "transposeB": flags.1, "out": out
    }));
    let got = values_of("f32", &run_one(&b));
    let want = naive_matmul(&a, a_shape, &bv, b_shape, flags, out_shape);
    assert_near(
        &format!("matmul {a_shape:?} {b_shape:?} {flags:?} {dtype}"),
        &got,
        &want,
        1e-5,
    );
}

#[test]
fn matmul_handles_transposes_and_batch_broadcasting() {
    for dtype in ["f32", "f16"] {
        check_matmul(&[3, 5], &[5, 4], (false, false), &[3, 4], dtype);
        check_matmul(&[5, 3], &[5, 4], (true, false), &[3, 4], dtype);
        check_matmul(&[3, 5], &[4, 5], (false, true), &[3, 4], dtype);
        check_matmul(&[5, 3], &[4, 5], (true, true), &[3, 4], dtype);
        check_matmul(
            &[2, 1, 3, 5],
            &[4, 5, 6],
            (false, false),
            &[2, 4, 3, 6],
            dtype,
        );
        // Attention: grouped queries against shared keys, then probabilities against values.
        check_matmul(
            &[2, 3, 4, 8],
            &[2, 1, 37, 8],
            (false, true),
            &[2, 3, 4, 37],
            dtype,
        );
        check_matmul(
            &[2, 3, 4, 37],
            &[2, 1, 37, 8],
            (false, false),
            &[2, 3, 4, 8],
            dtype,
        );
        check_matmul(
            &[1, 2, 3, 4, 5],
            &[2, 1, 1, 5, 3],
            (false, false),
            &[2, 2, 3, 4, 3],
            dtype,
        );
        check_matmul(
            &[2, 3, 70],
            &[1, 70, 33],
            (false, false),
            &[2, 3, 33],
            dtype,
        );
    }
}

#[test]
fn matmul_with_an_empty_inner_axis_gives_zeros() {
    let mut b = PlanBuilder::new();
    let at = b.input("f32", &[2, 0], &[]);
    let bt = b.input("f32", &[0, 3], &[]);
    let out = b.output("f32", &[2, 3]);
    b.step(json!({
        "op": "matmul", "a": at, "b": bt, "transposeA": false, "transposeB": false, "out": out
    }));
    assert_eq!(values_of("f32", &run_one(&b)), vec![0.0; 6]);
}

#[test]
fn transpose_permutes_axes_exactly() {
    let shapes_and_perms: [(&[usize], &[usize]); 5] = [
        (&[2, 3], &[1, 0]),
        (&[1, 8, 2, 16], &[0, 2, 1, 3]),
        (&[8, 2, 2, 16], &[1, 2, 0, 3]),
        (&[2, 3, 4, 5, 2], &[4, 2, 0, 3, 1]),
        (&[3, 4, 5], &[0, 1, 2]),
    ];
    let mut rng = Rng::new(107);
    for (shape, perm) in shapes_and_perms {
        for (in_dtype, out_dtype) in [("f16", "f16"), ("f32", "f16"), ("i32", "i32")] {
            let count: usize = shape.iter().product();
            let x: Vec<f32> = rng
                .normals(count, 100.0)
                .iter()
                .map(|v| v.round())
                .collect();
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let mut b = PlanBuilder::new();
            let xt = b.input(in_dtype, shape, &x);
            let out = b.output(out_dtype, &out_shape);
            b.step(json!({ "op": "transpose", "x": xt, "perm": perm, "out": out }));
            let got = values_of(out_dtype, &run_one(&b));
            let x = rounded(in_dtype, &x);
            for (i, &g) in got.iter().enumerate() {
                let oi = unravel(i, &out_shape);
                let mut xi = vec![0; shape.len()];
                for (d, &p) in perm.iter().enumerate() {
                    xi[p] = oi[d];
                }
                let want = rounded(out_dtype, &[x[ravel(&xi, shape)]])[0];
                assert_eq!(
                    g, want,
                    "transpose {shape:?} {perm:?} {in_dtype}->{out_dtype}"
                );
            }
        }
    }
}

#[test]
fn concat_and_split_are_inverse_along_any_axis() {
    let mut rng = Rng::new(108);
    for axis in 0..3 {
        let sizes = [2, 1, 3];
        let shape_with = |s: usize| {
            let mut shape = vec![2, 3, 4];
            shape[axis] = s;
            shape
        };
        let parts: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&s| rng.normals(shape_with(s).iter().product(), 1.0))
            .collect();
        let total = shape_with(sizes.iter().sum());
        let mut b = PlanBuilder::new();
        let ins: Vec<usize> = parts
            .iter()
            .zip(sizes)
            .map(|(p, s)| b.input("f16", &shape_with(s), p))
            .collect();
        let joined = b.arena("f32", &total);
        let outs: Vec<usize> = sizes
            .iter()
            .map(|&s| b.output("f16", &shape_with(s)))
            .collect();
        let whole = b.output("f32", &total);
        b.step(json!({ "op": "concat", "inputs": ins, "axis": axis, "out": joined }));
        b.step(json!({ "op": "split", "x": joined, "axis": axis, "outs": outs }));
        b.step(json!({ "op": "copy", "x": joined, "out": whole }));
        let got = b.run().unwrap();
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(
                values_of("f16", &got[i]),
                rounded("f16", part),
                "axis {axis} part {i}"
            );
        }
        // The joined tensor, element by element.
        let joined = values_of("f32", &got[3]);
        for (i, &v) in joined.iter().enumerate() {
            let mut index = unravel(i, &total);
            let (mut part, mut at) = (0, index[axis]);
            while at >= sizes[part] {
                at -= sizes[part];
                part += 1;
            }
            index[axis] = at;
            let want = rounded(
                "f16",
                &[parts[part][ravel(&index, &shape_with(sizes[part]))]],
            )[0];
            assert_eq!(v, want, "concat axis {axis} element {i}");
        }
    }
}

#[test]
fn cast_truncates_toward_zero_and_rounds_to_f16_nearest_even() {
    let x = [
        -2.7f32,
        -0.5,
        0.5,
        2.7,
        3e9,
        -3e9,
        65520.0,
        1.0 + 1.0 / 2048.0,
    ];
    let mut b = PlanBuilder::new();
    let xt = b.input("f32", &[8], &x);
    let ints = b.output("i32", &[8]);
    let halves = b.output("f16", &[8]);
    let back = b.output("f32", &[8]);
    b.step(json!({ "op": "cast", "x": xt, "out": ints }));
    b.step(json!({ "op": "cast", "x": xt, "out": halves }));
    b.step(json!({ "op": "cast", "x": ints, "out": back }));
    let outs = b.run().unwrap();
    assert_eq!(
        values_of("i32", &outs[0]),
        [
            -2.0,
            0.0,
            0.0,
            2.0,
            i32::MAX as f32,
            i32::MIN as f32,
            65520.0,
            1.0
        ]
    );
    // 65520 is halfway between 65504 (odd) and 2^16: it rounds to inf. 1 + 2^-11 is halfway
    // between 1 and 1 + 2^-10: even is 1.
    let halves = values_of("f16", &outs[1]);
    assert_eq!(halves[6], f32::INFINITY);
    assert_eq!(halves[7], 1.0);
    assert_eq!(halves, rounded("f16", &x));
    assert_eq!(values_of("f32", &outs[2])[3], 2.0);
}

#[test]
fn f16_outputs_round_to_nearest_even() {
    // a + b lands exactly between two f16 values: ties go to the even significand.
    let ulp = 1.0 / 1024.0;
    let a = [1.0f32, 1.0, 1.0 + ulp, 2048.0, -1.0];
    let b = [ulp / 2.0, 3.0 * ulp / 2.0, ulp / 2.0, 1.0, -ulp / 2.0];
    let mut pb = PlanBuilder::new();
    let at = pb.input("f32", &[5], &a);
    let bt = pb.input("f32", &[5], &b);
    let out = pb.output("f16", &[5]);
    pb.step(json!({ "op": "binary", "kind": "add", "a": at, "b": bt, "out": out }));
    let got = values_of("f16", &run_one(&pb));
    assert_eq!(got, [1.0, 1.0 + 2.0 * ulp, 1.0 + 2.0 * ulp, 2048.0, -1.0]);
}

#[test]
fn reduce_mean_keeps_or_drops_the_reduced_axes() {
    let mut rng = Rng::new(109);
    let shape = [2, 3, 4];
    let x = rng.normals(24, 1.0);
    for (axes, out_shape) in [
        (vec![1], vec![2, 1, 4]),
        (vec![1], vec![2, 4]),
        (vec![0, 2], vec![3]),
        (vec![2], vec![2, 3, 1]),
        (vec![0, 1, 2], vec![]),
    ] {
        let mut b = PlanBuilder::new();
        let xt = b.input("f32", &shape, &x);
        let out = b.output("f32", &out_shape);
        b.step(json!({ "op": "reduce_mean", "x": xt, "axes": axes, "out": out }));
        let got = values_of("f32", &run_one(&b));
        let kept: Vec<usize> = (0..3)
            .map(|d| if axes.contains(&d) { 1 } else { shape[d] })
            .collect();
        let mut want = vec![0f64; kept.iter().product()];
        let count = 24 / want.len();
        for (i, &v) in x.iter().enumerate() {
            let mut index = unravel(i, &shape);
            for &a in &axes {
                index[a] = 0;
            }
            want[ravel(&index, &kept)] += f64::from(v) / count as f64;
        }
        assert_near(
            &format!("reduce_mean {axes:?} -> {out_shape:?}"),
            &got,
            &want,
            1e-6,
        );
    }
}

#[test]
fn copy_keeps_the_bytes_under_another_shape() {
    let x: Vec<f32> = (0..12).map(|i| i as f32 * 1.5).collect();
    let mut b = PlanBuilder::new();
    let xt = b.input("f16", &[3, 4], &x);
    let out = b.output("f16", &[2, 6]);
    b.step(json!({ "op": "copy", "x": xt, "out": out }));
    assert_eq!(run_one(&b), f16_bytes(&x));
}

#[test]
fn arena_views_share_bytes_between_steps() {
    // Step 0 writes an arena tensor; a view of the same bytes with another shape feeds step 1,
    // as the planner does for reshapes.
    let x: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let mut b = PlanBuilder::new();
    let xt = b.input("f32", &[2, 4], &x);
    let doubled = b.arena("f32", &[2, 4]);
    let view = b.tensor("f32", &[4, 2], json!({ "kind": "arena", "offset": 0 }));
    let out = b.output("f32", &[2, 4]);
    let two = b.inline("f32", &[], &[2.0]);
    b.step(json!({ "op": "binary", "kind": "mul", "a": xt, "b": two, "out": doubled }));
    b.step(json!({ "op": "transpose", "x": view, "perm": [1, 0], "out": out }));
    let got = values_of("f32", &run_one(&b));
    // doubled viewed as [4, 2] = [[0,2],[4,6],[8,10],[12,14]], transposed.
    assert_eq!(got, [0.0, 4.0, 8.0, 12.0, 2.0, 6.0, 10.0, 14.0]);
    assert_eq!(bytes_of("f32", &got).len(), 32);
}
