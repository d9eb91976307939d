//! The fused steps against what they replace: `fused_linear` against its linears (bit for bit),
//! `attention` against softmax of the masked scores times the values (reading the KV cache and
//! the new entries in place, skipping keys no row sees), `rope` and `silu_mul` against their
//! definitions.

mod common;

use common::plan_builder::{bytes_of, values_of, PlanBuilder};
use common::Rng;
use serde_json::{json, Value};

#[test]
fn fused_linear_equals_its_linears_bit_for_bit() {
    let mut rng = Rng::new(300);
    // k = 96 is three blocks: a pair and a block alone for the int4 kernels.
    for (format, k) in [
        ("c4w", 96),
        ("c4w", 128),
        ("b4w", 96),
        ("c8w", 64),
        ("f16", 64),
        ("f32", 40),
    ] {
        for m in [1, 5] {
            let sizes = [16, 24, 8];
            let ws: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.normals(n * k, 0.1)).collect();
            let biases: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.normals(n, 0.5)).collect();
            let x = rng.activations(m, k);
            // One step: parts 0 and 1 side by side in the first output, part 2 in the second.
            let mut fused = PlanBuilder::new();
            let xt = fused.input("f16", &[1, m, k], &x);
            let parts: Vec<Value> = (0..3)
                .map(|p| {
                    let w = fused.linear_weight(format, &ws[p], (sizes[p], k));
                    if p == 1 {
                        json!({ "weight": w })
                    } else {
                        json!({ "weight": w, "bias": fused.weight("f16", &[sizes[p]], &biases[p]) })
                    }
                })
                .collect();
            let first = fused.output("f16", &[1, m, 40]);
            let second = fused.output("f32", &[1, m, 8]);
            fused.step(json!({
                "op": "fused_linear", "x": xt, "parts": parts, "outs": [first, second]
            }));
            let got = fused.run().unwrap_or_else(|e| panic!("{format}: {e}"));
            // Three linear steps.
            let mut single = PlanBuilder::new();
            let xt = single.input("f16", &[1, m, k], &x);
            for p in 0..3 {
                let w = single.linear_weight(format, &ws[p], (sizes[p], k));
                let dtype = if p == 2 { "f32" } else { "f16" };
                let out = single.output(dtype, &[1, m, sizes[p]]);
                let mut step = json!({ "op": "linear", "x": xt, "weight": w, "out": out });
                if p != 1 {
                    step["bias"] = json!(single.weight("f16", &[sizes[p]], &biases[p]));
                }
                single.step(step);
            }
            let want = single.run().unwrap();
            for r in 0..m {
                let row = &got[0][r * 80..(r + 1) * 80];
                let what = format!("{format} k={k} m={m} row {r}");
                assert_eq!(&row[..32], &want[0][r * 32..(r + 1) * 32], "{what} part 0");
                assert_eq!(&row[32..], &want[1][r * 48..(r + 1) * 48], "{what} part 1");
            }
            assert_eq!(got[1], want[2], "{format} k={k} m={m} part 2");
        }
    }
}

/// Sizes of the attention cases: query positions, heads, KV heads, head size, cache slots.
const L: usize = 4;
const H: usize = 4;
const HKV: usize = 2;
const D: usize = 16;
const CACHE: usize = 21;
const S: usize = CACHE + L;

