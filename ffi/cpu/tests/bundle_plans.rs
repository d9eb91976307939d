//! The C ABI on a real bundle: the tiny test Llama exported by the project's own exporter (fp16,
//! int4 per-channel linears, int8 embedding), planned by `runtime/backend/cpu/plan.ts` and run
//! here as Deno would, piece by piece: an 8-token prefill call, then a 1-token decode call on the
//! caches it filled. The logits are compared with the eager fp32 forward of the TypeScript
//! reference (`llama/forward.ts`), which shares no code with this library, run on the weights as
//! the bundle stores them (dequantized), and more loosely on the checkpoint itself.
//!
//! Fixtures: tests/data/tiny_c4w, written by tests/data/generate.ts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use llamane_cpu::ffi::{
    llamane_plan_bind, llamane_plan_create, llamane_plan_free, llamane_plan_run,
    llamane_weights_free, llamane_weights_open, BoundPlan,
};
use llamane_cpu::weight_file::WeightFile;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny_c4w")
        .join(name)
}

/// An error buffer for one call.
fn error_buffer() -> Vec<u8> {
    vec![0xff; 512]
}

/// The NUL-terminated message a failed call wrote into `buffer`.
fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).expect("no terminator");
    String::from_utf8(buffer[..end].to_vec()).unwrap()
}

/// Opens a weight.bin through the C ABI: the handle, or the message.
fn weights_open(path: &[u8]) -> Result<*mut Arc<WeightFile>, String> {
    let mut error = error_buffer();
    // SAFETY: a valid byte slice and an error buffer of error.len() bytes.
    let handle =
        unsafe { llamane_weights_open(path.as_ptr(), path.len(), error.as_mut_ptr(), error.len()) };
    if handle.is_null() {
        Err(message(&error))
    } else {
        Ok(handle)
    }
}

/// Creates a plan through the C ABI: the handle, or the message.
fn plan_create(weights: *const Arc<WeightFile>, json: &[u8]) -> Result<*const BoundPlan, String> {
    let mut error = error_buffer();
    // SAFETY: a live weights handle or null, a valid byte slice and an error buffer.
    let handle = unsafe {
        llamane_plan_create(
            weights,
            json.as_ptr(),
            json.len(),
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if handle.is_null() {
        Err(message(&error))
    } else {
        Ok(handle)
    }
}

/// A weights handle from the C ABI.
fn open_weights(piece: &str) -> *mut Arc<WeightFile> {
    let path = fixture(&format!("{piece}.weight.bin"));
    weights_open(path.to_str().unwrap().as_bytes()).unwrap()
}

/// A plan through the C ABI, with its JSON for the buffer layout.
struct NativePlan {
    handle: *const BoundPlan,
    json: Value,
}

impl NativePlan {
    fn create(weights: *const Arc<WeightFile>, file: &str) -> Self {
        let text = std::fs::read(fixture(file)).unwrap();
        let handle = plan_create(weights, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
        NativePlan {
            handle,
            json: serde_json::from_slice(&text).unwrap(),
        }
    }

    fn names(&self, key: &str) -> Vec<String> {
        self.json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Bytes of the tensor listed for buffer `i` of `key` ("inputs" / "outputs").
    fn bytes(&self, key: &str, i: usize) -> usize {
        let t = &self.json["tensors"][self.json[key][i].as_u64().unwrap() as usize];
        let count: u64 = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let size = match t["dtype"].as_str().unwrap() {
            "f16" => 2,
            _ => 4,
        };
        (count * size) as usize
    }

    /// Runs on named buffers (8-byte aligned copies), returning the named outputs, or the status
    /// and message of the call that failed.
    fn run(
        &self,
        buffers: &HashMap<String, Vec<u8>>,
    ) -> Result<HashMap<String, Vec<u8>>, (i32, String)> {
        let aligned = |bytes: &[u8]| {
            let mut words = vec![0u64; bytes.len().div_ceil(8)];
            // SAFETY: the Vec holds at least bytes.len() bytes.
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) }
                .copy_from_slice(bytes);
            (words, bytes.len())
        };
        let mut ins: Vec<(Vec<u64>, usize)> = self
            .names("inputNames")
            .iter()
            .map(|n| aligned(buffers.get(n).unwrap_or_else(|| panic!("no input {n}"))))
            .collect();
        let out_names = self.names("outputNames");
        let mut outs: Vec<(Vec<u64>, usize)> = (0..out_names.len())
            .map(|i| aligned(&vec![0u8; self.bytes("outputs", i)]))
            .collect();
        // Bind every buffer, then run: the ABI takes no pointer tables.
        let mut error = error_buffer();
        for (side, list) in [(0, &mut ins), (1, &mut outs)] {
            for (index, (words, bytes)) in list.iter_mut().enumerate() {
                // SAFETY: a live plan; each buffer is owned here and outlives the run below; an
                // error buffer of error.len() bytes.
                let status = unsafe {
                    llamane_plan_bind(
                        self.handle,
                        side,
                        index,
                        words.as_mut_ptr().cast(),
                        *bytes,
                        error.as_mut_ptr(),
                        error.len(),
                    )
                };
                if status != 0 {
                    return Err((status, message(&error)));
                }
            }
        }
        // SAFETY: a live plan whose bound buffers are alive until after this call.
        let status = unsafe { llamane_plan_run(self.handle, error.as_mut_ptr(), error.len()) };
        if status != 0 {
            return Err((status, message(&error)));
        }
        Ok(out_names
            .into_iter()
            .zip(&outs)
            .map(|(name, (w, n))| {
                // SAFETY: the Vec holds at least n bytes.
                let bytes = unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), *n) };
                (name, bytes.to_vec())
            })
            .collect())
    }
}

