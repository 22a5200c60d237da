//! Per-thread pools of what every request allocates and frees again: the
//! header maps requests and responses are parsed into, client connections'
//! read buffers, and the buffer responses are written from. Each worker is
//! one thread with a runtime of its own, so a pool here is that worker's,
//! with no lock; a thread that never serves requests never fills one.
//!
//! Why: a proxied request built two header maps (two allocations each) and
//! freed them again, about 900 of its 25 000 instructions
//! (`bench/callgrind.sh plain`); and a connection that idles should hold no
//! buffer, yet taking one from the allocator per request costs as much.

use std::cell::{Cell, RefCell};

use bytes::BytesMut;
use http::HeaderMap;

/// Maps kept per thread, at most. A request in flight holds two; more are
/// kept only while that many requests are in flight at once.
const POOLED_MAPS: usize = 32;
/// A map grown past this many entries is freed, not pooled.
const MAX_POOLED_MAP: usize = 128;
/// Read buffers kept per thread, at most.
const POOLED_BUFFERS: usize = 64;

thread_local! {
    static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static READ_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty header map, with the capacity of one used before when the pool
/// has one.
pub fn header_map() -> HeaderMap {
    MAPS.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default()
}

/// Returns a map that is no longer needed. Its entries are dropped now.
pub fn give_header_map(mut map: HeaderMap) {
    let capacity = map.capacity();
    if capacity == 0 || capacity > MAX_POOLED_MAP {
        return;
    }
    map.clear();
    MAPS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_MAPS {
            pool.push(map);
        }
    });
}

/// An empty read buffer of at least `capacity` bytes.
pub fn read_buffer(capacity: usize) -> BytesMut {
    READ_BUFFERS
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(capacity))
}

/// Returns a read buffer; one grown past `max_capacity` (a large head) is
/// freed instead.
pub fn give_read_buffer(buf: BytesMut, max_capacity: usize) {
    if buf.capacity() > max_capacity {
        return;
    }
    READ_BUFFERS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_BUFFERS {
            pool.push(buf);
        }
    });
}

/// The thread's write buffer, empty; a new one when another connection of
/// the thread has it (while its write waits on a slow client).
pub fn write_buffer() -> Vec<u8> {
    WRITE_BUFFER.with(Cell::take)
}

/// Returns the write buffer; one grown past `max_capacity` is freed.
pub fn give_write_buffer(mut out: Vec<u8>, max_capacity: usize) {
    if out.capacity() <= max_capacity {
        out.clear();
        WRITE_BUFFER.with(|b| b.set(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn a_returned_map_comes_back_empty_with_its_capacity() {
        let mut map = HeaderMap::with_capacity(20);
        map.insert("x-a", HeaderValue::from_static("1"));
        let capacity = map.capacity();
        give_header_map(map);
        let again = header_map();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
        // The pool is empty again: a new map has no capacity yet.
        assert_eq!(header_map().capacity(), 0);
    }

    #[test]
    fn maps_too_large_or_without_capacity_are_not_kept() {
        give_header_map(HeaderMap::with_capacity(4 * MAX_POOLED_MAP));
        give_header_map(HeaderMap::new());
        assert_eq!(header_map().capacity(), 0);
    }

    #[test]
    fn the_pools_are_bounded() {
        for _ in 0..POOLED_MAPS + 5 {
            give_header_map(HeaderMap::with_capacity(8));
        }
        assert_eq!(MAPS.with(|p| p.borrow().len()), POOLED_MAPS);
        for _ in 0..POOLED_BUFFERS + 5 {
            give_read_buffer(BytesMut::with_capacity(16), 1024);
        }
        give_read_buffer(BytesMut::with_capacity(4096), 1024);
        assert_eq!(READ_BUFFERS.with(|p| p.borrow().len()), POOLED_BUFFERS);
        assert!(read_buffer(8).capacity() <= 1024);
    }
}
