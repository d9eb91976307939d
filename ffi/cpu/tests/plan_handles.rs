//! A plan handle under misuse the C ABI must survive: a run uses only buffers bound for it, a
//! call that overlaps a run of the same plan fails instead of racing, and a plan freed while it
//! runs stays alive until the run returns.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::plan_builder::PlanBuilder;
use common::Rng;
use llamane_cpu::ffi::{
    llamane_plan_bind, llamane_plan_create, llamane_plan_free, llamane_plan_run,
    llamane_weights_free, llamane_weights_open, BoundPlan,
};
use llamane_cpu::weight_file::WeightFile;
use serde_json::json;

const INPUT: u32 = 0;
const OUTPUT: u32 = 1;

/// The NUL-terminated message a failed call wrote into `buffer`.
fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).expect("no terminator");
    String::from_utf8(buffer[..end].to_vec()).unwrap()
}

/// A plan that takes a while: `steps` products of `[m, k]` activations with one `[k, k]` f32
/// weight, ping-ponging between two arena tensors, the last into the output.
fn slow_plan(m: usize, k: usize, steps: usize) -> PlanBuilder {
    let mut rng = Rng::new(7);
    let mut b = PlanBuilder::new();
    let x = b.input("f32", &[m, k], &rng.normals(m * k, 1.0));
    let w = b.weight("f32", &[k, k], &rng.normals(k * k, 1.0 / (k as f32).sqrt()));
    let scratch = [b.arena("f32", &[m, k]), b.arena("f32", &[m, k])];
    let out = b.output("f32", &[m, k]);
    let mut from = x;
    for step in 0..steps {
        let to = if step + 1 == steps {
            out
        } else {
            scratch[step % 2]
        };
        b.step(json!({ "op": "linear", "x": from, "weight": { "data": w }, "out": to }));
        from = to;
    }
    b
}

/// A builder's plan created through the C ABI, with its weights written to a temporary file.
struct Handles {
    weights: *mut Arc<WeightFile>,
    plan: *const BoundPlan,
}

impl Handles {
    fn create(b: &PlanBuilder, name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "llamane-plan-handles-{}-{name}.bin",
            std::process::id()
        ));
        std::fs::write(&path, &b.blobs).unwrap();
        let path_text = path.to_str().unwrap();
        let json = b.json().to_string();
        let mut error = vec![0u8; 512];
        // SAFETY: valid byte slices and an error buffer of error.len() bytes.
        let weights = unsafe {
            llamane_weights_open(
                path_text.as_ptr(),
                path_text.len(),
                error.as_mut_ptr(),
                error.len(),
            )
        };
        std::fs::remove_file(&path).unwrap();
        assert!(!weights.is_null(), "{}", message(&error));
        // SAFETY: a live weights handle, valid byte slices and an error buffer.
        let plan = unsafe {
            llamane_plan_create(
                weights,
                json.as_ptr(),
                json.len(),
                error.as_mut_ptr(),
                error.len(),
            )
        };
        assert!(!plan.is_null(), "{}", message(&error));
        Handles { weights, plan }
    }
}

/// Binds `buffer` as number `index` of `side`: the status and the message.
///
/// # Safety
/// `plan` is live; `buffer` outlives the run that uses it.
unsafe fn bind(
    plan: *const BoundPlan,
    side: u32,
    index: usize,
    buffer: &mut [u8],
) -> (i32, String) {
    let mut error = vec![0u8; 512];
    // SAFETY: forwarded from the caller; the error buffer has error.len() bytes.
    let status = unsafe {
        llamane_plan_bind(
            plan,
            side,
            index,
            buffer.as_mut_ptr(),
            buffer.len(),
            error.as_mut_ptr(),
            error.len(),
        )
    };
    (
        status,
        if status == 0 {
            String::new()
        } else {
            message(&error)
        },
    )
}

/// Runs `plan`: the status and the message.
///
/// # Safety
/// `plan` is live until the call has started; its bound buffers outlive the call.
unsafe fn run(plan: *const BoundPlan) -> (i32, String) {
    let mut error = vec![0u8; 512];
    // SAFETY: forwarded from the caller; the error buffer has error.len() bytes.
    let status = unsafe { llamane_plan_run(plan, error.as_mut_ptr(), error.len()) };
    (
        status,
        if status == 0 {
            String::new()
        } else {
            message(&error)
        },
    )
}

