//! The boundary checks of src/abi.rs, which run before the bridge touches any caller pointer, and
//! the per-handle table of bound buffers.

use llamane_coreml::abi::*;
use llamane_coreml::portable::*;
use std::cell::Cell;
use std::ffi::c_void;
use std::path::Path;
use std::ptr;
use std::time::Duration;

const FP16: u32 = DTYPES[0];
const INT32: u32 = DTYPES[2];

/// `Tensor::new` over a name, a shape and a byte buffer, as one `llamane_coreml_bind` call.
fn describe(name: &[u8], shape: &[u64], dtype: u32, data: &mut [u8]) -> Result<Tensor, String> {
    let data_ptr = data.as_mut_ptr().cast::<c_void>();
    // SAFETY: the name and shape are live slices, valid for their lengths.
    unsafe {
        Tensor::new(
            (name.as_ptr(), name.len()),
            (shape.as_ptr(), shape.len()),
            dtype,
            data_ptr,
            data.len(),
        )
    }
}

/// 4-aligned storage viewed as bytes, as int32 and fp32 buffers need.
fn words(count: usize) -> Vec<u32> {
    vec![0u32; count]
}

fn bytes(words: &mut [u32]) -> &mut [u8] {
    let len = words.len() * 4;
    // SAFETY: the bytes of a live u32 slice, borrowed for as long as it.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

#[test]
fn tensor_new_accepts_a_description_that_matches_its_buffer() {
    let mut storage = words(4);
    let data = bytes(&mut storage);
    let address = data.as_ptr() as usize;
    let tensor = describe("k_cache_0".as_bytes(), &[1, 4], INT32, data).unwrap();
    assert_eq!((tensor.name.as_str(), tensor.shape.as_slice()), ("k_cache_0", &[1usize, 4][..]));
    assert_eq!((tensor.dtype, tensor.bytes, tensor.data.as_ptr() as usize), (INT32, 16, address));
}

#[test]
fn tensor_new_rejects_a_byte_length_that_disagrees_with_the_shape() {
    let mut data = vec![0u8; 10];
    let error = describe(b"mask", &[2, 3], FP16, &mut data).err().unwrap();
    assert!(error.contains("\"mask\"") && error.contains("Some(12)"), "{error}");
}

#[test]
fn tensor_new_rejects_unknown_dtypes_bad_ranks_zero_dims_and_overflowing_shapes() {
    let mut data = vec![0u8; 8];
    assert!(describe(b"x", &[4], 7, &mut data).err().unwrap().contains("dtype 7"));
    assert!(describe(b"x", &[], FP16, &mut data).err().unwrap().contains("rank 0"));
    assert!(describe(b"x", &[1; 9], FP16, &mut data).err().unwrap().contains("rank 9"));
    assert!(describe(b"x", &[0, 4], FP16, &mut data).err().unwrap().contains("None"));
    let huge = [u64::MAX / 2, 4];
    assert!(describe(b"x", &huge, FP16, &mut data).err().unwrap().contains("None"));
}

#[test]
fn tensor_new_rejects_null_and_misaligned_buffers_and_shapes() {
    let mut storage = words(3);
    let data = bytes(&mut storage);
    let error = describe(b"x", &[2], INT32, &mut data[1..9]).err().unwrap();
    assert!(error.contains("misaligned"), "{error}");
    // SAFETY: the name is a live slice; the null buffer is rejected, never read.
    let null =
        unsafe { Tensor::new((b"x".as_ptr(), 1), ([2u64].as_ptr(), 1), INT32, ptr::null_mut(), 8) };
    assert!(null.err().unwrap().contains("null"));
    let shape = [0u64, 2];
    let odd = shape.as_ptr().cast::<u8>().wrapping_add(1).cast::<u64>();
    // SAFETY: the misaligned shape pointer is rejected before it is read.
    let error =
        unsafe { Tensor::new((b"x".as_ptr(), 1), (odd, 1), INT32, data.as_mut_ptr().cast(), 8) };
    assert!(error.err().unwrap().contains("misaligned"));
}

#[test]
fn tensor_new_rejects_names_that_are_not_utf8_or_null_with_a_length() {
    let mut data = vec![0u8; 2];
    assert!(describe(&[0xff, 0xfe], &[1], FP16, &mut data).err().unwrap().contains("not UTF-8"));
    // SAFETY: the null name is rejected, never read.
    let null = unsafe {
        Tensor::new((ptr::null(), 3), ([1u64].as_ptr(), 1), FP16, data.as_mut_ptr().cast(), 2)
    };
    assert!(null.err().unwrap().contains("null"));
}

#[test]
fn bindings_append_in_order_replace_in_place_and_refuse_gaps_and_other_sides() {
    let mut storage = words(8);
    let data = bytes(&mut storage);
    let (a, rest) = data.split_at_mut(8);
    let (b, c) = rest.split_at_mut(8);
    let bindings = Bindings::default();
    bindings.bind(0, 0, describe(b"tokens", &[2], INT32, a).unwrap()).unwrap();
    let skip = bindings.bind(0, 2, describe(b"mask", &[2], INT32, b).unwrap());
    assert!(skip.unwrap_err().contains("index 2 of side 0 comes before index 1"));
    bindings.bind(0, 1, describe(b"mask", &[2], INT32, b).unwrap()).unwrap();
    bindings.bind(1, 0, describe(b"logits", &[4], INT32, c).unwrap()).unwrap();
    bindings.bind(0, 0, describe(b"tokens", &[1, 2], INT32, b).unwrap()).unwrap();
    let other = bindings.bind(2, 0, describe(b"x", &[2], INT32, a).unwrap());
    assert!(other.unwrap_err().contains("side 2"));
    let bound = bindings.lock().unwrap();
    let names = |side: &[Tensor]| side.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&bound[0]), ["tokens", "mask"]);
    assert_eq!(names(&bound[1]), ["logits"]);
    assert_eq!(bound[0][0].shape, [1, 2]);
    assert_eq!(bound[0][0].data, bound[0][1].data);
}

