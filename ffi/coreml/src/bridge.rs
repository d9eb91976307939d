//! The Core ML side of ABI.md. Every export catches panics (objc2's `catch-all` turns Objective-C
//! exceptions into panics), drains its own autorelease pool, and reports failure as a status (or
//! a null handle) plus a message in the error buffer passed with that call: no global state, so
//! calls on different threads never share an error slot. Core ML methods are `unsafe` only because
//! objc2-core-ml is generated; the SAFETY comments say what the calls rely on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::{cell::Cell, ffi::c_void, path::Path, ptr, ptr::NonNull, sync::mpsc, time::Duration};

use block2::{DynBlock, RcBlock, StackBlock};
use objc2::rc::{autoreleasepool, Retained};
use objc2::runtime::{AnyClass, AnyObject, NSObjectProtocol, ProtocolObject};
use objc2::{AnyThread, ClassType, Message};
use objc2_core_ml::*;
use objc2_foundation::{NSArray, NSDictionary, NSError, NSFileManager, NSInteger, NSNumber};
use objc2_foundation::{NSString, NSUnderlyingErrorKey, NSURL};

use crate::abi::DECLINE_OUTPUT_BACKINGS;
use crate::abi::{element_bytes, str_arg, write_text, Bindings, Tensor, ABI_VERSION, FAILED, OK};
use crate::portable::{copy_strided, error_chain, load_compiled, panic_text, publish};
use crate::portable::{row_major_strides, wait_for};

/// One loaded function of one piece and the buffers bound to it; opaque to the caller.
pub struct Model {
    model: Retained<MLModel>,
    bound: Bindings,
    /// Whether predictions pass the output buffers to Core ML as backings (open's flags).
    backings: bool,
}

/// A loaded model on its way from Core ML's completion queue to the opening thread.
struct Loaded(Retained<MLModel>);

// SAFETY: MLModel is immutable once loaded and Core ML documents it as usable from any thread;
// the handle already moves between the worker threads Deno runs nonblocking calls on.
unsafe impl Send for Loaded {}

/// Runs an export's body; its errors and panics become FAILED plus a message in `error`.
fn guard(error: *mut u8, capacity: usize, body: impl FnOnce() -> Result<(), String>) -> i32 {
    let message = match catch_unwind(AssertUnwindSafe(|| autoreleasepool(|_| body()))) {
        Ok(Ok(())) => return OK,
        Ok(Err(message)) => message,
        Err(panic) => format!("internal error in the Core ML bridge: {}", panic_text(&*panic)),
    };
    // SAFETY: ABI.md: each call passes an error buffer of `capacity` bytes, or null.
    unsafe { write_text(error, capacity, &message) };
    FAILED
}

/// The error's description and those of the errors under it (`NSUnderlyingErrorKey`), where
/// Core ML puts the actionable part.
fn describe(error: &NSError, action: &str) -> String {
    let mut descriptions = vec![error.localizedDescription().to_string()];
    let mut current = error.retain();
    // Bounded: a cycle of underlying errors must not loop.
    while descriptions.len() < 8 {
        // SAFETY: a dictionary lookup with Foundation's own key constant.
        let next = current.userInfo().objectForKey(unsafe { NSUnderlyingErrorKey });
        let Some(next) = next.and_then(|n| n.downcast::<NSError>().ok()) else { break };
        descriptions.push(next.localizedDescription().to_string());
        current = next;
    }
    error_chain(action, &descriptions)
}

/// A directory URL: `.mlpackage` and `.mlmodelc` are directories, and Core ML hosts name them so.
fn directory_url(path: &Path) -> Result<Retained<NSURL>, String> {
    NSURL::from_directory_path(path)
        .ok_or_else(|| format!("\"{}\" is not a usable path", path.display()))
}

