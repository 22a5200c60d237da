//! The upstream response parser: any bytes from an upstream give a head, a
//! request for more, or a typed error, never a panic; the chunked decoder
//! likewise on whatever follows the head, fed in pieces.
#![no_main]

use bytes::BytesMut;
use http::Method;
use jwtgate_proxy::h1::{parse_response_head, ChunkedDecoder, Decoded, ResponseFraming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = if selector & 1 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    // Whether the client side could take the lines as bytes (HTTP/1.x).
    let pass_on = selector & 2 != 0;
    // The rest of the selector: how many bytes each read delivers.
    let step = usize::from(selector >> 2).max(1);
    let mut buf = BytesMut::new();
    let mut input = rest.chunks(step);
    let mut spare = http::HeaderMap::new();
    let mut head = loop {
        match parse_response_head(&mut buf, &method, &mut spare, pass_on) {
            Ok(Some(head)) => break head,
            Ok(None) => match input.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(_) => return,
        }
    };
    if let Some(passed) = head.passed.take() {
        assert!(pass_on, "lines passed on as bytes to an HTTP/2 client");
        assert!(head.headers.is_empty());
        for run in passed.runs() {
            assert!(run.ends_with(b"\r\n"));
        }
        passed.append_to(&mut head.headers);
    }
    assert!(!head.headers.contains_key(http::header::TRANSFER_ENCODING));
    assert!(!head.headers.contains_key(http::header::CONNECTION));
    if head.framing != ResponseFraming::Chunked {
        return;
    }
    let mut decoder = ChunkedDecoder::default();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(d)) => assert!(!d.is_empty()),
            Ok(Decoded::Done) => {
                assert!(decoder.is_done());
                return;
            }
            Ok(Decoded::NeedMore) => match input.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(_) => return,
        }
    }
});
