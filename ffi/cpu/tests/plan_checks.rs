//! Malformed plans, weight files and run buffers are errors with messages that say where and
//! what was expected, never a panic or a crash.

mod common;

use common::plan_builder::{f32_bytes, map_bytes, run, PlanBuilder};
use llamane_cpu::plan::memory::CallerBuffer;
use serde_json::{json, Value};

/// A valid plan: `out = linear(x, W) + y` with every operand kind present.
fn valid() -> PlanBuilder {
    let mut b = PlanBuilder::new();
    let x = b.input("f32", &[2, 4], &[1.0; 8]);
    let y = b.input("f16", &[2, 3], &[0.5; 6]);
    let w = b.weight("f16", &[3, 4], &[0.25; 12]);
    let h = b.arena("f32", &[2, 3]);
    let out = b.output("f32", &[2, 3]);
    b.step(json!({ "op": "linear", "x": x, "weight": { "data": w }, "out": h }));
    b.step(json!({ "op": "binary", "kind": "add", "a": h, "b": y, "out": out }));
    b
}

/// Asserts that `b`'s plan, edited by `edit`, fails to load with a message containing every
/// one of `expected`.
fn rejects(b: &PlanBuilder, edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut json = b.json();
    edit(&mut json);
    match b.plan_from(&json) {
        Ok(_) => panic!("accepted a bad plan; expected an error containing {expected:?}"),
        Err(e) => {
            for part in expected {
                assert!(e.contains(part), "error {e:?} does not contain {part:?}");
            }
        }
    }
}

#[test]
fn the_valid_plan_loads_and_runs() {
    let b = valid();
    let out = b.run().unwrap();
    assert_eq!(out[0], f32_bytes(&[1.5; 6]));
}

#[test]
fn rejects_wrong_versions_and_unknown_ops_or_fields() {
    let b = valid();
    rejects(
        &b,
        |j| j["version"] = json!(2),
        &["format version 2", "version 1"],
    );
    rejects(
        &b,
        |j| j["steps"][1]["op"] = json!("conv"),
        &["step 1 (conv)", "unknown variant"],
    );
    rejects(
        &b,
        |j| j["steps"][1]["kind"] = json!("pow"),
        &["step 1 (binary)", "pow"],
    );
    rejects(
        &b,
        |j| j["steps"][0]["bias_"] = json!(0),
        &["step 0 (linear)", "bias_"],
    );
    rejects(
        &b,
        |j| j["tensors"][0]["dtype"] = json!("f64"),
        &["tensor 0", "f64"],
    );
    rejects(&b, |j| j["extra"] = json!(1), &["extra"]);
    match b.plan_from(&json!("[")) {
        Err(e) => assert!(e.contains("version"), "{e}"),
        Ok(_) => panic!("accepted a string"),
    }
}

#[test]
fn rejects_out_of_range_indices() {
    let b = valid();
    rejects(
        &b,
        |j| j["steps"][1]["b"] = json!(99),
        &["step 1 (binary)", "tensor 99", "5 tensors"],
    );
    rejects(
        &b,
        |j| j["steps"][0]["weight"]["data"] = json!(7),
        &["step 0 (linear)", "tensor 7"],
    );
    rejects(
        &b,
        |j| j["inputs"][1] = json!(40),
        &["input 1", "tensor 40"],
    );
    rejects(
        &b,
        |j| j["tensors"][1]["storage"]["index"] = json!(5),
        &["tensor 1", "buffer 5", "2 inputs"],
    );
    rejects(
        &b,
        |j| j["inputs"][1] = json!(0),
        &["input 1", "stored in Input(0)"],
    );
    rejects(
        &b,
        |j| j["outputNames"] = json!([]),
        &["1 outputs but 0 output names"],
    );
}