/// Waits, at most `timeout`, for the completion handler of an asynchronous Core ML call. The
/// handler runs on a Core ML queue, which a panic must not unwind into, so `read` runs under
/// catch_unwind; a handler that answers after the timeout sends into a closed channel.
fn wait<T: objc2::Message, U: Send + 'static>(
    action: &'static str, timeout: Duration, read: impl Fn(&T) -> Result<U, String> + 'static,
    start: impl FnOnce(&DynBlock<dyn Fn(*mut T, *mut NSError)>),
) -> Result<U, String> {
    let (sender, receiver) = mpsc::channel();
    let handler = RcBlock::new(move |value: *mut T, error: *mut NSError| {
        // SAFETY: Core ML passes a valid object or nil for each, alive during this call.
        let result = match unsafe { (value.as_ref(), error.as_ref()) } {
            (Some(value), _) => catch_unwind(AssertUnwindSafe(|| read(value)))
                .unwrap_or_else(|_| Err(format!("internal error reading the result: {action}"))),
            (None, Some(error)) => Err(describe(error, action)),
            (None, None) => Err(format!("Core ML returned nothing: {action}")),
        };
        let _ = sender.send(result);
    });
    start(&handler);
    wait_for(&receiver, timeout, action)
}

/// Compiles `package` into `compiled`. The result is moved beside `compiled` (moveItemAtURL copies
/// across volumes, and Core ML compiles into the temporary directory), then renamed into place,
/// so no reader sees a partial directory.
fn compile(package: &Path, compiled: &Path, timeout: Duration) -> Result<(), String> {
    let from = directory_url(package)?;
    let read = |url: &NSURL| url.to_file_path().ok_or("no compiled model path".into());
    let temporary = wait("compile the package", timeout, read, |handler| {
        // SAFETY: a directory URL; Core ML copies the handler block.
        unsafe { MLModel::compileModelAtURL_completionHandler(&from, handler) }
    })?;
    publish(compiled, |staged| {
        NSFileManager::defaultManager()
            .moveItemAtURL_toURL_error(&*directory_url(&temporary)?, &*directory_url(staged)?)
            .map_err(|e| describe(&e, "move the compiled model into the cache"))
    })
}

/// A configuration for `units` (an MLComputeUnits value) and `function` (empty: the default).
/// Selecting a function needs macOS 15 / iOS 18, as every llamane bundle (iOS18 opset) does.
fn configuration(function: &str, units: i32) -> Result<Retained<MLModelConfiguration>, String> {
    if !(0..=3).contains(&units) {
        return Err(format!("compute units {units} is not an MLComputeUnits value (0 to 3)"));
    }
    // SAFETY: property writes on a fresh configuration; `units` is one of the four cases.
    unsafe {
        let config = MLModelConfiguration::new();
        config.setComputeUnits(MLComputeUnits(units as NSInteger));
        if !function.is_empty() {
            config.setFunctionName(Some(&NSString::from_str(function)));
        }
        Ok(config)
    }
}

/// The version of ABI.md this library implements.
#[no_mangle]
pub extern "C" fn llamane_coreml_abi_version() -> u32 {
    ABI_VERSION
}

/// The paths, configuration, function name and timeout an opening call asks for.
type Request<'a> = (&'a Path, &'a Path, Retained<MLModelConfiguration>, &'a str, Duration);

/// Reads and checks the arguments every opening call shares.
/// # Safety
/// The strings (package path, compiled path, function name) are valid for their lengths for 'a.
unsafe fn request<'a>(
    [package, compiled, function]: [(*const u8, usize); 3], units: i32, timeout_seconds: u32,
) -> Result<Request<'a>, String> {
    // SAFETY: forwarded from this function's contract.
    let text = |(ptr, len), what| unsafe { str_arg(ptr, len, what) };
    let (package, compiled) = (text(package, "the package path")?, text(compiled, "the cache")?);
    let function = text(function, "the function name")?;
    if timeout_seconds == 0 {
        return Err("the timeout must be at least 1 second".into());
    }
    let (config, timeout) =
        (configuration(function, units)?, Duration::from_secs(timeout_seconds.into()));
    Ok((Path::new(package), Path::new(compiled), config, function, timeout))
}

