//! The plan's scratch memory: one 64-byte-aligned block for the arena tensors, allocated when the
//! plan is created and reused by every run.

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Alignment of the arena and of every arena tensor's offset (PLAN.md).
pub const ALIGN: usize = 64;

/// A zeroed, 64-byte-aligned block of `bytes` bytes.
pub struct Arena {
    ptr: *mut u8,
    layout: Option<Layout>,
}

// SAFETY: the arena owns its block; moving it to another thread moves that ownership.
unsafe impl Send for Arena {}

impl Arena {
    /// Allocates `bytes` zeroed bytes (none for 0). Fails only when the size is absurd or the
    /// allocator has no memory.
    pub fn new(bytes: usize) -> Result<Self, String> {
        if bytes == 0 {
            return Ok(Arena {
                // Every arena tensor is then empty, and empty views never read the pointer.
                ptr: std::ptr::NonNull::dangling().as_ptr(),
                layout: None,
            });
        }
        let layout = Layout::from_size_align(bytes, ALIGN)
            .map_err(|_| format!("arena of {bytes} bytes is too large"))?;
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(format!("cannot allocate an arena of {bytes} bytes"));
        }
        Ok(Arena {
            ptr,
            layout: Some(layout),
        })
    }

    /// First byte; only arena tensors inside the size given to [`Arena::new`] may be formed
    /// from it.
    pub fn ptr(&mut self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `ptr` came from `alloc_zeroed` with this layout and is freed once.
            unsafe { dealloc(self.ptr, layout) };
        }
    }
}