#[test]
fn rejects_shape_mismatches() {
    let b = valid();
    // linear: K and N.
    rejects(
        &b,
        |j| j["tensors"][0]["shape"] = json!([4, 2]),
        &["step 0 (linear)", "weight's K = 4"],
    );
    rejects(
        &b,
        |j| j["tensors"][3]["shape"] = json!([2, 4]),
        &["step 0 (linear)", "out", "[2, 3]"],
    );
    // binary: shapes that do not broadcast, or broadcast to another shape.
    rejects(
        &b,
        |j| j["tensors"][1]["shape"] = json!([3, 2]),
        &["step 1 (binary)", "do not broadcast"],
    );
    rejects(
        &b,
        |j| j["tensors"][1]["shape"] = json!([1, 2, 3]),
        &["step 1 (binary)", "[1, 2, 3]"],
    );

    let mut m = PlanBuilder::new();
    let a = m.input("f32", &[2, 3, 4], &[0.0; 24]);
    let w = m.input("f32", &[2, 5, 6], &[0.0; 60]);
    let out = m.output("f32", &[2, 3, 6]);
    m.step(json!({ "op": "matmul", "a": a, "b": w, "transposeA": false, "transposeB": false, "out": out }));
    rejects(&m, |_| {}, &["step 0 (matmul)", "inner sizes 4 and 5"]);
    rejects(
        &m,
        |j| {
            j["tensors"][1]["shape"] = json!([3, 4, 6]);
        },
        &["step 0 (matmul)", "do not broadcast"],
    );
    rejects(
        &m,
        |j| {
            j["tensors"][1]["shape"] = json!([2, 4, 6]);
            j["tensors"][2]["shape"] = json!([2, 3, 7]);
        },
        &["step 0 (matmul)", "gives [2, 3, 6]", "[2, 3, 7]"],
    );

    let mut c = PlanBuilder::new();
    let p = c.input("f16", &[2, 3], &[0.0; 6]);
    let q = c.input("f16", &[2, 5], &[0.0; 10]);
    let out = c.output("f16", &[2, 8]);
    c.step(json!({ "op": "concat", "inputs": [p, q], "axis": 1, "out": out }));
    assert!(c.run().is_ok());
    rejects(
        &c,
        |j| j["tensors"][2]["shape"] = json!([2, 9]),
        &["step 0 (concat)", "add up to 8"],
    );
    rejects(
        &c,
        |j| j["tensors"][1]["shape"] = json!([1, 5]),
        &["input 1", "axis other than 1"],
    );
    rejects(
        &c,
        |j| j["steps"][0]["axis"] = json!(2),
        &["axis 2 is not an axis"],
    );
    rejects(
        &c,
        |j| {
            j["steps"][0] = json!({ "op": "transpose", "x": 0, "perm": [0, 0], "out": 2 });
        },
        &["step 0 (transpose)", "not a permutation"],
    );
    rejects(
        &c,
        |j| j["steps"][0] = json!({ "op": "copy", "x": 0, "out": 2 }),
        &["step 0 (copy)", "element count"],
    );
    rejects(
        &c,
        |j| j["tensors"][0]["shape"] = json!([1, 1, 1, 1, 1, 2, 3]),
        &["rank 7"],
    );
}

#[test]
fn rejects_type_mismatches() {
    let b = valid();
    rejects(
        &b,
        |j| j["tensors"][3]["dtype"] = json!("i8"),
        &["tensor 3", "weights only"],
    );
    let mut g = PlanBuilder::new();
    let idx = g.input("f32", &[2], &[0.0, 1.0]);
    let table = g.weight("f32", &[4, 2], &[0.0; 8]);
    let out = g.output("f32", &[2, 2]);
    g.step(json!({ "op": "gather", "table": { "data": table }, "indices": idx, "out": out }));
    rejects(&g, |_| {}, &["step 0 (gather)", "indices", "expected i32"]);

    let mut q = PlanBuilder::new();
    let x = q.input("f32", &[1, 64], &[0.0; 64]);
    let data = q.weight_bytes("i8", &[2, 64], &[1u8; 128]);
    let scale = q.weight("f32", &[2, 4], &[1.0; 8]);
    let out = q.output("f32", &[1, 2]);
    q.step(json!({
        "op": "linear", "x": x, "weight": { "data": data, "scale": scale, "group": 16 }, "out": out
    }));
    // Weights with a scale per 16 inputs have no kernel (per row or per 32 inputs do).
    rejects(
        &q,
        |_| {},
        &["step 0 (linear)", "no kernel", "per 16 inputs"],
    );
    rejects(
        &q,
        |j| j["steps"][0]["weight"] = json!({ "data": data }),
        &["needs a scale"],
    );
    rejects(
        &q,
        |j| j["steps"][0]["weight"]["group"] = json!(64),
        &["scale (tensor 2) has shape [2, 4], expected [2, 1]"],
    );
    rejects(
        &q,
        |j| j["steps"][0]["weight"]["group"] = json!(48),
        &["group 48 does not divide"],
    );
}

