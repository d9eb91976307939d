//! A piece's weight.bin (MIL blob storage, version 2), memory-mapped read-only.
//!
//! The file is a 64-byte header (blob count, version) followed by one 64-byte metadata record
//! plus data per blob. Plans refer to a blob by the offset of its record, as model.mlmodel does;
//! nothing in the file is trusted before [`WeightFile::blob`] has checked the record against what
//! the plan expects (dtype, size, bounds). Layout: docs of `coreml/blob_storage.ts` and the
//! format reference.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::Error;

/// Bytes of the file header and of each metadata record.
pub const RECORD_BYTES: usize = 64;
/// The only storage format version read.
pub const VERSION: u32 = 2;
/// First field of every metadata record.
pub const SENTINEL: u32 = 0xDEAD_BEEF;

/// Element types a blob can hold, with their codes in the metadata record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobDType {
    /// IEEE binary16, code 1.
    F16,
    /// IEEE binary32, code 2.
    F32,
    /// Signed 8-bit, code 4.
    I8,
    /// Signed 4-bit packed two per byte, code 8.
    I4,
    /// Signed 32-bit, code 14.
    I32,
    /// Unsigned 4-bit packed two per byte, code 11.
    U4,
    /// Unsigned 6-bit packed as one LSB-first bit stream, code 13.
    U6,
}

impl BlobDType {
    /// The record's dtype code for this type.
    pub fn code(self) -> u32 {
        match self {
            BlobDType::F16 => 1,
            BlobDType::F32 => 2,
            BlobDType::I8 => 4,
            BlobDType::I4 => 8,
            BlobDType::I32 => 14,
            BlobDType::U4 => 11,
            BlobDType::U6 => 13,
        }
    }

    /// Bytes of `elements` values (int4: `ceil(elements / 2)`).
    pub fn bytes(self, elements: usize) -> usize {
        match self {
            BlobDType::F16 => elements * 2,
            BlobDType::F32 | BlobDType::I32 => elements * 4,
            BlobDType::I8 => elements,
            BlobDType::I4 | BlobDType::U4 => elements.div_ceil(2),
            BlobDType::U6 => (elements * 6).div_ceil(8),
        }
    }

    /// Alignment the data must have to be read in place.
    fn align(self) -> usize {
        match self {
            BlobDType::F16 => 2,
            BlobDType::F32 | BlobDType::I32 => 4,
            BlobDType::I8 | BlobDType::I4 | BlobDType::U4 | BlobDType::U6 => 1,
        }
    }
}

/// A mapped weight.bin whose header has been checked.
pub struct WeightFile {
    path: PathBuf,
    map: Mmap,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("bytes", &self.map.len())
            .finish()
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl WeightFile {
    /// Maps `path` read-only and checks its header.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let fail =
            |what: String| Error::invalid(format!("cannot map \"{}\": {what}", path.display()));
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        if len < RECORD_BYTES as u64 {
            return Err(fail(format!(
                "the file has {len} bytes, fewer than the {RECORD_BYTES}-byte header of weight.bin"
            )));
        }
        // SAFETY: the mapping is read-only and private to this value. Its soundness assumes that
        // no one truncates or rewrites the file while it is mapped: bundles are written to a
        // temporary directory and renamed into place, never modified in place (export/bundle_directory.ts), and
        // ABI.md states this precondition for callers.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| fail(e.to_string()))?;
        let version = u32_at(&map, 4);
        if version != VERSION {
            return Err(fail(format!(
                "blob storage version {version} in the header, expected {VERSION}"
            )));
        }
        Ok(WeightFile {
            path: path.to_path_buf(),
            map,
        })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Checks the metadata record at `record` for a blob of `elements` values of `dtype` and
    /// returns the byte range of its data: sentinel, dtype code, data offset (the record's offset
    /// plus 64), size, padding bits, bounds and alignment.
    pub fn blob(
        &self,
        record: usize,
        dtype: BlobDType,
        elements: usize,
    ) -> Result<Range<usize>, String> {
        let bytes = self.bytes();
        let len = bytes.len();
        if record < RECORD_BYTES || !record.is_multiple_of(RECORD_BYTES) {
            return Err(format!(
                "blob record offset {record} is not a multiple of {RECORD_BYTES} past the header"
            ));
        }
        if record.checked_add(RECORD_BYTES).is_none_or(|end| end > len) {
            return Err(format!(
                "blob record at offset {record} lies past the end of the {len}-byte file"
            ));
        }
        let sentinel = u32_at(bytes, record);
        if sentinel != SENTINEL {
            return Err(format!(
                "blob record at offset {record} has sentinel {sentinel:#010x}, expected {SENTINEL:#010x}"
            ));
        }
        let code = u32_at(bytes, record + 4);
        if code != dtype.code() {
            return Err(format!(
                "blob at offset {record} has dtype code {code}, expected {} ({dtype:?})",
                dtype.code()
            ));
        }
        // Bounds every size computation below (u6 takes 6 bits per value) away from overflow.
        if elements > usize::MAX / 8 {
            return Err(format!(
                "blob at offset {record}: {elements} elements is more than any file holds"
            ));
        }
        let size = u64_at(bytes, record + 8);
        let data = u64_at(bytes, record + 16);
        let padding = u64_at(bytes, record + 24);
        let expected_size = dtype.bytes(elements) as u64;
        if size != expected_size {
            return Err(format!(
                "blob at offset {record} holds {size} bytes, expected {expected_size} for {elements} {dtype:?} values"
            ));
        }
        let expected_data = (record + RECORD_BYTES) as u64;
        if data != expected_data {
            return Err(format!(
                "blob at offset {record} says its data is at {data}, expected {expected_data}"
            ));
        }
        let expected_padding = if dtype == BlobDType::I4 && elements % 2 == 1 {
            4
        } else {
            0
        };
        if padding != expected_padding {
            return Err(format!(
                "blob at offset {record} has {padding} padding bits, expected {expected_padding}"
            ));
        }
        if data.checked_add(size).is_none_or(|end| end > len as u64) {
            return Err(format!(
                "blob at offset {record} ends at byte {}, past the end of the {len}-byte file",
                data.saturating_add(size)
            ));
        }
        let (start, size) = (data as usize, size as usize);
        // The mapping is page-aligned, so the data's alignment is its offset's.
        if !start.is_multiple_of(dtype.align()) {
            return Err(format!(
                "blob data at offset {start} is not aligned to {} bytes",
                dtype.align()
            ));
        }
        Ok(start..start + size)
    }
}
