//! The thread pool: every task runs exactly once, panics come back to the caller, and the pool
//! survives them, nested calls and concurrent callers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use llamane_cpu::thread_pool::ThreadPool;

#[test]
fn runs_every_task_exactly_once_many_times() {
    let pool = ThreadPool::new(4);
    for n_tasks in [0, 1, 2, 3, 7, 64, 1000] {
        for _ in 0..50 {
            let counts: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n_tasks, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                "n_tasks {n_tasks}"
            );
        }
    }
}

#[test]
fn reraises_a_task_panic_after_all_tasks_and_keeps_working() {
    let pool = ThreadPool::new(3);
    let done = AtomicUsize::new(0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(16, &|i| {
            if i == 5 {
                panic!("task five failed");
            }
            done.fetch_add(1, Ordering::Relaxed);
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"task five failed"));
    assert_eq!(
        done.load(Ordering::Relaxed),
        15,
        "the other tasks still ran"
    );
    let after = AtomicUsize::new(0);
    pool.run(8, &|_| {
        after.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(after.load(Ordering::Relaxed), 8);
}

#[test]
fn nested_and_concurrent_calls_run_inline_instead_of_deadlocking() {
    let pool = Arc::new(ThreadPool::new(2));
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (pool, total) = (Arc::clone(&pool), Arc::clone(&total));
            std::thread::spawn(move || {
                for _ in 0..100 {
                    pool.run(4, &|_| {
                        pool.run(3, &|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total.load(Ordering::Relaxed), 3 * 100 * 4 * 3);
}

#[test]
fn wakes_parked_workers() {
    let pool = ThreadPool::new(2);
    // Longer than the spin phase, so the worker has parked and must be woken.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    for _ in 0..200 {
        pool.run(64, &|_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_micros(20));
        });
        if seen.lock().unwrap().len() == 2 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the worker thread never ran a task");
}

#[test]
fn indexed_tasks_never_share_a_thread_index_at_the_same_time() {
    let pool = ThreadPool::new(3);
    let busy: Vec<AtomicUsize> = (0..pool.threads()).map(|_| AtomicUsize::new(0)).collect();
    let done = AtomicUsize::new(0);
    for _ in 0..20 {
        pool.run_indexed(64, &|_, thread| {
            assert!(thread < 3, "thread index {thread}");
            assert_eq!(
                busy[thread].fetch_add(1, Ordering::SeqCst),
                0,
                "index {thread} in use"
            );
            std::hint::black_box((0..2000).sum::<u64>());
            busy[thread].fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::Relaxed);
        });
    }
    assert_eq!(done.load(Ordering::Relaxed), 20 * 64);
}
