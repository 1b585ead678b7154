//! PostgreSQL's `List` of pointers, read from Rust.

use pgrx::pg_sys;

/// The pointers of a `List` (empty for NIL), cast to `*mut T`.
///
/// # Safety
/// `list` must be NULL or a valid pointer `List` whose cells point to `T`s.
pub unsafe fn items<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: a non-NULL List has `length` valid cells (the caller's promise).
    unsafe {
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).ptr_value as *mut T)
            .collect()
    }
}
