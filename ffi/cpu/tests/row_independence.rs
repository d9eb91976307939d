//! A row's result depends on that row's inputs only: the same rows computed in a 1-row call and
//! in an 8-row call (or on any number of threads) are bit-identical. Lookahead decoding relies on
//! this to reproduce greedy decoding exactly.

mod common;

use common::plan_builder::PlanBuilder;
use common::Rng;
use llamane_cpu::attention::{attention, AttentionScratch, Shape as AttentionShape, Sources};
use llamane_cpu::kernels::{self, Rows};
use llamane_cpu::linear::{linear_reusing, ActivationPath, Cpu, LinearOptions, LinearScratch};
use llamane_cpu::matmul::matmul_rows;
use llamane_cpu::quantize::int4_per_channel;
use llamane_cpu::thread_pool::ThreadPool;
use llamane_cpu::weights::{Scales, WeightData, Weights};
use serde_json::json;

/// Output bytes of a plan made by `build(builder, rows, x_rows)` for all `rows` at once, and for
/// each row alone; asserts they agree byte for byte.
fn assert_rows_independent(
    what: &str,
    x: &[f32],
    (rows, width): (usize, usize),
    build: impl Fn(&mut PlanBuilder, usize, &[f32]) -> (usize, usize),
) {
    let run = |m: usize, xs: &[f32]| {
        let mut b = PlanBuilder::new();
        let (_, out_width) = build(&mut b, m, xs);
        (
            b.run().unwrap_or_else(|e| panic!("{what}: {e}")).remove(0),
            out_width,
        )
    };
    let (all, out_width) = run(rows, x);
    let row_bytes = all.len() / rows;
    assert_eq!(row_bytes % out_width, 0, "{what}: output row size");
    for r in 0..rows {
        let (one, _) = run(1, &x[r * width..(r + 1) * width]);
        assert_eq!(
            one,
            all[r * row_bytes..(r + 1) * row_bytes],
            "{what}: row {r} differs between a 1-row and a {rows}-row call"
        );
    }
}

#[test]
fn linear_rows_do_not_depend_on_the_number_of_rows() {
    let mut rng = Rng::new(200);
    // n * k * 8 is large enough for the 8-row call to spread over threads; the 1-row call is not.
    for (format, k) in [
        ("c4w", 64),
        ("b4w", 64),
        ("c8w", 96),
        ("c4w", 40),
        ("f16", 64),
        ("f32", 40),
    ] {
        let n = 520;
        let w = rng.normals(n * k, 0.1);
        let x = rng.activations(8, k);
        assert_rows_independent(&format!("linear {format} k={k}"), &x, (8, k), |b, m, xs| {
            let xt = b.input("f16", &[1, m, k], xs);
            let wt = b.linear_weight(format, &w, (n, k));
            let bias = b.weight("f16", &[n], &vec![0.25; n]);
            let out = b.output("f16", &[1, m, n]);
            b.step(json!({ "op": "linear", "x": xt, "weight": wt, "bias": bias, "out": out }));
            (m, n)
        });
    }
}

#[test]
fn matmul_and_softmax_rows_do_not_depend_on_the_number_of_rows() {
    let mut rng = Rng::new(201);
    let (keys, hd) = (200, 64);
    let kmat = rng.normals(keys * hd, 1.0);
    let vmat = rng.normals(keys * hd, 1.0);
    let q = rng.normals(8 * hd, 1.0);
    // Scores against K (transposeB), softmax, then probabilities against V.
    assert_rows_independent("attention", &q, (8, hd), |b, m, xs| {
        let qt = b.input("f16", &[m, hd], xs);
        let kt = b.weight("f16", &[keys, hd], &kmat);
        let vt = b.weight("f16", &[keys, hd], &vmat);
        let scores = b.arena("f16", &[m, keys]);
        let probs = b.arena("f16", &[m, keys]);
        let out = b.output("f32", &[m, hd]);
        b.step(json!({
            "op": "matmul", "a": qt, "b": kt, "transposeA": false, "transposeB": true, "out": scores
        }));
        b.step(json!({ "op": "softmax", "x": scores, "out": probs }));
        b.step(json!({
            "op": "matmul", "a": probs, "b": vt, "transposeA": false, "transposeB": false, "out": out
        }));
        (m, hd)
    });
    let x = rng.normals(8 * 300, 4.0);
    assert_rows_independent("softmax + rms_norm", &x, (8, 300), |b, m, xs| {
        let xt = b.input("f32", &[m, 300], xs);
        let s = b.arena("f32", &[m, 300]);
        let gain = b.weight("f32", &[300], &vec![1.5; 300]);
        let out = b.output("f16", &[m, 300]);
        b.step(json!({ "op": "softmax", "x": xt, "out": s }));
        b.step(json!({ "op": "rms_norm", "x": s, "gain": gain, "eps": 1e-5, "out": out }));
        (m, 300)
    });
}