#[test]
fn bindings_refuse_a_call_while_another_holds_them_and_survive_a_panic() {
    let mut data = vec![0u8; 2];
    let bindings = Bindings::default();
    let held = bindings.lock().unwrap();
    let busy = bindings.bind(0, 0, describe(b"x", &[1], FP16, &mut data).unwrap());
    assert!(busy.unwrap_err().contains("in use by another call"));
    assert!(bindings.lock().is_err());
    drop(held);
    let panicked = std::panic::catch_unwind(|| {
        let _held = bindings.lock().unwrap();
        panic!("a bug mid-call");
    });
    assert!(panicked.is_err());
    bindings.bind(0, 0, describe(b"x", &[1], FP16, &mut data).unwrap()).unwrap();
    assert_eq!(bindings.lock().unwrap()[0].len(), 1);
}

#[test]
fn row_major_strides_are_contiguous() {
    assert_eq!(row_major_strides(&[1, 4, 8, 16]), vec![512, 128, 16, 1]);
    assert_eq!(row_major_strides(&[7]), vec![1]);
}

#[test]
fn copy_strided_reads_padded_rows_into_a_contiguous_buffer() {
    // A [2, 3] array of u16 stored with rows padded to 4 elements, as the Neural Engine pads.
    let src: Vec<u8> = [1u16, 2, 3, 99, 4, 5, 6, 99].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut dst = vec![0u8; 12];
    copy_strided(&src, &[4, 1], &[2, 3], 2, &mut dst);
    let values: Vec<u16> = dst.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(values, vec![1, 2, 3, 4, 5, 6]);
}

/// The copy element by element, each source offset computed on its own: the reference.
fn copy_strided_reference(src: &[u16], strides: &[usize], shape: &[usize]) -> Vec<u16> {
    let count: usize = shape.iter().product();
    let contiguous = row_major_strides(shape);
    (0..count)
        .map(|i| {
            src[(0..shape.len()).map(|a| i / contiguous[a] % shape[a] * strides[a]).sum::<usize>()]
        })
        .collect()
}

#[test]
fn copy_strided_equals_the_element_wise_copy_for_padded_and_transposed_layouts() {
    // (shape, strides): padded rows of rank 1 to 4, a padded middle axis, and a transposed
    // layout whose last axis is not contiguous.
    let cases: [(&[usize], &[usize]); 6] = [
        (&[5], &[1]),
        (&[3, 5], &[8, 1]),
        (&[2, 3, 5], &[40, 8, 1]),
        (&[1, 2, 3, 5], &[64, 32, 8, 1]),
        (&[2, 3, 4], &[20, 5, 1]),
        (&[3, 4], &[1, 3]),
    ];
    for (shape, strides) in cases {
        let span = shape.iter().zip(strides).map(|(d, s)| (d - 1) * s).sum::<usize>() + 1;
        let src: Vec<u16> = (0..span as u16).map(|v| v.wrapping_mul(7) ^ 0x5a5a).collect();
        let bytes: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut dst = vec![0u8; shape.iter().product::<usize>() * 2];
        copy_strided(&bytes, strides, shape, 2, &mut dst);
        let got: Vec<u16> = dst.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(got, copy_strided_reference(&src, strides, shape), "{shape:?} {strides:?}");
    }
}

#[test]
fn copy_strided_panics_rather_than_reading_past_a_short_source() {
    let src = vec![0u8; 10];
    let mut dst = vec![0u8; 12];
    let result =
        std::panic::catch_unwind(move || copy_strided(&src, &[4, 1], &[2, 3], 2, &mut dst));
    assert!(result.is_err());
}

#[test]
fn write_text_truncates_at_a_character_boundary_and_terminates() {
    let mut buffer = [0xaau8; 6];
    // SAFETY: the buffer is 6 writable bytes.
    unsafe { write_text(buffer.as_mut_ptr(), buffer.len(), "abcdé!") };
    // "abcd" + the first byte of "é" would not be UTF-8, so the cut falls before "é".
    assert_eq!(&buffer[..5], b"abcd\0");
    // SAFETY: null buffers are ignored.
    unsafe { write_text(ptr::null_mut(), 10, "ignored") };
}