#[test]
fn rejects_bad_weight_records() {
    let b = valid();
    let record = 64usize;
    let reject_file = |edit: &dyn Fn(&mut Vec<u8>), expected: &str| {
        let mut bytes = b.blobs.clone();
        edit(&mut bytes);
        let weights = map_bytes(&bytes);
        match llamane_cpu::plan::Plan::new(weights, b.json().to_string().as_bytes()) {
            Ok(_) => panic!("accepted a bad weight file; expected {expected:?}"),
            Err(e) => assert!(
                e.message().contains(expected) && e.message().contains("tensor 2"),
                "{}",
                e.message()
            ),
        }
    };
    reject_file(&|f| f[record] = 0, "sentinel");
    reject_file(&|f| f[record + 4] = 2, "dtype code 2, expected 1");
    reject_file(&|f| f[record + 8] = 22, "holds 22 bytes, expected 24");
    reject_file(&|f| f[record + 16] = 0, "says its data is at");
    reject_file(&|f| f[record + 24] = 4, "padding bits");
    reject_file(&|f| f.truncate(record + 64 + 10), "past the end");
    rejects(
        &b,
        |j| j["tensors"][2]["storage"]["offset"] = json!(100),
        &["tensor 2", "not a multiple of 64"],
    );
    rejects(
        &b,
        |j| j["tensors"][2]["storage"]["offset"] = json!(6400),
        &["tensor 2", "past the end"],
    );
    // The tensor says 16 values where the blob holds 12.
    rejects(
        &b,
        |j| j["tensors"][2]["shape"] = json!([4, 4]),
        &["tensor 2", "expected 32"],
    );

    let mut header = b.blobs.clone();
    header[4] = 3;
    let path = std::env::temp_dir().join(format!("llamane-bad-header-{}.bin", std::process::id()));
    std::fs::write(&path, &header).unwrap();
    let err = llamane_cpu::weight_file::WeightFile::open(&path).unwrap_err();
    std::fs::write(&path, [0u8; 10]).unwrap();
    let short = llamane_cpu::weight_file::WeightFile::open(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(err.message().contains("version 3"), "{}", err.message());
    assert!(short.message().contains("10 bytes"), "{}", short.message());
}

#[test]
fn rejects_arena_overflow_and_overlaps() {
    let b = valid();
    rejects(
        &b,
        |j| j["arenaBytes"] = json!(16),
        &["tensor 3", "past arenaBytes 16"],
    );
    rejects(
        &b,
        |j| j["tensors"][3]["storage"]["offset"] = json!(8),
        &["tensor 3", "not a multiple of 64"],
    );
    // The linear writes into an input buffer.
    rejects(
        &b,
        |j| j["steps"][0]["out"] = json!(5),
        &["step 0 (linear)", "tensor 5", "out"],
    );
    let mut o = PlanBuilder::new();
    let x = o.input("f32", &[16], &[1.0; 16]);
    let a = o.arena("f32", &[16]);
    let c = o.tensor("f32", &[16], json!({ "kind": "arena", "offset": 0 }));
    let out = o.output("f32", &[16]);
    o.step(json!({ "op": "unary", "kind": "silu", "eps": 0, "x": x, "out": a }));
    o.step(json!({ "op": "binary", "kind": "add", "a": a, "b": a, "out": c }));
    o.step(json!({ "op": "copy", "x": c, "out": out }));
    rejects(
        &o,
        |_| {},
        &[
            "step 1 (binary)",
            "output tensor 2",
            "overlaps input tensor 1",
        ],
    );
    rejects(
        &o,
        |j| j["steps"][1] = json!({ "op": "split", "x": 0, "axis": 0, "outs": [1, 2] }),
        &["step 1 (split)", "add up to 32"],
    );
    rejects(
        &o,
        |j| {
            j["steps"] = json!([{ "op": "split", "x": 0, "axis": 0, "outs": [1, 2] }]);
            j["tensors"][1]["shape"] = json!([8]);
            j["tensors"][2]["shape"] = json!([8]);
        },
        &[
            "step 0 (split)",
            "output tensor 1",
            "overlaps output tensor 2",
        ],
    );
    rejects(
        &o,
        |j| {
            let view = json!({ "dtype": "f32", "shape": [17], "storage": { "kind": "output", "index": 0 } });
            j["tensors"].as_array_mut().unwrap().push(view);
        },
        &["tensor 4", "view of output 0", "needs 68 bytes"],
    );
}

#[test]
fn rejects_bad_inline_constants() {
    let mut b = PlanBuilder::new();
    let x = b.input("i32", &[2], &[1.0, 2.0]);
    let k = b.inline("i32", &[2], &[1.0, 2.5]);
    let out = b.output("i32", &[2]);
    b.step(json!({ "op": "binary", "kind": "add", "a": x, "b": k, "out": out }));
    rejects(&b, |_| {}, &["tensor 1", "2.5 is not an i32"]);
    rejects(
        &b,
        |j| j["tensors"][1]["storage"]["values"] = json!([1]),
        &["1 inline values"],
    );
}

#[test]
fn run_checks_the_callers_buffers() {
    let b = valid();
    let plan = b.plan().unwrap();
    let err = run(&plan, &b.input_data[..1], &b.output_bytes).unwrap_err();
    assert!(err.contains("takes 2 input buffers, got 1"), "{err}");
    let mut short = b.input_data.clone();
    short[1].truncate(10);
    let err = run(&plan, &short, &b.output_bytes).unwrap_err();
    assert!(
        err.contains("input 1 (\"in1\") has 10 bytes") && err.contains("needs 12"),
        "{err}"
    );
    let err = run(&plan, &b.input_data, &[48]).unwrap_err();
    assert!(
        err.contains("output 0") && err.contains("needs 24"),
        "{err}"
    );

    // A misaligned f32 input, and an output overlapping an input.
    let mut words = vec![0u64; 16];
    let base = words.as_mut_ptr().cast::<u8>();
    let ins = [
        CallerBuffer {
            ptr: base.wrapping_add(2),
            bytes: 32,
        },
        CallerBuffer {
            ptr: base.wrapping_add(64),
            bytes: 12,
        },
    ];
    let outs = [CallerBuffer {
        ptr: base.wrapping_add(80),
        bytes: 24,
    }];
    // SAFETY: every pointer lies inside `words` (128 bytes) with its length; the run must
    // reject the buffers before touching them.
    let err = unsafe { plan.run(&ins, &outs) }.unwrap_err();
    assert!(
        err.message().contains("not aligned to 4"),
        "{}",
        err.message()
    );
    let ins = [
        CallerBuffer {
            ptr: base,
            bytes: 32,
        },
        ins[1],
    ];
    let outs = [CallerBuffer {
        ptr: base.wrapping_add(72),
        bytes: 24,
    }];
    // SAFETY: as above.
    let err = unsafe { plan.run(&ins, &outs) }.unwrap_err();
    assert!(
        err.message().contains("overlaps an input"),
        "{}",
        err.message()
    );
}

#[test]
fn plans_too_large_to_allocate_are_errors_not_aborts() {
    let b = valid();
    // An arena of 2^62 bytes, then 2^45 f32 of scratch for a linear's converted f16 input.
    rejects(
        &b,
        |j| {
            j["arenaBytes"] = json!(1u64 << 62);
            j["tensors"][3]["storage"]["offset"] = json!(1u64 << 61);
        },
        &["cannot allocate an arena"],
    );
    rejects(
        &b,
        |j| {
            j["tensors"][1]["shape"] = json!([1u64 << 44, 2, 3]);
            j["tensors"][3]["shape"] = json!([1u64 << 44, 2, 3]);
            j["tensors"][4]["shape"] = json!([1u64 << 44, 2, 3]);
            j["tensors"][0]["shape"] = json!([1u64 << 44, 2, 4]);
            j["arenaBytes"] = json!(1u64 << 62);
        },
        &["cannot allocate the f32 scratch"],
    );
}

#[test]
fn rejects_fused_steps_that_do_not_fit() {
    // fused_linear: two parts [3, 4] and [2, 4] into outputs of 3 and 2 columns.
    let mut f = PlanBuilder::new();
    let x = f.input("f32", &[2, 4], &[1.0; 8]);
    let w0 = f.weight("f16", &[3, 4], &[0.5; 12]);
    let w1 = f.weight("f16", &[2, 4], &[0.5; 8]);
    let w2 = f.weight("f32", &[2, 4], &[0.5; 8]);
    let o0 = f.output("f32", &[2, 3]);
    let o1 = f.output("f16", &[2, 2]);
    f.step(json!({
        "op": "fused_linear", "x": x,
        "parts": [{ "weight": { "data": w0 } }, { "weight": { "data": w1 } }],
        "outs": [o0, o1]
    }));
    assert!(f.run().is_ok());
    rejects(
        &f,
        |j| {
            j["tensors"][4]["shape"] = json!([2, 2]);
            j["tensors"][5]["shape"] = json!([2, 3]);
        },
        &["step 0 (fused_linear)", "output 0 has 2 columns"],
    );
    rejects(
        &f,
        |j| j["steps"][0]["parts"][1]["weight"]["data"] = json!(w2),
        &[
            "step 0 (fused_linear)",
            "part 1 weight is F32",
            "share one format",
        ],
    );
    rejects(
        &f,
        |j| j["steps"][0]["outs"] = json!([o0]),
        &["more columns than the outputs"],
    );

    // attention: q [1, 4, 8], keys and values [2, 3, 8] + [2, 1, 8], mask [1, 4].
    let mut a = PlanBuilder::new();
    let q = a.input("f16", &[1, 4, 8], &[0.0; 32]);
    let kc = a.input("f16", &[2, 3, 8], &[0.0; 48]);
    let kn = a.input("f16", &[2, 1, 8], &[0.0; 16]);
    let mask = a.input("f16", &[1, 4], &[0.0; 4]);
    let ints = a.input("i32", &[2, 1, 8], &[0.0; 16]);
    let out = a.output("f16", &[1, 4, 8]);
    a.step(json!({
        "op": "attention", "q": q, "keys": [kc, kn], "values": [kc, kn], "mask": mask,
        "scale": 0.5, "out": out
    }));
    assert!(a.run().is_ok());
    rejects(
        &a,
        |j| j["tensors"][3]["shape"] = json!([1, 5]),
        &[
            "step 0 (attention)",
            "mask has shape [1, 5], expected [1, 4]",
        ],
    );
    rejects(
        &a,
        |j| j["steps"][0]["values"] = json!([kc]),
        &["the keys are 4 long, the values 3"],
    );
    rejects(
        &a,
        |j| j["tensors"][0]["shape"] = json!([1, 3, 8]),
        &["heads do not divide the 3 query heads"],
    );
    rejects(
        &a,
        |j| j["steps"][0]["keys"][1] = json!(ints),
        &["keys 1", "expected f16 or f32"],
    );
    rejects(
        &a,
        |j| j["steps"][0]["out"] = json!(q),
        &["step 0 (attention)", "out"],
    );

    // rope: x [2, 3, 6] with tables [2, 3]; an odd head size has no halves.
    let mut r = PlanBuilder::new();
    let x = r.input("f32", &[2, 3, 6], &[0.0; 36]);
    let cos = r.input("f32", &[2, 3], &[0.0; 6]);
    let out = r.output("f32", &[2, 3, 6]);
    r.step(json!({ "op": "rope", "x": x, "cos": cos, "sin": cos, "out": out }));
    assert!(r.run().is_ok());
    rejects(
        &r,
        |j| {
            j["tensors"][0]["shape"] = json!([2, 4, 5]);
            j["tensors"][2]["shape"] = json!([2, 4, 5]);
        },
        &["step 0 (rope)", "not even"],
    );
    rejects(
        &r,
        |j| j["tensors"][1]["shape"] = json!([3, 2]),
        &["cos has shape [3, 2], expected [2, 3]"],
    );
    rejects(
        &r,
        |j| j["steps"][0] = json!({ "op": "silu_mul", "gate": x, "up": cos, "out": out }),
        &["step 0 (silu_mul)", "up has shape [2, 3]"],
    );
}
