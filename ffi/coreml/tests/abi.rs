//! The boundary checks of src/abi.rs, which run before the bridge touches any caller pointer.

use llamane_coreml::abi::*;
use std::ffi::c_void;
use std::ptr;

const FP16: usize = DTYPES[0];
const INT32: usize = DTYPES[2];

fn tensor(name: &str, data: &mut [u8], shape: &[usize], dtype: usize) -> Tensor {
    Tensor {
        name: name.as_ptr(),
        name_len: name.len(),
        data: data.as_mut_ptr().cast::<c_void>(),
        data_bytes: data.len(),
        shape: shape.as_ptr(),
        rank: shape.len(),
        dtype,
    }
}

fn check(tensors: &[Tensor]) -> Result<Vec<(String, Vec<usize>, usize)>, String> {
    // SAFETY: every record points into live locals of the caller, valid for its lengths.
    let views = unsafe { read_tensors(tensors.as_ptr(), tensors.len()) }?;
    Ok(views.iter().map(|v| (v.name.to_string(), v.shape.to_vec(), v.dtype)).collect())
}

#[test]
fn read_tensors_accepts_records_that_match_their_buffers() {
    let mut a = vec![0u8; 2 * 3 * 2];
    let mut b = vec![0u32; 4];
    // SAFETY (cast): u32 storage is 4-aligned, as int32 requires.
    let b_bytes = unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<u8>(), 16) };
    let (sa, sb) = ([2, 3], [1, 4]);
    let views = check(&[tensor("tokens", &mut a, &sa, FP16), tensor("pos", b_bytes, &sb, INT32)]);
    assert_eq!(
        views.unwrap(),
        vec![("tokens".into(), vec![2, 3], FP16), ("pos".into(), vec![1, 4], INT32)]
    );
}

#[test]
fn read_tensors_rejects_a_byte_length_that_disagrees_with_the_shape() {
    let mut data = vec![0u8; 10];
    let error = check(&[tensor("mask", &mut data, &[2, 3], FP16)]).unwrap_err();
    assert!(error.contains("\"mask\"") && error.contains("Some(12)"), "{error}");
}

#[test]
fn read_tensors_rejects_unknown_dtypes_zero_dims_and_overflowing_shapes() {
    let mut data = vec![0u8; 8];
    assert!(check(&[tensor("x", &mut data, &[4], 7)]).unwrap_err().contains("dtype 7"));
    assert!(check(&[tensor("x", &mut data, &[0, 4], FP16)]).unwrap_err().contains("None"));
    let huge = [usize::MAX / 2, 4];
    assert!(check(&[tensor("x", &mut data, &huge, FP16)]).unwrap_err().contains("None"));
    assert!(check(&[tensor("x", &mut data, &[], FP16)]).unwrap_err().contains("rank 0"));
}

#[test]
fn read_tensors_rejects_null_and_misaligned_buffers() {
    let mut data = vec![0u32; 3];
    // SAFETY (cast): the 12 bytes of a live u32 vector.
    let bytes = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), 12) };
    let misaligned = tensor("x", &mut bytes[1..9], &[2], INT32);
    assert!(check(&[misaligned]).unwrap_err().contains("misaligned"));
    let mut null = tensor("x", &mut bytes[..8], &[2], INT32);
    null.data = ptr::null_mut();
    assert!(check(&[null]).unwrap_err().contains("null"));
}

#[test]
fn read_tensors_rejects_invalid_utf8_names_and_null_tables() {
    let mut data = vec![0u8; 2];
    let mut bad = tensor("x", &mut data, &[1], FP16);
    let name = [0xffu8, 0xfe];
    bad.name = name.as_ptr();
    bad.name_len = 2;
    assert!(check(&[bad]).unwrap_err().contains("not UTF-8"));
    // SAFETY: a null table with a nonzero count is what is being rejected; it is never read.
    let error = unsafe { read_tensors(ptr::null(), 2) }.err().unwrap();
    assert!(error.contains("null"), "{error}");
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
