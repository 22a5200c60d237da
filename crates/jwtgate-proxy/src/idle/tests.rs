use std::future::pending;
use std::time::{Duration, Instant};

use super::*;

const PERIOD: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_millis(100);
/// What a connection that says goodbye itself is given past the timeout.
const GRACE: Duration = Duration::from_millis(300);
/// Far beyond the timeout: only a broken sweeper takes this long.
const BOUND: Duration = Duration::from_secs(10);

/// Spawns `until` as a task watched like a connection; it holds its ticket
/// as a connection's task does.
fn watched_until(
    watch: &IdleWatch,
    activity: &Arc<Activity>,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let ticket = watch.ticket();
    let id = ticket.id();
    let task = tokio::spawn(async move {
        let _ticket = ticket;
        until.await;
    });
    watch.watch(id, Arc::clone(activity), task.abort_handle());
    task
}

/// A watched task that never ends on its own.
fn watched(watch: &IdleWatch, activity: &Arc<Activity>) -> tokio::task::JoinHandle<()> {
    watched_until(watch, activity, pending())
}

/// A plain connection's record of itself.
fn info() -> ConnInfo {
    ConnInfo::new("127.0.0.1:5000".parse().expect("addr"), false)
}

/// How many connections the watch holds.
fn watched_count(watch: &IdleWatch) -> usize {
    watch.inner.conns.lock().unwrap().len()
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_timeout_and_not_before() {
    let watch = IdleWatch::start(TIMEOUT, GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    let started = Instant::now();
    let task = watched(&watch, &activity);
    let ended = tokio::time::timeout(BOUND, task)
        .await
        .expect("never closed");
    assert!(ended.unwrap_err().is_cancelled());
    assert!(
        started.elapsed() >= TIMEOUT,
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(watched_count(&watch), 0);
}

#[tokio::test]
async fn a_busy_connection_is_left_alone_and_its_idle_time_starts_when_the_exchange_ends() {
    let watch = IdleWatch::start(TIMEOUT, GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    let busy = activity.begin();
    let task = watched(&watch, &activity);
    tokio::time::sleep(TIMEOUT * 4).await;
    assert!(
        !task.is_finished(),
        "a connection with an exchange in flight was closed"
    );
    let released = Instant::now();
    drop(busy);
    let ended = tokio::time::timeout(BOUND, task)
        .await
        .expect("never closed");
    assert!(ended.unwrap_err().is_cancelled());
    assert!(
        released.elapsed() >= TIMEOUT,
        "closed {:?} after its exchange",
        released.elapsed()
    );
}

#[tokio::test]
async fn exchanges_within_the_timeout_keep_a_connection_open() {
    let watch = IdleWatch::start(TIMEOUT, GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    let task = watched(&watch, &activity);
    for _ in 0..10 {
        tokio::time::sleep(TIMEOUT / 4).await;
        drop(activity.begin());
    }
    assert!(
        !task.is_finished(),
        "closed although it was never idle for the timeout"
    );
    task.abort();
}

/// An HTTP/2 connection's loop: waits out `idle_left` as it says, and
/// reports when it was first told the connection idled for the timeout;
/// then it lingers, as one whose client never answers the GOAWAY.
async fn says_goodbye(activity: Arc<Activity>, told: tokio::sync::oneshot::Sender<Instant>) {
    while let Some(left) = activity.idle_left() {
        tokio::time::sleep(left.min(PERIOD)).await;
    }
    let _ = told.send(Instant::now());
    pending::<()>().await;
}

#[tokio::test]
async fn a_connection_that_says_goodbye_is_told_at_the_timeout_and_closed_a_grace_later() {
    let watch = IdleWatch::start(TIMEOUT, GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    activity.says_goodbye();
    let started = Instant::now();
    let (tx, told) = tokio::sync::oneshot::channel();
    let task = watched_until(&watch, &activity, says_goodbye(Arc::clone(&activity), tx));
    let told = tokio::time::timeout(BOUND, told)
        .await
        .expect("never told")
        .unwrap();
    assert!(told - started >= TIMEOUT, "told after {:?}", told - started);
    assert!(!task.is_finished(), "closed by the watch when told");
    let ended = tokio::time::timeout(BOUND, task)
        .await
        .expect("never closed");
    assert!(ended.unwrap_err().is_cancelled());
    assert!(
        started.elapsed() >= TIMEOUT + GRACE,
        "closed by the watch after {:?}, before the grace",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_left_counts_from_the_end_of_the_last_exchange() {
    let watch = IdleWatch::start(TIMEOUT, GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    activity.says_goodbye();
    let fresh = activity.idle_left().expect("idle already");
    assert!(fresh >= TIMEOUT, "{fresh:?}");
    let busy = activity.begin();
    tokio::time::sleep(TIMEOUT * 3).await;
    let during = activity
        .idle_left()
        .expect("told while an exchange is in flight");
    assert!(during >= TIMEOUT, "{during:?} left during an exchange");
    drop(busy);
    let after = activity.idle_left().expect("told as its exchange ended");
    assert!(after >= TIMEOUT, "{after:?} left as its exchange ended");
    tokio::time::sleep(TIMEOUT + PERIOD * 3).await;
    // The watch's clock is a task's ticks, which a busy machine delays:
    // bounded by BOUND, not by the timeout's margin.
    let waited = tokio::time::timeout(BOUND, async {
        while activity.idle_left().is_some() {
            tokio::time::sleep(PERIOD).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "still told {:?} left", activity.idle_left());
}

#[tokio::test]
async fn a_connection_that_ends_leaves_the_watch() {
    let watch = IdleWatch::start(Duration::from_secs(60), GRACE, PERIOD, Arc::default());
    let activity = watch.activity(info());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = watched_until(&watch, &activity, async move {
        let _ = rx.await;
    });
    assert_eq!(watched_count(&watch), 1);
    tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(watched_count(&watch), 0);
}

#[tokio::test]
async fn stopped_is_ready_when_the_gateway_stops_and_at_once_after() {
    let watch = IdleWatch::start(Duration::from_secs(60), GRACE, PERIOD, Arc::default());
    let h2 = watch.activity(info());
    let waiter = Arc::clone(&h2);
    let waiting = tokio::spawn(async move { waiter.stopped().await });
    // Let it register, then nothing wakes it but the stop.
    tokio::task::yield_now().await;
    tokio::time::sleep(PERIOD * 3).await;
    assert!(!waiting.is_finished(), "ready before any stop");
    watch.stop();
    tokio::time::timeout(BOUND, waiting)
        .await
        .expect("the stop did not wake it")
        .unwrap();
    // A connection that asks after the stop is told at once.
    let late = watch.activity(info());
    tokio::time::timeout(BOUND, late.stopped())
        .await
        .expect("not ready after the stop");
}

#[tokio::test]
async fn a_stop_closes_waiting_connections_at_once_and_leaves_the_others_to_finish() {
    // A timeout no test waits for: only the stop closes anything here.
    let watch = IdleWatch::start(Duration::from_secs(3600), GRACE, PERIOD, Arc::default());
    let fresh = watch.activity(info());
    let waiting = watch.activity(info());
    assert!(waiting.await_request());
    let busy = watch.activity(info());
    let exchange = busy.begin();
    let h2 = watch.activity(info());
    h2.says_goodbye();
    let tasks = [&fresh, &waiting, &busy, &h2].map(|a| watched(&watch, a));
    assert!(!busy.stopping());

    watch.stop();
    let [fresh_task, waiting_task, busy_task, h2_task] = tasks;
    for (name, task) in [("fresh", fresh_task), ("waiting", waiting_task)] {
        let ended = tokio::time::timeout(BOUND, task).await;
        let ended = ended.unwrap_or_else(|_| panic!("{name}: not closed at the stop"));
        assert!(ended.unwrap_err().is_cancelled(), "{name}");
    }
    // The busy one is told, and closes itself after its exchange; the
    // HTTP/2 one says goodbye itself.
    assert!(busy.stopping());
    assert!(!busy_task.is_finished() && !h2_task.is_finished());
    assert_eq!(watched_count(&watch), 2);
    // One that comes back for its next request is told to close instead.
    drop(exchange);
    assert!(!busy.await_request());
}

#[tokio::test]
async fn an_ended_connection_gives_its_place_back() {
    let placed = Arc::new(AtomicUsize::new(2));
    let watch = IdleWatch::start(Duration::from_secs(60), GRACE, PERIOD, Arc::clone(&placed));
    let activity = watch.activity(info());
    let task = watched_until(&watch, &activity, async {});
    task.await.unwrap();
    assert_eq!(placed.load(Ordering::Relaxed), 1);
    // A ticket never counted does not take the count below zero.
    placed.store(0, Ordering::Relaxed);
    drop(watch.ticket());
    assert_eq!(placed.load(Ordering::Relaxed), 0);
}

/// At a stop, an HTTP/2 connection (told GOAWAY) whose client never closes
/// it is closed a couple of periods later once idle, not after the idle
/// timeout and grace: one that never read held the whole drain (an outside
/// audit). One with an exchange in flight is left to finish it.
#[tokio::test]
async fn at_a_stop_an_idle_connection_that_says_goodbye_is_closed_soon() {
    let grace = Duration::from_secs(60);
    let watch = IdleWatch::start(Duration::from_secs(60), grace, PERIOD, Arc::default());
    let idle = watch.activity(info());
    idle.says_goodbye();
    let busy_one = watch.activity(info());
    busy_one.says_goodbye();
    let exchange = busy_one.begin();
    let idle_task = watched(&watch, &idle);
    let busy_task = watched(&watch, &busy_one);
    tokio::time::sleep(PERIOD * 3).await;
    assert!(!idle_task.is_finished(), "closed before the stop");
    watch.stop();
    // Far less than the minute of idle timeout and the minute of grace.
    let ended = tokio::time::timeout(BOUND, idle_task)
        .await
        .expect("not closed within the bound: the idle timeout and grace still applied");
    assert!(ended.unwrap_err().is_cancelled());
    assert!(
        !busy_task.is_finished(),
        "closed with an exchange in flight"
    );
    drop(exchange);
    let ended = tokio::time::timeout(BOUND, busy_task)
        .await
        .expect("never closed once its exchange ended");
    assert!(ended.unwrap_err().is_cancelled());
}
