//! The weight.bin reader on any bytes: the header check, then every metadata record the file
//! itself describes, checked as a plan would ask for it. A panic or an out-of-bounds read is a
//! bug; an error is the expected answer to a bad file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llamane_cpu::weight_file::{BlobDType, WeightFile, RECORD_BYTES};

/// The dtypes a record may name, by their codes.
const DTYPES: [BlobDType; 7] = [
    BlobDType::F16,
    BlobDType::F32,
    BlobDType::I8,
    BlobDType::I4,
    BlobDType::I32,
    BlobDType::U4,
    BlobDType::U6,
];

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fuzz_target!(|bytes: &[u8]| {
    // The reader maps a file: each input is written to this process's own scratch file.
    let path = std::env::temp_dir().join(format!("llamane-fuzz-{}.bin", std::process::id()));
    std::fs::write(&path, bytes).expect("write the scratch file");
    let Ok(file) = WeightFile::open(&path) else {
        return;
    };
    // Ask for every record position the way a plan would: with the dtype and the element count
    // the record claims, and with each other dtype, so both acceptance and refusal are exercised;
    // and with the claimed size itself as a count, however large.
    for record in (0..bytes.len().min(64 * RECORD_BYTES)).step_by(RECORD_BYTES) {
        let claimed = u64_at(bytes, record + 8).unwrap_or(0);
        for dtype in DTYPES {
            let elements = match dtype {
                BlobDType::F16 => claimed / 2,
                BlobDType::F32 | BlobDType::I32 => claimed / 4,
                BlobDType::I8 => claimed,
                BlobDType::I4 | BlobDType::U4 => claimed.saturating_mul(2),
                BlobDType::U6 => claimed.saturating_mul(8) / 6,
            };
            for count in [elements, claimed] {
                if let Ok(range) = file.blob(record, dtype, count as usize) {
                    assert!(range.end <= file.bytes().len(), "a blob outside the file");
                    assert_eq!(
                        range.len(),
                        dtype.bytes(count as usize),
                        "a blob of another size"
                    );
                }
            }
        }
    }
});
