//! Pinning the data plane's workers to CPUs (`worker_cpu_affinity: auto`,
//! nginx's `worker_cpu_affinity auto`): worker `k` runs only on the `k`-th
//! CPU the process may run on. Off by default, as in nginx, HAProxy and
//! Envoy. What it is for: with the gateway sharing its cores with other
//! busy processes, the scheduler may put two workers on one CPU, where
//! they take turns at the scheduler's tick and each connection of the one
//! waiting waits a tick (README, Benchmarks: the two-core row's p99).

use core_affinity::CoreId;
use jwtgate_config::WorkerAffinity;
use tracing::warn;

/// The CPU of each of `workers` workers, or `None` when they are not to be
/// pinned (or the CPUs this process may run on cannot be read).
pub(super) fn plan(affinity: WorkerAffinity, workers: usize) -> Option<Vec<CoreId>> {
    if affinity == WorkerAffinity::Off {
        return None;
    }
    match core_affinity::get_core_ids() {
        Some(cpus) if !cpus.is_empty() => Some(spread(&cpus, workers)),
        _ => {
            warn!("worker_cpu_affinity: cannot read the CPUs this process may run on; the workers are not pinned");
            None
        }
    }
}

/// Worker `k` gets `cpus[k % cpus.len()]`.
fn spread(cpus: &[CoreId], workers: usize) -> Vec<CoreId> {
    cpus.iter().copied().cycle().take(workers).collect()
}

/// Pins the calling thread, worker `n`, to `cpu`; a failure is logged and
/// the worker runs unpinned.
pub(super) fn pin_current(n: usize, cpu: CoreId) {
    if !core_affinity::set_for_current(cpu) {
        warn!(
            worker = n,
            cpu = cpu.id,
            "cannot pin the worker to its CPU; it runs unpinned"
        );
    }
}

/// Whether an unpinned worker may be moved between CPUs by the scheduler:
/// the process may run on more than one.
pub(super) fn may_move() -> bool {
    core_affinity::get_core_ids().is_some_and(|cpus| cpus.len() > 1)
}

/// Run by an unpinned worker that has nothing to do, just before it waits
/// for its sockets: it gives its CPU once to whatever else is runnable
/// there (the load it serves: its clients, its upstream), which often
/// makes the very events it would wait for, so that the wait finds them
/// ready instead of putting the worker to sleep. Each sleep is a wake-up
/// later, and the scheduler may then move the woken worker to its waker's
/// CPU: in the two-core benchmark the workers slept about 2 000 times a
/// second each, were moved about 50 times a second, spent stretches both
/// on one CPU with the other idling 7–17 %, and the p99 was 4–5 ms. With
/// the yield they sleep 30–60 times less, move about once a second, both
/// CPUs stay 98 % busy and the p99 halves (README, Benchmarks). One system call
/// per wait, returning at once when nothing else is runnable; an idle
/// gateway still sleeps in its wait. Not done for a pinned worker or a
/// process on one CPU, which cannot be moved.
pub(super) fn yield_before_sleep() {
    std::thread::yield_now();
}

/// The plan as the log shows it: `0,1,0` (worker order).
pub(super) fn describe(cpus: &[CoreId]) -> String {
    cpus.iter()
        .map(|c| c.id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[usize]) -> Vec<CoreId> {
        v.iter().map(|&id| CoreId { id }).collect()
    }

    #[test]
    fn each_worker_gets_the_next_cpu_wrapping_around() {
        let cpus = ids(&[2, 5, 7]);
        assert_eq!(describe(&spread(&cpus, 2)), "2,5");
        assert_eq!(describe(&spread(&cpus, 3)), "2,5,7");
        assert_eq!(describe(&spread(&cpus, 5)), "2,5,7,2,5");
    }

    #[test]
    fn off_plans_nothing() {
        assert!(plan(WorkerAffinity::Off, 4).is_none());
    }

    #[test]
    fn auto_plans_the_cpus_this_process_may_run_on() {
        let allowed = core_affinity::get_core_ids().expect("the test's own CPUs");
        let planned = plan(WorkerAffinity::Auto, allowed.len()).expect("a plan");
        assert_eq!(planned, allowed);
    }
}