/// Loads one function (empty name: the default one) of a package, compiled once into `compiled`
/// (and once more if Core ML rejects that cached copy). Every wait is bounded by the timeout.
/// Returns the handle, or null with the message in `error`.
/// # Safety
/// ABI.md: strings valid for their lengths.
#[no_mangle]
pub unsafe extern "C" fn llamane_coreml_open(
    package: *const u8, package_len: usize, compiled: *const u8, compiled_len: usize,
    function: *const u8, function_len: usize, compute_units: i32, flags: u32, timeout_seconds: u32,
    error: *mut u8, capacity: usize,
) -> *mut Model {
    let mut handle = ptr::null_mut();
    guard(error, capacity, || {
        if flags & !DECLINE_OUTPUT_BACKINGS != 0 {
            return Err(format!("unknown flags {flags:#x}"));
        }
        let strings = [(package, package_len), (compiled, compiled_len), (function, function_len)];
        // SAFETY: ABI.md: the strings are valid for their lengths during this call.
        let (package, compiled, config, _, timeout) =
            unsafe { request(strings, compute_units, timeout_seconds) }?;
        let load = || {
            let url = directory_url(compiled)?;
            let read = |model: &MLModel| Ok(Loaded(model.retain()));
            wait("load the model", timeout, read, |handler| {
                let load = MLModel::loadContentsOfURL_configuration_completionHandler;
                // SAFETY: a compiled model's URL and a set configuration; Core ML copies the block.
                unsafe { load(&url, &config, handler) }
            })
        };
        let Loaded(model) = load_compiled(compiled, || compile(package, compiled, timeout), load)?;
        let backings = flags & DECLINE_OUTPUT_BACKINGS == 0;
        handle = Box::into_raw(Box::new(Model { model, bound: Bindings::default(), backings }));
        Ok(())
    });
    handle
}

/// Binds a caller's buffer as input (`side` 0) or output (1) number `index` for the predictions
/// that follow. Only the name and shape are copied; the bridge keeps the data pointer.
/// # Safety
/// ABI.md: `model` is open, `name` and `shape` are valid for their lengths during the call, and
/// `data` stays valid (and, for an output, unused elsewhere) while bound and predictions run.
#[no_mangle]
pub unsafe extern "C" fn llamane_coreml_bind(
    model: *const Model, side: u32, index: usize, name: *const u8, name_len: usize,
    shape: *const u64, rank: usize, dtype: u32, data: *mut c_void, data_bytes: usize,
    error: *mut u8, capacity: usize,
) -> i32 {
    guard(error, capacity, || {
        // SAFETY: a live handle from `llamane_coreml_open`, or null (ABI.md).
        let model = unsafe { model.as_ref() }.ok_or("the model handle is null")?;
        // SAFETY: ABI.md: `name` and `shape` are valid for their lengths.
        let tensor =
            unsafe { Tensor::new((name, name_len), (shape, rank), dtype, data, data_bytes) };
        model.bound.bind(side, index, tensor?)
    })
}

/// An MLMultiArray over the caller's buffer: no copy, no deallocator (the memory stays theirs).
fn wrap(tensor: &Tensor) -> Result<Retained<MLMultiArray>, String> {
    let numbers = |v: &[usize]| v.iter().map(|&n| NSNumber::new_usize(n)).collect::<Vec<_>>();
    let shape = NSArray::from_retained_slice(&numbers(&tensor.shape));
    let strides = NSArray::from_retained_slice(&numbers(&row_major_strides(&tensor.shape)));
    let (array, dtype) = (MLMultiArray::alloc(), MLMultiArrayDataType(tensor.dtype as NSInteger));
    let init = MLMultiArray::initWithDataPointer_shape_dataType_strides_deallocator_error;
    // SAFETY: `Tensor::new` checked that `data` is non-null, aligned and exactly as long as the
    // shape with these contiguous strides; the caller keeps it alive and untouched while bound
    // (ABI.md), and every array made here is released before predict returns.
    unsafe { init(array, tensor.data, &shape, dtype, &strides, None) }
        .map_err(|e| describe(&e, &format!("wrap tensor \"{}\"", tensor.name)))
}

fn named<T: Into<Retained<AnyObject>> + Clone>(
    tensors: &[Tensor], values: &[T],
) -> Retained<NSDictionary<NSString, AnyObject>> {
    let keys: Vec<_> = tensors.iter().map(|t| NSString::from_str(&t.name)).collect();
    let values: Vec<Retained<AnyObject>> = values.iter().cloned().map(Into::into).collect();
    NSDictionary::from_retained_objects(&keys.iter().map(|k| &**k).collect::<Vec<_>>(), &values)
}

