//! The CPU reference backend's operators: plain Rust, NCHW f32, multithreaded natively and
//! single-threaded in wasm. They define the results every other backend must reproduce, and they
//! are the fallback where a browser has no WebGPU adapter.
//!
//! Each op checks its arguments and returns a [`ShapeError`](crate::ShapeError) naming itself,
//! never panicking on shapes that came from a model file.

mod activation;
mod conv;
mod elementwise;
mod gemm;
mod layout;
mod matmul;
mod pool;
mod resize;
mod select;
mod softmax;

pub use activation::activate_in_place;
pub use conv::{Conv2d, conv2d, conv2d_then};
pub use elementwise::{BinaryOp, binary, broadcast_shape};
pub use gemm::gemm;
pub use layout::{concat, gather, reshape_target, slice, split, transpose};
pub use matmul::matmul;
pub use pool::{MaxPool2d, max_pool2d};
pub use resize::{CoordinateTransform, NearestRounding, resize_nearest};
pub use select::{MAX_EXACT_INDEX, expand, gather_elements, reduce_max, top_k};
pub use softmax::softmax;

// The shape plans, shared with the GPU backend so both validate and index identically.
pub(crate) use conv::{PreparedConv, conv2d_output_shape};
pub(crate) use elementwise::{broadcast_strides, check_divisor};
pub(crate) use layout::{concat_shape, gather_plan, slice_plan, split_plan, transpose_plan};
pub(crate) use matmul::{MatmulPlan, matmul_plan};
pub(crate) use pool::max_pool2d_output_shape;
pub(crate) use resize::resize_maps;
pub(crate) use select::{ReducePlan, TopKPlan, gather_elements_plan, reduce_plan, top_k_plan};

/// Splits `out` into chunks of whole rows and fills them on all cores (one core in wasm).
pub(crate) fn for_each_row_chunk(
    out: &mut [f32],
    row_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / row_len;
    let threads = worker_count().min(rows).max(1);
    if threads == 1 {
        fill(0, out);
        return;
    }
    let rows_per_chunk = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(rows_per_chunk * row_len).enumerate() {
            let fill = &fill;
            scope.spawn(move || fill(i * rows_per_chunk, chunk));
        }
    });
}

/// Threads the CPU ops use natively; 0 means one per core.
static WORKER_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Caps the threads the CPU backend's ops use (0: one per core, the default), so it can be
/// compared with another runtime on the same thread count. No effect in wasm (one thread).
pub fn set_worker_threads(threads: usize) {
    WORKER_THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(not(target_arch = "wasm32"))]
fn worker_count() -> usize {
    match WORKER_THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(target_arch = "wasm32")]
fn worker_count() -> usize {
    1
}
