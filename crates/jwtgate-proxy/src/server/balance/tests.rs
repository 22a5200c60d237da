use std::time::Duration;

use tokio::net::TcpListener;

use super::*;

/// `n` connections to a fresh listener, as accepted by a worker: the
/// server's sockets and the clients' (kept open, or the accepted side would
/// see them close).
async fn accepted(n: usize) -> Vec<(TcpStream, SocketAddr, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        out.push((server, peer, client));
    }
    out
}

fn counts(balance: &Balance) -> Vec<usize> {
    balance
        .placed
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect()
}

#[tokio::test]
async fn a_burst_one_worker_accepts_is_split_evenly() {
    let (balance, mut inboxes) = Balance::new(2, usize::MAX);
    let mut kept = 0;
    let mut clients = Vec::new();
    for (stream, peer, client) in accepted(10).await {
        clients.push(client);
        assert!(balance.reserve(0));
        if let Placed::Here(_) = balance.place(0, stream, peer) {
            kept += 1;
        }
    }
    assert_eq!(kept, 5);
    assert_eq!(counts(&balance), [5, 5]);
    let mut handed = Vec::new();
    while let Ok((stream, peer)) = inboxes[1].try_recv() {
        // The socket arrives whole: the same connection, still open.
        assert_eq!(stream.peer_addr().unwrap(), peer);
        handed.push(peer);
    }
    assert_eq!(handed.len(), 5);
    assert!(
        inboxes[0].try_recv().is_err(),
        "nothing is handed to the acceptor"
    );
}

#[tokio::test]
async fn a_handed_over_socket_carries_the_clients_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (balance, mut inboxes) = Balance::new(2, usize::MAX);
    let mut conns = accepted(2).await.into_iter();
    let (first, peer, _c1) = conns.next().unwrap();
    assert!(balance.reserve(0));
    assert!(matches!(balance.place(0, first, peer), Placed::Here(_)));
    let (second, peer, mut client) = conns.next().unwrap();
    assert!(balance.reserve(0));
    assert!(matches!(balance.place(0, second, peer), Placed::Moved));
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let (std, _) = inboxes[1].recv().await.unwrap();
    let mut taken = TcpStream::from_std(std).unwrap();
    let mut buf = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), taken.read_exact(&mut buf))
        .await
        .expect("the bytes arrive")
        .unwrap();
    assert_eq!(&buf, b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn a_worker_keeps_what_it_accepts_while_others_are_as_busy() {
    let (balance, _inboxes) = Balance::new(3, usize::MAX);
    balance.placed[1].store(4, Ordering::Relaxed);
    balance.placed[2].store(3, Ordering::Relaxed);
    balance.placed[0].store(3, Ordering::Relaxed);
    let (stream, peer, _client) = accepted(1).await.pop().unwrap();
    assert!(balance.reserve(0));
    assert!(matches!(balance.place(0, stream, peer), Placed::Here(_)));
    assert_eq!(counts(&balance), [4, 4, 3]);
    // Now it serves one more than worker 2, the least busy: handed there.
    let (stream, peer, _client) = accepted(1).await.pop().unwrap();
    assert!(balance.reserve(0));
    assert!(matches!(balance.place(0, stream, peer), Placed::Moved));
    assert_eq!(counts(&balance), [4, 4, 4]);
}

#[tokio::test]
async fn a_stopped_worker_is_handed_nothing() {
    let (balance, mut inboxes) = Balance::new(2, usize::MAX);
    drop(inboxes.pop()); // worker 1 stopped
    balance.placed[0].store(5, Ordering::Relaxed);
    let (stream, peer, _client) = accepted(1).await.pop().unwrap();
    assert!(balance.reserve(0));
    match balance.place(0, stream, peer) {
        // Still registered with this runtime: usable here.
        Placed::Here(stream) => assert_eq!(stream.peer_addr().unwrap(), peer),
        Placed::Moved => panic!("handed to a stopped worker"),
    }
    assert_eq!(counts(&balance), [6, 0]);
}

#[test]
fn a_place_given_back_never_goes_below_zero() {
    let (balance, _inboxes) = Balance::new(1, usize::MAX);
    balance.unplace(0);
    assert_eq!(counts(&balance), [0]);
    balance.placed[0].store(2, Ordering::Relaxed);
    balance.unplace(0);
    assert_eq!(counts(&balance), [1]);
}

#[test]
fn reservations_stop_at_max_connections() {
    let (balance, _inboxes) = Balance::new(2, 3);
    balance.placed[0].store(1, Ordering::Relaxed);
    balance.placed[1].store(1, Ordering::Relaxed);
    assert!(balance.reserve(0));
    // Connections and reservations together are at the limit: none more,
    // and a refused reservation leaves no trace.
    assert!(!balance.reserve(1));
    assert_eq!(counts(&balance), [1, 1]);
    assert_eq!(balance.reserved[1].load(Ordering::Relaxed), 0);
    // A reservation given back, or a connection ended, frees a place.
    balance.unreserve(0);
    assert!(balance.reserve(1));
    balance.unreserve(1);
    balance.unplace(0);
    assert!(balance.reserve(0) && balance.reserve(1));
}