/// Runs one prediction on the bound buffers. Core ML writes the outputs straight into the caller's
/// buffers when it takes them as output backings; otherwise they are copied in from its arrays.
/// # Safety
/// ABI.md: `model` is open and its bound buffers are alive.
#[no_mangle]
pub unsafe extern "C" fn llamane_coreml_predict(
    model: *const Model, error: *mut u8, capacity: usize,
) -> i32 {
    guard(error, capacity, || {
        // SAFETY: a live handle from `llamane_coreml_open`, or null (ABI.md).
        let Model { model, bound, backings: pass_backings } =
            unsafe { model.as_ref() }.ok_or("the model handle is null")?;
        // Held to the end: a bind on another thread cannot swap a buffer mid-prediction.
        let bound = bound.lock()?;
        let [inputs, outputs] = &*bound;
        let arrays = inputs.iter().map(wrap).collect::<Result<Vec<_>, _>>()?;
        let backings = outputs.iter().map(wrap).collect::<Result<Vec<_>, _>>()?;
        // SAFETY: Core ML calls on valid objects: feature values of the wrapped arrays, a
        // provider of those, options whose backings are MLMultiArrays (as outputBackings
        // requires). Core ML touches no caller memory but the wrapped buffers (see `wrap`).
        let result = unsafe {
            let values: Vec<_> =
                arrays.iter().map(|a| MLFeatureValue::featureValueWithMultiArray(a)).collect();
            let provider = MLDictionaryFeatureProvider::alloc();
            let provider = MLDictionaryFeatureProvider::initWithDictionary_error(
                provider,
                &named(inputs, &values),
            )
            .map_err(|e| describe(&e, "take the inputs"))?;
            let options = MLPredictionOptions::new();
            if *pass_backings {
                options.setOutputBackings(&named(outputs, &backings));
            }
            model
                .predictionFromFeatures_options_error(
                    ProtocolObject::from_ref(&*provider),
                    &options,
                )
                .map_err(|e| describe(&e, "predict"))?
        };
        for (tensor, backing) in outputs.iter().zip(&backings) {
            let name = NSString::from_str(&tensor.name);
            // SAFETY: looking up a feature value and its array.
            let array =
                unsafe { result.featureValueForName(&name).and_then(|v| v.multiArrayValue()) };
            let array = array.ok_or_else(|| format!("no array output \"{}\"", tensor.name))?;
            // Core ML documents object identity as the test that a backing was used.
            if Retained::as_ptr(&array) != Retained::as_ptr(backing) {
                copy_out(&array, tensor)?;
            }
        }
        Ok(())
    })
}

/// Copies an output Core ML returned in its own array, strides honoured, into the caller's buffer.
fn copy_out(array: &MLMultiArray, tensor: &Tensor) -> Result<(), String> {
    // SAFETY: property reads of a valid array.
    let (dtype, shape, strides) = unsafe { (array.dataType(), array.shape(), array.strides()) };
    let shape: Vec<usize> = shape.iter().map(|n| n.as_usize()).collect();
    let strides: Vec<usize> = strides.iter().map(|n| n.as_usize()).collect();
    if dtype.0 != tensor.dtype as NSInteger || shape != tensor.shape {
        return Err(format!("output \"{}\" came back as type {} {shape:?}", tensor.name, dtype.0));
    }
    let size = element_bytes(tensor.dtype);
    let copied = Cell::new(false);
    let handler = StackBlock::new(|bytes: NonNull<c_void>, count: NSInteger| {
        // SAFETY: Core ML lends `count` readable bytes at `bytes` during this call.
        let src = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), count.max(0) as _) };
        // SAFETY: `tensor.data` holds exactly `tensor.bytes` bytes (`Tensor::new`), and no Core ML
        // object refers to it, since its backing was not used.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(tensor.data.as_ptr().cast(), tensor.bytes) };
        // A failed bounds check panics, which must not unwind into Core ML.
        let copy = || copy_strided(src, &strides, &shape, size, dst);
        copied.set(catch_unwind(AssertUnwindSafe(copy)).is_ok());
    });
    // SAFETY: the handler runs synchronously, before this call returns.
    unsafe { array.getBytesWithHandler(&handler) };
    copied.get().then_some(()).ok_or_else(|| format!("output \"{}\" did not fit", tensor.name))
}

/// Releases a handle (null is ignored).
/// # Safety
/// `model` comes from `llamane_coreml_open`, is closed once, and no call is using it.
#[no_mangle]
pub unsafe extern "C" fn llamane_coreml_close(model: *mut Model) {
    if !model.is_null() {
        // SAFETY: made by Box::into_raw in `llamane_coreml_open`, released once (contract).
        let model = unsafe { Box::from_raw(model) };
        let _ = catch_unwind(AssertUnwindSafe(|| autoreleasepool(|_| drop(model))));
    }
}