#[test]
fn str_arg_reads_empty_and_rejects_null_with_a_length() {
    // SAFETY: a zero length is never read; the null-with-length case is rejected, not read.
    unsafe {
        assert_eq!(str_arg(ptr::null(), 0, "function").unwrap(), "");
        assert!(str_arg(ptr::null(), 3, "function").unwrap_err().contains("null"));
    }
}

#[test]
fn wait_for_returns_the_answer_and_bounds_a_handler_that_never_runs() {
    let (sender, receiver) = std::sync::mpsc::channel::<Result<u32, String>>();
    sender.send(Ok(7)).unwrap();
    assert_eq!(wait_for(&receiver, Duration::from_secs(1), "load the model"), Ok(7));
    let started = std::time::Instant::now();
    let error = wait_for(&receiver, Duration::from_millis(50), "load the model").unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(error.contains("did not finish (load the model) within 0 s"), "{error}");
    drop(sender);
    let error = wait_for(&receiver, Duration::from_secs(1), "compile the package").unwrap_err();
    assert_eq!(error, "Core ML never answered: compile the package");
}

#[test]
fn error_chain_keeps_the_underlying_errors_in_order_without_repeats() {
    let chain =
        ["The model could not be loaded.", "", "E5RT: Program load failure (11)"].map(String::from);
    assert_eq!(
        error_chain("load the model", &chain),
        "Core ML could not load the model: The model could not be loaded.; caused by: E5RT: \
         Program load failure (11)"
    );
    let repeated = ["Failed.", "Failed."].map(String::from);
    assert_eq!(error_chain("predict", &repeated), "Core ML could not predict: Failed.");
}

/// Counts compile and load calls around `load_compiled`, with loads failing as `fails` says.
fn load_counting(compiled: &Path, fails: &[bool]) -> (Result<&'static str, String>, usize, usize) {
    let (compiles, loads) = (Cell::new(0), Cell::new(0));
    let result = load_compiled(
        compiled,
        || {
            compiles.set(compiles.get() + 1);
            std::fs::create_dir_all(compiled).map_err(|e| e.to_string())
        },
        || {
            let call = loads.get();
            loads.set(call + 1);
            if fails.get(call) == Some(&true) {
                Err(format!("load {call} failed"))
            } else {
                Ok("model")
            }
        },
    );
    (result, compiles.get(), loads.get())
}

#[test]
fn load_compiled_compiles_a_missing_entry_once_and_recompiles_a_rejected_cached_one_once() {
    let dir = std::env::temp_dir().join(format!("llamane-coreml-abi-{}", std::process::id()));
    let compiled = dir.join("piece.mlmodelc");
    let _ = std::fs::remove_dir_all(&dir);
    // Missing: compiled, then loaded.
    assert_eq!(load_counting(&compiled, &[]), (Ok("model"), 1, 1));
    // Cached and accepted: loaded as it is.
    assert_eq!(load_counting(&compiled, &[]), (Ok("model"), 0, 1));
    // Cached but rejected (an OS update): removed, compiled again, loaded.
    std::fs::write(compiled.join("stale"), b"").unwrap();
    assert_eq!(load_counting(&compiled, &[true]), (Ok("model"), 1, 2));
    assert!(!compiled.join("stale").exists());
    // Rejected again after recompiling: both reasons reported, no third attempt.
    let (result, compiles, loads) = load_counting(&compiled, &[true, true]);
    let error = result.unwrap_err();
    assert!(error.contains("load 1 failed") && error.contains("load 0 failed"), "{error}");
    assert_eq!((compiles, loads), (1, 2));
    // A fresh compilation that does not load is an error at once.
    std::fs::remove_dir_all(&compiled).unwrap();
    assert_eq!(load_counting(&compiled, &[true]), (Err("load 0 failed".into()), 1, 1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn publish_renames_a_staged_directory_into_place_and_cleans_up_after_a_failed_stage() {
    let dir = std::env::temp_dir().join(format!("llamane-coreml-publish-{}", std::process::id()));
    let compiled = dir.join("piece.mlmodelc");
    std::fs::create_dir_all(&dir).unwrap();
    let stage_failed = publish(&compiled, |staged| {
        std::fs::create_dir(staged).unwrap();
        Err("the move failed".into())
    });
    assert_eq!(stage_failed, Err("the move failed".into()));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let stage = |staged: &Path| std::fs::create_dir(staged).map_err(|e| e.to_string());
    assert_eq!(publish(&compiled, stage), Ok(()));
    assert!(compiled.is_dir());
    // Another process published first: its copy stays, and the staged one is gone.
    std::fs::write(compiled.join("theirs"), b"").unwrap();
    assert_eq!(publish(&compiled, stage), Ok(()));
    assert!(compiled.join("theirs").exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
