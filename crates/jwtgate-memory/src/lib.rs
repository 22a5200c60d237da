//! Gives memory the allocator holds free back to the operating system. It
//! does not free anything itself: callers drop what they no longer need
//! first (the upstream pool's idle buffers), and this returns the pages
//! those freed chunks span.
//!
//! glibc's `malloc` keeps freed chunks for reuse and returns memory on its
//! own only from the top of each heap, so buffers freed in the middle of a
//! heap after a burst of traffic stay in the process's resident set until
//! something is allocated there again. `malloc_trim(0)` gives their whole
//! pages back (`madvise(MADV_DONTNEED)`): after a 1 900-connection burst and
//! the pool's sweep, 1 044 KiB came back, against 228 KiB when the sweep
//! had not freed the idle buffers first. The only `unsafe` in the
//! tree is the call below: it takes no pointer and glibc documents it as
//! thread-safe (MT-Safe), so nothing a caller does can make it unsound.
//! Elsewhere (musl, other systems) it does nothing.

/// Returns whole free pages held by the allocator to the operating system;
/// says whether any were. Takes the allocator's arena locks while it walks
/// their free chunks: call it after freeing something large, not per request.
pub fn give_back_free_memory() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: `malloc_trim` reads no caller memory (its argument is a size to
    // keep at the top of the heap) and is MT-Safe in glibc; it returns 1 when
    // memory was released.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_pages_in_the_middle_of_the_heap_come_back() {
        // Many blocks below the mmap threshold, every other one freed: the
        // freed ones cannot merge into the top, so only a trim returns them.
        let mut blocks: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8; 64 * 1024]).collect();
        for (i, block) in blocks.iter_mut().enumerate() {
            if i % 2 == 0 {
                *block = Vec::new();
            }
        }
        let released = give_back_free_memory();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(released, "16 MiB of free pages and nothing released");
        } else {
            assert!(!released);
        }
        // What is still held is intact.
        assert!(blocks
            .iter()
            .enumerate()
            .all(|(i, b)| i % 2 == 0 || b.iter().all(|&x| x == i as u8)));
    }
}
