//! Handing bytes to a background worker that may outlive the backend that starts it (the
//! backend's transaction may abort right after): a pinned dynamic shared memory segment, found
//! by its handle, freed by whoever takes the bytes.

use pgrx::pg_sys;

/// Copies `bytes` into a new pinned segment; returns its handle. Pair with [`take`] (in the
/// worker) or [`discard`] (if no worker started).
pub fn publish(bytes: &[u8]) -> pg_sys::dsm_handle {
    // SAFETY: a new segment sized for the length prefix plus the bytes; pinning keeps it alive
    // after this backend detaches (at abort) until take() or discard() unpins it.
    unsafe {
        let seg = pg_sys::dsm_create(bytes.len() + 8, 0);
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        std::ptr::copy_nonoverlapping((bytes.len() as u64).to_le_bytes().as_ptr(), base, 8);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(8), bytes.len());
        pg_sys::dsm_pin_segment(seg);
        pg_sys::dsm_segment_handle(seg)
    }
}

/// The bytes of segment `handle`, which is freed; None if it no longer exists.
pub fn take(handle: pg_sys::dsm_handle) -> Option<Vec<u8>> {
    // SAFETY: the segment was pinned by publish(); we copy the bytes out, unpin (freeing it
    // once we detach) and detach.
    unsafe {
        let seg = pg_sys::dsm_attach(handle);
        if seg.is_null() {
            return None;
        }
        let base = pg_sys::dsm_segment_address(seg) as *const u8;
        let mut len = [0u8; 8];
        std::ptr::copy_nonoverlapping(base, len.as_mut_ptr(), 8);
        let bytes =
            std::slice::from_raw_parts(base.add(8), u64::from_le_bytes(len) as usize).to_vec();
        pg_sys::dsm_unpin_segment(handle);
        pg_sys::dsm_detach(seg);
        Some(bytes)
    }
}

/// Frees a segment nobody will take.
pub fn discard(handle: pg_sys::dsm_handle) {
    // SAFETY: the segment was pinned by publish() and nobody else knows its handle.
    unsafe { pg_sys::dsm_unpin_segment(handle) };
}