/// A raw pointer that may cross to the thread running the plan.
struct SendPlan(*const BoundPlan);
// SAFETY: a plan handle may be used from any thread (ABI.md).
unsafe impl Send for SendPlan {}

#[test]
fn a_run_uses_only_the_buffers_bound_for_it() {
    let b = slow_plan(2, 64, 2);
    let handles = Handles::create(&b, "bound");
    let mut input = b.input_data[0].clone();
    let mut output = vec![0u8; b.output_bytes[0]];
    // SAFETY: live handles; the buffers outlive every run below.
    unsafe {
        assert_eq!(bind(handles.plan, INPUT, 0, &mut input).0, 0);
        assert_eq!(bind(handles.plan, OUTPUT, 0, &mut output).0, 0);
        assert_eq!(run(handles.plan), (0, String::new()));
        let want = b.run().unwrap().remove(0);
        assert_eq!(output, want);

        // The run forgot both buffers: a second run without binding them fails, writing nothing.
        output.fill(0);
        let (status, text) = run(handles.plan);
        assert_eq!(status, 1);
        assert!(text.contains("input 0 (\"in0\") is not bound"), "{text}");
        assert_eq!(bind(handles.plan, INPUT, 0, &mut input).0, 0);
        let (status, text) = run(handles.plan);
        assert_eq!(status, 1);
        assert!(text.contains("output 0 (\"out0\") is not bound"), "{text}");
        assert!(output.iter().all(|&v| v == 0));

        llamane_plan_free(handles.plan);
        llamane_weights_free(handles.weights);
    }
}

#[test]
fn calls_during_a_run_fail_and_freeing_waits_for_the_run() {
    let b = slow_plan(64, 1024, 8);
    let want = b.run().unwrap().remove(0);
    let handles = Handles::create(&b, "busy");
    let mut input = b.input_data[0].clone();
    let mut output = vec![0u8; b.output_bytes[0]];
    let mut probe = [0u8; 4];
    let done = AtomicBool::new(false);
    // SAFETY: live handles; the buffers outlive the run.
    unsafe {
        assert_eq!(bind(handles.plan, INPUT, 0, &mut input).0, 0);
        assert_eq!(bind(handles.plan, OUTPUT, 0, &mut output).0, 0);
    }
    let result = std::thread::scope(|s| {
        let plan = SendPlan(handles.plan);
        let runner = s.spawn(|| {
            let plan = plan;
            // A run that meets the probe below holding the plan for a moment fails untouched,
            // its bindings kept: try again.
            let result = loop {
                // SAFETY: a live handle (freed only once this run holds it); the bound buffers
                // outlive the scope.
                let result = unsafe { run(plan.0) };
                if !result.1.contains("in use by another call") {
                    break result;
                }
            };
            done.store(true, Ordering::SeqCst);
            result
        });
        // Wait until the run holds the plan: binding a buffer that does not exist then fails
        // for that reason instead of its own.
        loop {
            assert!(
                !done.load(Ordering::SeqCst),
                "the run ended before it could be observed"
            );
            // SAFETY: a live handle; the index is out of range, so nothing is bound.
            let (status, text) = unsafe { bind(handles.plan, INPUT, 99, &mut probe) };
            assert_eq!(status, 1);
            if text.contains("in use by another call") {
                break;
            }
            assert!(text.contains("input 99 does not exist"), "{text}");
        }
        // SAFETY: a live handle: a concurrent run fails before touching anything.
        let (status, text) = unsafe { run(handles.plan) };
        assert_eq!(status, 1);
        assert!(text.contains("in use by another call"), "{text}");
        // SAFETY: the caller's reference, released once while the run holds its own.
        unsafe { llamane_plan_free(handles.plan) };
        runner.join().unwrap()
    });
    assert_eq!(result, (0, String::new()));
    assert_eq!(output, want, "the freed plan must finish its run intact");
    // SAFETY: a live handle, freed once.
    unsafe { llamane_weights_free(handles.weights) };
}
