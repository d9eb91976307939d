//! The crate's error type and the status codes it maps to at the C ABI.

use std::fmt;

/// A status code returned by every exported function (see ABI.md).
///
/// The numbers are part of the ABI: never renumber, only append.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// An argument was malformed: a null pointer, a length that does not match the shape, an
    /// unknown format code, a misaligned buffer.
    InvalidArgument = 1,
    /// The library panicked; this is a bug in the library, the message says where.
    Panic = 2,
    // 3 was "buffer too small", returned by the ABI 1 `llamane_last_error`; never reuse it.
}

/// An error with the status code the C ABI reports and a message for the last-error string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// An [`Status::InvalidArgument`] error with the given message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error {
            status: Status::InvalidArgument,
            message: message.into(),
        }
    }

    /// An error with an explicit status code.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The status code this error maps to at the C ABI.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Fails with an [`Status::InvalidArgument`] error unless `actual == expected`.
pub fn check_len(what: &str, actual: usize, expected: usize) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what}: expected {expected} elements, got {actual}"
        )))
    }
}
