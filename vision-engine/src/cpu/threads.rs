//! The CPU ops' threads: one pool for the process, whose threads wait between ops instead of
//! being spawned for each (an op takes tens of microseconds to milliseconds).
//!
//! Natively the pool spawns its threads itself, as ops first ask for them. In wasm a thread is a
//! web worker that shares the module's memory, which only the page can start: a build with the
//! `atomics` target feature (shared memory, on a cross-origin-isolated page) gets its threads from
//! workers that each call [`serve_as_worker`]. A wasm build without it has one thread.
//!
//! An op posts one job: `tasks` calls of a closure on its stack. The pool's threads and the
//! caller claim them one by one, so the job finishes however many threads have joined; the
//! caller returns once every call has returned.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The job in flight: its task, lifetime erased (see [`run_tasks`]), and how far it has got.
struct Job {
    task: *const (dyn Fn(usize) + Sync + 'static),
    tasks: usize,
    claimed: usize,
    unfinished: usize,
    panic: Option<Box<dyn Any + Send>>,
}

// SAFETY: the task is `Sync`, so any thread may call it; `run_tasks` keeps it alive until the
// job's last call has returned.
unsafe impl Send for Job {}

struct Pool {
    job: Mutex<Option<Job>>,
    /// Signalled when a job is posted.
    posted: Condvar,
    /// Signalled when a job's last call returns.
    finished: Condvar,
}

static POOL: Pool = Pool {
    job: Mutex::new(None),
    posted: Condvar::new(),
    finished: Condvar::new(),
};

/// Jobs posted so far, and jobs whose last call has returned: the pool's threads and the caller
/// watch these without the lock for a while (`SPINS`) before they sleep on a condvar, because
/// waking a sleeping thread takes longer than the gaps between most ops (in browsers most).
static POSTED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Loads of a counter before sleeping: on the order of 0.1 ms.
const SPINS: usize = 1 << 16;

/// Watches `counter` until it moves past `seen` or `SPINS` loads have passed.
fn spin_until_moved(counter: &AtomicUsize, seen: usize) {
    for _ in 0..SPINS {
        if counter.load(Ordering::Acquire) != seen {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Threads in [`serve_as_worker`].
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// How many threads serve the pool now, besides the callers of the ops.
pub fn serving_threads() -> usize {
    SERVING.load(Ordering::Relaxed)
}

/// Threads the CPU ops use; 0 means one per core.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Caps the threads the CPU backend's ops use (0: one per core, the default), so it can be
/// compared with another runtime on the same thread count. In wasm with atomics, the page starts
/// `threads - 1` workers that call [`serve_as_worker`]; until they have, the caller does their
/// share. In wasm without atomics there is one thread whatever this says.
pub fn set_worker_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Threads an op may split its work over, the caller included.
pub(crate) fn worker_count() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn lock_job() -> MutexGuard<'static, Option<Job>> {
    // Tasks run outside the lock, so a panicking task cannot poison it.
    POOL.job.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls `task(0)` .. `task(tasks - 1)`, on the pool's threads and this one, and returns when all
/// have returned (re-raising the first panic). Nested or concurrent calls run their tasks on the
/// calling thread alone.
pub(crate) fn run_tasks(tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    if tasks <= 1 {
        (0..tasks).for_each(task);
        return;
    }
    start_threads(tasks - 1);
    let mut job = lock_job();
    if job.is_some() {
        drop(job);
        (0..tasks).for_each(task);
        return;
    }
    // SAFETY: only the lifetime is erased. No thread calls `task` after the job's `unfinished`
    // reaches 0, and this function returns only after that.
    let task: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(task) };
    *job = Some(Job {
        task,
        tasks,
        claimed: 0,
        unfinished: tasks,
        panic: None,
    });
    let finished = FINISHED.load(Ordering::Relaxed);
    POSTED.fetch_add(1, Ordering::Release);
    POOL.posted.notify_all();
    job = work_on_job(job);
    if job.as_ref().is_some_and(|j| j.unfinished > 0) {
        drop(job);
        spin_until_moved(&FINISHED, finished);
        job = lock_job();
    }
    while job.as_ref().is_some_and(|j| j.unfinished > 0) {
        job = POOL
            .finished
            .wait(job)
            .unwrap_or_else(PoisonError::into_inner);
    }
    let panic = job.take().and_then(|j| j.panic);
    drop(job);
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
}

/// Claims and runs the posted job's tasks until none is left to claim.
fn work_on_job(mut job: MutexGuard<'static, Option<Job>>) -> MutexGuard<'static, Option<Job>> {
    while let Some(posted) = job.as_mut().filter(|j| j.claimed < j.tasks) {
        let (task, index) = (posted.task, posted.claimed);
        posted.claimed += 1;
        drop(job);
        // SAFETY: the job is unfinished until this call returns, so `run_tasks` keeps `task` alive.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*task)(index) }));
        job = lock_job();
        let posted = job
            .as_mut()
            .expect("a job stays posted until its calls return");
        if let Err(payload) = result {
            posted.panic.get_or_insert(payload);
        }
        posted.unfinished -= 1;
        if posted.unfinished == 0 {
            FINISHED.fetch_add(1, Ordering::Release);
            POOL.finished.notify_all();
        }
    }
    job
}

/// Makes the calling thread one of the pool's, for ever: it waits for jobs and runs their tasks.
/// In wasm with atomics, each worker the page starts for the CPU backend calls this once the
/// module is instantiated on the shared memory (natively the pool starts its own threads).
pub fn serve_as_worker() -> ! {
    SERVING.fetch_add(1, Ordering::Relaxed);
    let mut job = lock_job();
    loop {
        job = work_on_job(job);
        // Jobs are posted under the lock, so none is missed between this load and the wait.
        let seen = POSTED.load(Ordering::Relaxed);
        drop(job);
        spin_until_moved(&POSTED, seen);
        job = lock_job();
        job = POOL
            .posted
            .wait_while(job, |_| POSTED.load(Ordering::Relaxed) == seen)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Natively, spawns pool threads until there are at least `wanted`.
#[cfg(not(target_arch = "wasm32"))]
fn start_threads(wanted: usize) {
    static STARTED: Mutex<usize> = Mutex::new(0);
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    while *started < wanted {
        std::thread::Builder::new()
            .name(format!("linecheck-cpu-{}", *started))
            .spawn(|| serve_as_worker())
            .expect("spawning a CPU backend thread");
        *started += 1;
    }
}

/// In wasm the page starts the workers (see the module's documentation).
#[cfg(target_arch = "wasm32")]
fn start_threads(_wanted: usize) {}

/// Splits `out` into `chunk_len`-long chunks (the last may be shorter) and calls
/// `fill(index, chunk)` for each, on the pool's threads.
pub(crate) fn for_each_chunk_mut(
    out: &mut [f32],
    chunk_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) {
    let (base, len) = (Disjoint(out.as_mut_ptr()), out.len());
    run_tasks(len.div_ceil(chunk_len), &|index| {
        let start = index * chunk_len;
        let chunk_len = chunk_len.min(len - start);
        // SAFETY: the chunks are disjoint and within `out`, which `run_tasks` outlives.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.at(start), chunk_len) };
        fill(index, chunk);
    });
}

/// A buffer that several threads write at once, each in its own part.
#[derive(Clone, Copy)]
pub(crate) struct Disjoint(pub(crate) *mut f32);

impl Disjoint {
    /// The address `offset` values in. A method, so that closures capture the whole (`Sync`)
    /// wrapper rather than its raw pointer field.
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: whoever shares one splits the buffer into disjoint parts, one per thread, and keeps it
// alive until every thread is done (`run_tasks` returns only then).
unsafe impl Send for Disjoint {}
unsafe impl Sync for Disjoint {}

#[cfg(test)]
mod tests {
    use super::{for_each_chunk_mut, run_tasks, set_worker_threads};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_and_chunks_cover_the_buffer() {
        set_worker_threads(4);
        let calls: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
        run_tasks(calls.len(), &|i| {
            calls[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(calls.iter().all(|c| c.load(Ordering::Relaxed) == 1));

        let mut out = vec![f32::NAN; 103];
        for_each_chunk_mut(&mut out, 10, |index, chunk| {
            for (j, value) in chunk.iter_mut().enumerate() {
                *value = (index * 10 + j) as f32;
            }
        });
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_goes_on() {
        set_worker_threads(4);
        let caught = std::panic::catch_unwind(|| {
            run_tasks(8, &|i| assert!(i != 5, "task 5 fails"));
        });
        assert!(caught.is_err());
        let done = AtomicUsize::new(0);
        run_tasks(8, &|_| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), 8);
    }
}