impl Drop for NativePlan {
    fn drop(&mut self) {
        // SAFETY: a live handle from llamane_plan_create, freed once.
        unsafe { llamane_plan_free(self.handle) };
    }
}

fn halves(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
        .collect()
}

/// Relative L2 distance of `got` from `want`.
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|e| e * e).sum::<f64>().sqrt();
    let diff = norm(
        &mut got
            .iter()
            .zip(want)
            .map(|(&g, &w)| f64::from(g) - f64::from(w)),
    );
    diff / norm(&mut want.iter().map(|&w| f64::from(w)))
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// The three pieces at one call length.
struct Pieces {
    embedding: NativePlan,
    blocks: NativePlan,
    head: NativePlan,
}

impl Pieces {
    fn load(length: &str) -> Self {
        let mut plans = ["embedding", "blocks", "head"].map(|piece| {
            let weights = open_weights(piece);
            let plan = NativePlan::create(weights, &format!("{piece}.{length}.plan.json"));
            // Plans keep the mapping alive: the handle may go first.
            // SAFETY: a live handle from llamane_weights_open, freed once.
            unsafe { llamane_weights_free(weights) };
            Some(plan)
        });
        Pieces {
            embedding: plans[0].take().unwrap(),
            blocks: plans[1].take().unwrap(),
            head: plans[2].take().unwrap(),
        }
    }

    /// embedding -> blocks -> head; returns the logits and the blocks' outputs.
    fn forward(
        &self,
        inputs: &mut HashMap<String, Vec<u8>>,
    ) -> (Vec<f32>, HashMap<String, Vec<u8>>) {
        inputs.extend(
            self.embedding
                .run(inputs)
                .unwrap_or_else(|(_, e)| panic!("{e}")),
        );
        let blocks = self
            .blocks
            .run(inputs)
            .unwrap_or_else(|(_, e)| panic!("{e}"));
        let logits = self
            .head
            .run(&blocks)
            .unwrap_or_else(|(_, e)| panic!("{e}"));
        (halves(&logits["logits"]), blocks)
    }
}

