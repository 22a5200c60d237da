//! The client request parser, as the data plane uses it: any bytes a
//! client sends give a head, a request for more, or a 4xx error, never a
//! panic. A head it takes is written upstream as the gateway writes it, and
//! read back: the upstream must read the same method, target, headers and
//! body framing (no second reading to smuggle a request through). A chunked
//! body after it is decoded in pieces, sent on re-chunked, and decodes to
//! the same bytes.
#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};
use jwtgate_proxy::h1::inbound::{
    parse_request_head, HeadError, MAX_REQUEST_HEAD, MAX_REQUEST_HEADERS,
};
use jwtgate_proxy::h1::{
    encode_request_head, push_chunk_size, ChunkedDecoder, Decoded, RequestFraming,
};
use jwtgate_proxy::headers::{remove_hop_by_hop, GatewayHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    // How many bytes each read delivers.
    let mut input = rest.chunks(usize::from(step).max(1));
    let mut buf = BytesMut::new();
    let mut spare = HeaderMap::new();
    let head = loop {
        match parse_request_head(&mut buf, &mut spare) {
            Ok(Some(head)) => break head,
            Ok(None) => match input.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(e) => {
                assert!(e.status().is_client_error(), "{e}: {}", e.status());
                return;
            }
        }
    };

    // Upstream, as `upstream::Exchange::send` writes it.
    let mut headers = head.parts.headers.clone();
    remove_hop_by_hop(&mut headers, |_| false);
    let target = head
        .parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let host = HeaderValue::from_static("upstream.test:8080");
    let mut out = Vec::new();
    encode_request_head(
        &mut out,
        &head.parts.method,
        target,
        &host,
        &headers,
        &GatewayHeaders::default(),
        head.body,
    );
    let mut sent = BytesMut::from(&out[..]);
    let again = match parse_request_head(&mut sent, &mut HeaderMap::new()) {
        Ok(Some(again)) => again,
        // Over this parser's own limits only with the `host` line added:
        // an upstream's are its own (nginx's are in bytes, Node's 2 000).
        Err(HeadError::TooLarge)
            if out.len() > MAX_REQUEST_HEAD || headers.len() + 1 > MAX_REQUEST_HEADERS =>
        {
            return
        }
        other => panic!(
            "the upstream cannot read {:?}: {other:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert!(sent.is_empty(), "bytes after the head sent upstream");
    assert_eq!(again.parts.method, head.parts.method);
    assert_eq!(
        again.parts.uri.path_and_query().map(|pq| pq.as_str()),
        Some(target)
    );
    assert_eq!(again.body, head.body);
    let passed = |map: &HeaderMap| -> Vec<(String, Vec<u8>)> {
        map.iter()
            .filter(|(name, _)| {
                *name != http::header::HOST && *name != http::header::CONTENT_LENGTH
            })
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect()
    };
    let mut expected = passed(&headers);
    expected.retain(|(name, _)| name != "transfer-encoding");
    assert_eq!(
        passed(&again.parts.headers)
            .into_iter()
            .filter(|(n, _)| n != "transfer-encoding")
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(again.parts.headers.get(http::header::HOST), Some(&host));

    if head.body != RequestFraming::Chunked {
        return;
    }
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut rechunked = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(d)) => {
                assert!(!d.is_empty());
                body.extend_from_slice(&d);
                push_chunk_size(&mut rechunked, d.len());
                rechunked.extend_from_slice(&d);
                rechunked.extend_from_slice(b"\r\n");
            }
            Ok(Decoded::Done) => break,
            Ok(Decoded::NeedMore) => match input.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return,
            },
            Err(_) => return,
        }
    }
    rechunked.extend_from_slice(b"0\r\n\r\n");
    let mut upstream = BytesMut::from(&rechunked[..]);
    let mut decoder = ChunkedDecoder::default();
    let mut read = Vec::new();
    loop {
        match decoder.decode(&mut upstream) {
            Ok(Decoded::Data(d)) => read.extend_from_slice(&d),
            Ok(Decoded::Done) => break,
            other => panic!("the upstream cannot read the body sent on: {other:?}"),
        }
    }
    assert_eq!(read, body);
    assert!(upstream.is_empty());
});