/// The additive mask of the cases: position `l` sees cache slots below 5 and 17..19, and the
/// new keys up to its own; the last position sees nothing.
fn mask() -> Vec<f32> {
    (0..L * S)
        .map(|i| {
            let (l, j) = (i / S, i % S);
            let visible = l + 1 < L
                && if j < CACHE {
                    j < 5 || (17..19).contains(&j)
                } else {
                    j - CACHE <= l
                };
            if visible {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

/// `softmax(scale q . K^T + mask) V` in f64 over the keys `[Hkv, S, D]` of cache then new.
fn reference(q: &[f32], keys: &[f32], values: &[f32], mask: &[f32], scale: f64) -> Vec<f64> {
    let g = H / HKV;
    let mut out = vec![0f64; L * H * D];
    for l in 0..L {
        for h in 0..H {
            let kv = h / g;
            let scores: Vec<f64> = (0..S)
                .map(|j| {
                    let dot: f64 = (0..D)
                        .map(|d| {
                            f64::from(q[(l * H + h) * D + d])
                                * f64::from(keys[(kv * S + j) * D + d])
                        })
                        .sum();
                    scale * dot + f64::from(mask[l * S + j])
                })
                .collect();
            let max = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            if max == f64::NEG_INFINITY {
                continue;
            }
            let e: Vec<f64> = scores.iter().map(|&s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..D {
                out[(l * H + h) * D + d] = (0..S)
                    .map(|j| e[j] / sum * f64::from(values[(kv * S + j) * D + d]))
                    .sum();
            }
        }
    }
    out
}

/// Splits `[Hkv, S, D]` into the cache `[Hkv, CACHE, D]` and the new entries `[Hkv, L, D]`.
fn split_keys(all: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut cache, mut new) = (Vec::new(), Vec::new());
    for head in all.chunks_exact(S * D) {
        cache.extend_from_slice(&head[..CACHE * D]);
        new.extend_from_slice(&head[CACHE * D..]);
    }
    (cache, new)
}

/// An attention plan over caller inputs; returns the output values.
fn run_attention(
    dtype: &str,
    out_dtype: &str,
    (q, keys, values, mask): (&[f32], &[f32], &[f32], &[f32]),
) -> Vec<f32> {
    let (k_cache, k_new) = split_keys(keys);
    let (v_cache, v_new) = split_keys(values);
    let mut b = PlanBuilder::new();
    let qt = b.input(dtype, &[L, H, D], q);
    let kc = b.input(dtype, &[HKV, CACHE, D], &k_cache);
    let kn = b.input(dtype, &[HKV, L, D], &k_new);
    let vc = b.input(dtype, &[HKV, CACHE, D], &v_cache);
    let vn = b.input(dtype, &[HKV, L, D], &v_new);
    let mt = b.input(dtype, &[L, S], mask);
    let out = b.output(out_dtype, &[L, H, D]);
    b.step(json!({
        "op": "attention", "q": qt, "keys": [kc, kn], "values": [vc, vn], "mask": mt,
        "scale": 0.25, "out": out
    }));
    values_of(
        out_dtype,
        &b.run().unwrap_or_else(|e| panic!("{e}")).remove(0),
    )
}

#[test]
fn attention_matches_softmax_of_masked_scores_times_values() {
    let mut rng = Rng::new(301);
    let q = rng.normals(L * H * D, 1.0);
    let keys = rng.normals(HKV * S * D, 1.0);
    let values = rng.normals(HKV * S * D, 1.0);
    let mask = mask();
    for (dtype, out_dtype, tol) in [
        ("f32", "f32", 1e-5),
        ("f16", "f16", 2e-3),
        ("f16", "f32", 1e-5),
    ] {
        let round = |v: &[f32]| values_of(dtype, &bytes_of(dtype, v));
        let (q, keys, values) = (round(&q), round(&keys), round(&values));
        let got = run_attention(dtype, out_dtype, (&q, &keys, &values, &mask));
        let want = reference(&q, &keys, &values, &mask, 0.25);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
                "{dtype} -> {out_dtype}: element {i}: got {g}, want {w}"
            );
        }
        // The last position sees no key: zeros, as softmax of an all -inf row gives.
        assert!(got[(L - 1) * H * D..].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn attention_skips_keys_that_no_row_sees() {
    // Cache slots 8..16 are masked for every row, a whole chunk of 8 keys: the step must not
    // read them (NaN there would poison a sum), and the result is that of finite values.
    let mut rng = Rng::new(302);
    let q = rng.normals(L * H * D, 1.0);
    let keys = rng.normals(HKV * S * D, 1.0);
    let values = rng.normals(HKV * S * D, 1.0);
    let mask = mask();
    let poison = |v: &[f32]| {
        let mut v = v.to_vec();
        for head in v.chunks_exact_mut(S * D) {
            head[8 * D..16 * D].fill(f32::NAN);
        }
        v
    };
    let clean = run_attention("f32", "f32", (&q, &keys, &values, &mask));
    let poisoned = run_attention("f32", "f32", (&q, &poison(&keys), &poison(&values), &mask));
    assert_eq!(clean, poisoned);
}

#[test]
fn rope_rotates_each_head_by_its_position() {
    let mut rng = Rng::new(303);
    let (l, h, d) = (3, 5, 12);
    let x = rng.normals(l * h * d, 1.0);
    let angles: Vec<f32> = (0..l * d / 2).map(|i| 0.3 * i as f32 - 1.0).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let mut b = PlanBuilder::new();
    let xt = b.input("f16", &[l, h, d], &x);
    let ct = b.input("f32", &[l, d / 2], &cos);
    let st = b.input("f32", &[l, d / 2], &sin);
    let out = b.output("f32", &[l, h, d]);
    b.step(json!({ "op": "rope", "x": xt, "cos": ct, "sin": st, "out": out }));
    let got = values_of("f32", &b.run().unwrap().remove(0));
    let x = values_of("f16", &bytes_of("f16", &x));
    for p in 0..l {
        for head in 0..h {
            let base = (p * h + head) * d;
            for i in 0..d / 2 {
                let (x1, x2) = (x[base + i], x[base + d / 2 + i]);
                let (c, s) = (cos[p * d / 2 + i], sin[p * d / 2 + i]);
                assert!((got[base + i] - (x1 * c - x2 * s)).abs() < 1e-6);
                assert!((got[base + d / 2 + i] - (x2 * c + x1 * s)).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn silu_mul_is_silu_then_mul() {
    let mut rng = Rng::new(304);
    let n = 37;
    let gate = rng.normals(n, 3.0);
    let up = rng.normals(n, 1.0);
    let mut b = PlanBuilder::new();
    let gt = b.input("f32", &[1, n], &gate);
    let ut = b.input("f32", &[1, n], &up);
    let out = b.output("f32", &[1, n]);
    b.step(json!({ "op": "silu_mul", "gate": gt, "up": ut, "out": out }));
    let got = values_of("f32", &b.run().unwrap().remove(0));
    for i in 0..n {
        let want = f64::from(gate[i]) / (1.0 + (-f64::from(gate[i])).exp()) * f64::from(up[i]);
        assert!((f64::from(got[i]) - want).abs() <= 1e-5 * (1.0 + want.abs()));
    }
}