/// One line per operation of `block` and its nested blocks (ABI.md, "Compute plan").
fn operations(plan: &MLComputePlan, block: &MLModelStructureProgramBlock, out: &mut String) {
    let clean = |s: Retained<NSString>| s.to_string().replace(['\t', '\n', ','], " ");
    // isKindOfClass, not the class name: the devices may be private subclasses.
    let kinds = [
        (MLNeuralEngineComputeDevice::class(), "ane"),
        (MLGPUComputeDevice::class(), "gpu"),
        (MLCPUComputeDevice::class(), "cpu"),
    ];
    // SAFETY: property reads and plan queries on structure objects that the plan keeps alive.
    unsafe {
        for op in block.operations().iter() {
            let usage = plan.computeDeviceUsageForMLProgramOperation(&op);
            let device = usage.map(|u| u.preferredComputeDevice()).map_or("", |d| {
                kinds.iter().find(|(class, _)| d.isKindOfClass(class)).map_or("other", |k| k.1)
            });
            let cost = plan.estimatedCostOfMLProgramOperation(&op).map(|c| c.weight().to_string());
            let names: Vec<String> = op.outputs().iter().map(|o| clean(o.name())).collect();
            let fields = [
                clean(op.operatorName()),
                device.into(),
                cost.unwrap_or_default(),
                names.join(","),
            ];
            out.push_str(&(fields.join("\t") + "\n"));
            for nested in op.blocks().iter() {
                operations(plan, &nested, out);
            }
        }
    }
}

/// Writes the device Core ML prefers for each operation of one function (empty name: the only
/// one) into `text` as NUL-terminated lines, or fails saying how many bytes it needs.
/// # Safety
/// As `llamane_coreml_open`; `text` is writable for `text_capacity` bytes.
#[no_mangle]
pub unsafe extern "C" fn llamane_coreml_compute_plan(
    package: *const u8, package_len: usize, compiled: *const u8, compiled_len: usize,
    function: *const u8, function_len: usize, compute_units: i32, timeout_seconds: u32,
    text: *mut u8, text_capacity: usize, error: *mut u8, capacity: usize,
) -> i32 {
    guard(error, capacity, || {
        let strings = [(package, package_len), (compiled, compiled_len), (function, function_len)];
        // SAFETY: ABI.md: the strings are valid for their lengths during this call.
        let (package, compiled, config, wanted, timeout) =
            unsafe { request(strings, compute_units, timeout_seconds) }?;
        if AnyClass::get(c"MLComputePlan").is_none() {
            return Err("the compute plan needs macOS 14.4 / iOS 17.4 or later".into());
        }
        let wanted = wanted.to_owned();
        let read = move |plan: &MLComputePlan| {
            // SAFETY: property reads of a loaded plan's structure, which the plan keeps alive.
            let program = unsafe { plan.modelStructure().program() }.ok_or("not an ML program")?;
            // SAFETY: as above.
            let (names, bodies) = unsafe { program.functions() }.to_vecs();
            let index = names
                .iter()
                .position(|n| n.to_string() == wanted)
                .or((wanted.is_empty() && names.len() == 1).then_some(0))
                .ok_or_else(|| format!("the program has no function \"{wanted}\""))?;
            let mut lines = String::new();
            // SAFETY: as above.
            operations(plan, &*unsafe { bodies[index].block() }, &mut lines);
            Ok(lines)
        };
        let load = || {
            let url = directory_url(compiled)?;
            wait("load the compute plan", timeout, read.clone(), |handler| {
                let load = MLComputePlan::loadContentsOfURL_configuration_completionHandler;
                // SAFETY: a compiled model's URL and a set configuration; Core ML copies the block.
                unsafe { load(&url, &config, handler) }
            })
        };
        let lines = load_compiled(compiled, || compile(package, compiled, timeout), load)?;
        if lines.len() >= text_capacity {
            return Err(format!("the compute plan needs a buffer of {} bytes", lines.len() + 1));
        }
        // SAFETY: ABI.md: `text` is writable for `text_capacity` bytes, or null.
        unsafe { write_text(text, text_capacity, &lines) };
        Ok(())
    })
}