#[test]
fn a_real_bundle_prefills_and_decodes_close_to_the_eager_reference() {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(fixture("fixture.json")).unwrap()).unwrap();
    let get = |k: &str| meta[k].as_u64().unwrap() as usize;
    let (layers, kv_heads, head_dim, cache) = (
        get("layers"),
        get("kvHeads"),
        get("headDim"),
        get("cacheLength"),
    );
    let vocab = get("vocabSize");
    let tokens: Vec<i32> = meta["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    let floats = |file: &str| -> Vec<f32> {
        std::fs::read(fixture(file))
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // The checkpoint's own logits, and those of the weights exactly as the bundle stores them.
    let (eager, stored) = (
        floats("eager_logits.bin"),
        floats("eager_stored_logits.bin"),
    );
    let call_inputs = |length: &str, tokens: &[i32]| {
        let mut inputs: HashMap<String, Vec<u8>> = HashMap::new();
        inputs.insert(
            "tokens".into(),
            tokens.iter().flat_map(|t| t.to_le_bytes()).collect(),
        );
        for name in ["mask", "freqs_cos", "freqs_sin"] {
            inputs.insert(
                name.into(),
                std::fs::read(fixture(&format!("{name}.{length}.bin"))).unwrap(),
            );
        }
        inputs
    };

    // Prefill: 8 tokens, empty caches.
    let prefill = Pieces::load("L8");
    let mut inputs = call_inputs("L8", &tokens);
    let cache_bytes = kv_heads * cache * head_dim * 2;
    for layer in 0..layers {
        inputs.insert(format!("k_cache_{layer}"), vec![0; cache_bytes]);
        inputs.insert(format!("v_cache_{layer}"), vec![0; cache_bytes]);
    }
    let (logits, blocks) = prefill.forward(&mut inputs);
    let (mut worst, mut worst_stored) = (0f64, 0f64);
    for row in 0..tokens.len() {
        let rows = row * vocab..(row + 1) * vocab;
        let got = &logits[rows.clone()];
        worst = worst.max(relative_error(got, &eager[rows.clone()]));
        worst_stored = worst_stored.max(relative_error(got, &stored[rows.clone()]));
    }

    // Decode: the 8 new keys and values go to cache slots 0..7, as the runtime commits them.
    for layer in 0..layers {
        for kind in ["k", "v"] {
            let new = &blocks[&format!("{kind}_new_{layer}")];
            let cache_buf = inputs.get_mut(&format!("{kind}_cache_{layer}")).unwrap();
            let row = head_dim * 2;
            for h in 0..kv_heads {
                for slot in 0..tokens.len() {
                    let from = (h * tokens.len() + slot) * row;
                    let to = (h * cache + slot) * row;
                    cache_buf[to..to + row].copy_from_slice(&new[from..from + row]);
                }
            }
        }
    }
    let decode = Pieces::load("L1");
    let next = meta["nextToken"].as_i64().unwrap() as i32;
    let mut step = call_inputs("L1", &[next]);
    for (name, bytes) in inputs.iter().filter(|(n, _)| n.contains("_cache_")) {
        step.insert(name.clone(), bytes.clone());
    }
    let (logits, _) = decode.forward(&mut step);
    let last = tokens.len() * vocab..;
    worst = worst.max(relative_error(&logits, &eager[last.clone()]));
    worst_stored = worst_stored.max(relative_error(&logits, &stored[last.clone()]));
    assert_eq!(
        argmax(&logits),
        argmax(&stored[last]),
        "decode: the greedy token differs"
    );
    // fp16 activations between steps and int8 activations in the linears cost about 2% (measured
    // 1.4% to 2.4% per row); a wrong transpose, mask or cache layout gives errors near 100%.
    assert!(
        worst_stored < 0.05,
        "logits differ from the eager forward of the stored weights by {worst_stored:.3} (relative L2)"
    );
    // The int4 quantization itself costs far more on these uniformly random weights (measured up
    // to 38%): the bundle is a quantized model of the checkpoint, not a copy.
    assert!(
        worst < 0.5,
        "logits differ from the checkpoint's by {worst:.3} (relative L2)"
    );
}

#[test]
fn the_c_abi_reports_bad_calls() {
    let weights = open_weights("head");
    let plan = NativePlan::create(weights, "head.L1.plan.json");
    let mut inputs = HashMap::new();
    inputs.insert("hidden_2".to_string(), vec![0u8; 10]);
    let (status, text) = plan.run(&inputs).unwrap_err();
    assert_eq!(status, 1);
    assert!(
        text.contains("input 0 (\"hidden_2\") has 10 bytes"),
        "{text}"
    );

    let json = b"{\"version\": 1}";
    let text = plan_create(weights, json).unwrap_err();
    assert!(text.contains("cannot load the execution plan"), "{text}");
    let text = plan_create(std::ptr::null(), json).unwrap_err();
    assert!(text.contains("null weights"), "{text}");

    // Binding checks its side and index.
    let mut byte = 0u8;
    let mut error = error_buffer();
    // SAFETY: a live plan, a one-byte buffer that outlives the call and an error buffer.
    let status = unsafe {
        llamane_plan_bind(
            plan.handle,
            2,
            0,
            &mut byte,
            1,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 1);
    assert!(message(&error).contains("side 2"), "{}", message(&error));
    // SAFETY: as above.
    let status = unsafe {
        llamane_plan_bind(
            plan.handle,
            0,
            9,
            &mut byte,
            1,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    assert_eq!(status, 1);
    assert!(
        message(&error).contains("input 9 does not exist"),
        "{}",
        message(&error)
    );

    let text = weights_open(b"/nonexistent/weight.bin").unwrap_err();
    assert!(text.contains("/nonexistent/weight.bin"), "{text}");
    // SAFETY: a live handle, freed once; null is ignored.
    unsafe {
        llamane_weights_free(weights);
        llamane_weights_free(std::ptr::null_mut());
        llamane_plan_free(std::ptr::null());
    }
}
