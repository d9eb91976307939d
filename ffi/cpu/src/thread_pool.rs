//! A fixed pool of worker threads, created once and reused by every call.
//!
//! Decode makes hundreds of kernel calls per token, so a call must not spawn threads or take a
//! slow path to wake them. A job is `n_tasks` indices handed out one at a time through an atomic
//! counter: the calling thread works too, and a thread that the OS (or another process on a
//! shared machine) slows down simply claims fewer tasks. Idle workers spin for a short while
//! (the next call usually comes within microseconds) and then park.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks: long enough to cover the gap between two
/// kernel calls of one token, short enough not to burn a core between tokens.
const SPIN: Duration = Duration::from_micros(200);

/// A job's task function `(task, thread)` with its lifetime erased; see the SAFETY comment in
/// `run_indexed`.
type Job = &'static (dyn Fn(usize, usize) + Sync);

/// State shared by the caller and the workers.
struct Shared {
    /// `next << 32 | n_tasks` of the current job: one word, so a claim sees a consistent pair.
    claim: AtomicU64,
    /// Tasks of the current job that have finished (or panicked).
    done: AtomicUsize,
    /// The current job, set before `claim` publishes its tasks and cleared after all are done.
    job: Mutex<Option<Job>>,
    /// The first panic payload of the current job, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Per worker: set while it is parked or about to park, so the caller knows to unpark it.
    sleeping: Vec<AtomicBool>,
    shutdown: AtomicBool,
}

impl Shared {
    /// Claims the next unclaimed task of the current job, if any.
    fn claim(&self) -> Option<usize> {
        let mut word = self.claim.load(Ordering::Acquire);
        loop {
            let (next, n) = (word >> 32, word & 0xFFFF_FFFF);
            if next >= n {
                return None;
            }
            match self.claim.compare_exchange_weak(
                word,
                word + (1 << 32),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next as usize),
                Err(w) => word = w,
            }
        }
    }

    fn has_work(&self) -> bool {
        let word = self.claim.load(Ordering::SeqCst);
        word >> 32 < word & 0xFFFF_FFFF
    }

    /// Runs tasks until none are left to claim, as thread `thread` of the job.
    fn work(&self, thread: usize) {
        while let Some(task) = self.claim() {
            // The job cannot change while a claimed task is unfinished: the caller waits for
            // `done` to reach n_tasks before it clears or replaces the job. So the job read after
            // a successful claim is the one the task belongs to.
            let job = self
                .job
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expect("job");
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(task, thread))) {
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(payload);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// A pool of `threads - 1` workers plus the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<(Thread, JoinHandle<()>)>,
    /// Held while a job runs: one job at a time. A second caller (another thread, or a task that
    /// calls back into the pool) finds it taken and runs its tasks inline instead of waiting.
    busy: Mutex<()>,
}

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads in total (the caller counts as one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job: Mutex::new(None),
            panic: Mutex::new(None),
            sleeping: (1..threads).map(|_| AtomicBool::new(false)).collect(),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                let handle = thread::Builder::new()
                    .name(format!("llamane-cpu-{i}"))
                    .spawn(move || worker_loop(&shared, i - 1))
                    .expect("spawn thread pool worker");
                (handle.thread().clone(), handle)
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    /// The process-wide pool, sized to the machine's available parallelism, created on first use.
    pub fn global() -> &'static ThreadPool {
        static POOL: OnceLock<ThreadPool> = OnceLock::new();
        POOL.get_or_init(|| ThreadPool::new(thread::available_parallelism().map_or(1, |n| n.get())))
    }

    /// Threads a job runs on, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `task(i)` once for every `i` in `0..n_tasks`, spread over the pool, and returns when
    /// all calls have returned. A panic in any task is re-raised here after the others finish.
    pub fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        self.run_indexed(n_tasks, &|i, _| task(i));
    }

    /// [`ThreadPool::run`] with `task(i, thread)`: `thread` is below [`ThreadPool::threads`] and
    /// no two calls running at the same time get the same one, so a task may use per-thread
    /// scratch indexed by it.
    pub fn run_indexed(&self, n_tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
        assert!(n_tasks < 1 << 31, "ThreadPool::run: too many tasks");
        let inline = || (0..n_tasks).for_each(|i| task(i, 0));
        let guard = match self.busy.try_lock() {
            Ok(g) => g,
            // A panic re-raised by an earlier job poisoned the lock; the pool itself is fine.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return inline(),
        };
        if self.workers.is_empty() || n_tasks <= 1 {
            return inline();
        }
        let shared = &*self.shared;
        // SAFETY: the 'static lifetime is a lie told only to the workers, who call `job` solely
        // for tasks claimed from this job; this function does not return (not even by unwinding:
        // panics are caught in `work`) until `done == n_tasks`, i.e. until every such call has
        // returned, and it clears the job before returning. So `task` outlives every use.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(task) };
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        shared.done.store(0, Ordering::Relaxed);
        shared.claim.store(n_tasks as u64, Ordering::SeqCst);
        for (sleeping, (thread, _)) in shared.sleeping.iter().zip(&self.workers) {
            if sleeping.swap(false, Ordering::SeqCst) {
                thread.unpark();
            }
        }
        shared.work(0);
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) < n_tasks {
            // Only the last tasks of other threads remain: spin, but yield the core if one of
            // them was descheduled.
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let payload = shared
            .panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(guard);
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for (thread, _) in &self.workers {
            thread.unpark();
        }
        for (_, handle) in self.workers.drain(..) {
            // A worker never panics (tasks are caught), so join only fails if the OS killed it.
            let _ = handle.join();
        }
    }
}

fn worker_loop(shared: &Shared, index: usize) {
    let sleeping = &shared.sleeping[index];
    loop {
        shared.work(index + 1);
        let idle_since = Instant::now();
        while !shared.has_work() && !shared.shutdown.load(Ordering::Relaxed) {
            if idle_since.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Announce the nap, then look once more: either the caller's store to `claim`
            // precedes this load (we see the work), or it follows our store to `sleeping` (the
            // caller sees the flag and unparks us). SeqCst on both sides makes that a total order.
            sleeping.store(true, Ordering::SeqCst);
            if shared.has_work() || shared.shutdown.load(Ordering::SeqCst) {
                sleeping.store(false, Ordering::SeqCst);
                break;
            }
            thread::park();
            sleeping.store(false, Ordering::SeqCst);
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
    }
}