#[test]
fn fused_attention_rows_do_not_depend_on_the_number_of_rows() {
    // Keys and values: a cache of 37 and 8 more entries, inputs of every call. Query position r
    // sees the cache up to slot 9 + 3 r and the extra entries up to r, so an 8-row call keeps
    // key chunks that a 1-row call skips: they must add nothing.
    let mut rng = Rng::new(205);
    let (h, hkv, d, cache, extra) = (4, 2, 16, 37, 8);
    let s = cache + extra;
    let keys = [
        rng.normals(hkv * cache * d, 1.0),
        rng.normals(hkv * extra * d, 1.0),
    ];
    let values = [
        rng.normals(hkv * cache * d, 1.0),
        rng.normals(hkv * extra * d, 1.0),
    ];
    let width = h * d + s;
    let rows: Vec<f32> = (0..8)
        .flat_map(|r| {
            let q = rng.normals(h * d, 1.0);
            let mask = (0..s).map(move |j| {
                let visible = if j < cache {
                    j < 9 + 3 * r
                } else {
                    j - cache <= r
                };
                if visible {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            });
            q.into_iter().chain(mask).collect::<Vec<_>>()
        })
        .collect();
    assert_rows_independent("attention step", &rows, (8, width), |b, m, xs| {
        let q: Vec<f32> = xs.chunks(width).flat_map(|r| r[..h * d].to_vec()).collect();
        let mask: Vec<f32> = xs.chunks(width).flat_map(|r| r[h * d..].to_vec()).collect();
        let qt = b.input("f16", &[m, h, d], &q);
        let mt = b.input("f16", &[m, s], &mask);
        let kc = b.input("f16", &[hkv, cache, d], &keys[0]);
        let kn = b.input("f16", &[hkv, extra, d], &keys[1]);
        let vc = b.input("f16", &[hkv, cache, d], &values[0]);
        let vn = b.input("f16", &[hkv, extra, d], &values[1]);
        // f32 out: f16 rounding could hide a different summation order.
        let out = b.output("f32", &[m, h, d]);
        b.step(json!({
            "op": "attention", "q": qt, "keys": [kc, kn], "values": [vc, vn], "mask": mt,
            "scale": 0.25, "out": out
        }));
        (m, h * d)
    });
}

#[test]
fn grouped_query_rows_do_not_depend_on_the_call_length() {
    // q [Hkv, G, L, hd] @ K [Hkv, 1, C + L, hd]^T with L = 8 against each query position alone.
    let mut rng = Rng::new(202);
    let (hkv, g, hd, keys) = (2, 3, 16, 40);
    let kmat = rng.normals(hkv * keys * hd, 1.0);
    let q = rng.normals(hkv * g * 8 * hd, 1.0);
    let run = |l: usize, qs: &[f32]| {
        let mut b = PlanBuilder::new();
        let qt = b.input("f16", &[hkv, g, l, hd], qs);
        let kt = b.input("f16", &[hkv, 1, keys, hd], &kmat);
        let out = b.output("f16", &[hkv, g, l, keys]);
        b.step(json!({
            "op": "matmul", "a": qt, "b": kt, "transposeA": false, "transposeB": true, "out": out
        }));
        b.run().unwrap().remove(0)
    };
    let all = run(8, &q);
    for pos in 0..8 {
        let mut one_q = Vec::new();
        for head in 0..hkv * g {
            let row = (head * 8 + pos) * hd;
            one_q.extend_from_slice(&q[row..row + hd]);
        }
        let one = run(1, &one_q);
        for head in 0..hkv * g {
            let width = keys * 2;
            assert_eq!(
                one[head * width..(head + 1) * width],
                all[(head * 8 + pos) * width..(head * 8 + pos + 1) * width],
                "query head {head} position {pos}"
            );
        }
    }
}

#[test]
fn masked_keys_at_the_end_change_nothing() {
    // A longer key axis whose extra entries are masked (-inf scores, zero probabilities) gives
    // the same softmax and the same probs @ V, bit for bit.
    let mut rng = Rng::new(203);
    let (visible, extra, hd) = (33, 7, 64);
    let scores = rng.normals(2 * visible, 3.0);
    let v = rng.normals((visible + extra) * hd, 1.0);
    let run = |keys: usize| {
        let mut padded = Vec::new();
        for row in scores.chunks(visible) {
            padded.extend_from_slice(row);
            padded.extend(std::iter::repeat_n(f32::NEG_INFINITY, keys - visible));
        }
        let mut b = PlanBuilder::new();
        let st = b.input("f32", &[2, keys], &padded);
        let vt = b.input("f16", &[keys, hd], &v[..keys * hd]);
        let probs = b.output("f32", &[2, keys]);
        let out = b.output("f32", &[2, hd]);
        b.step(json!({ "op": "softmax", "x": st, "out": probs }));
        b.step(json!({
            "op": "matmul", "a": probs, "b": vt, "transposeA": false, "transposeB": false, "out": out
        }));
        b.run().unwrap()
    };
    let (short, long) = (run(visible), run(visible + extra));
    for r in 0..2 {
        let (s, l) = (&short[0][r * visible * 4..(r + 1) * visible * 4], &long[0]);
        assert_eq!(
            s,
            &l[r * (visible + extra) * 4..r * (visible + extra) * 4 + visible * 4]
        );
    }
    assert_eq!(short[1], long[1]);
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let mut rng = Rng::new(204);
    let (m, n, k) = (8, 1000, 256);
    let (packed, scales) = int4_per_channel(&rng.normals(n * k, 0.05), n, k);
    let scales: Vec<u16> = scales
        .iter()
        .map(|&s| half::f16::from_f32(s).to_bits())
        .collect();
    let w = Weights::new(
        n,
        k,
        WeightData::Int4PerChannel {
            packed: &packed,
            scales: Scales::F16(&scales),
        },
    )
    .unwrap();
    let x = rng.activations(m, k);
    let b = rng.normals(k * n, 1.0);
    let options = LinearOptions {
        bias: None,
        path: ActivationPath::Int8,
    };
    let (l, h, hkv, d, keys) = (5, 8, 2, 32, 70);
    let q = rng.normals(l * h * d, 1.0);
    let kv = rng.normals(hkv * keys * d, 1.0);
    let mask = vec![0.0; l * keys];
    let shape = AttentionShape {
        l,
        h,
        hkv,
        d,
        s: keys,
    };
    let lens = [keys];
    let rows = |_: usize| Rows::F32(&kv);
    let sources = Sources {
        lens: &lens,
        rows: &rows,
    };
    let mut results = Vec::new();
    for threads in [1, 2, 3] {
        let pool = ThreadPool::new(threads);
        let cpu = Cpu {
            kernels: kernels::selected(),
            pool: &pool,
        };
        let mut y = vec![0.0; m * n];
        linear_reusing(cpu, &mut y, &x, &w, &options, &mut LinearScratch::default()).unwrap();
        let mut z = vec![0.0; m * n];
        matmul_rows(cpu, &mut z, &x, Rows::F32(&b), n).unwrap();
        let mut scratch = AttentionScratch::default();
        scratch.try_reserve(threads, &shape).unwrap();
        let mut a = vec![0.0; l * h * d];
        let inputs = (&q[..], &mask[..], 0.125);
        attention(cpu, &mut a, inputs, &shape, &sources, &sources, &scratch).unwrap();
        results.push((y, z, a));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}
