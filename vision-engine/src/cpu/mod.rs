//! The CPU reference backend's operators: plain Rust, NCHW f32, multithreaded natively and in
//! wasm built with atomics (see [`threads`]). They define the results every other backend must reproduce, and they
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
pub(crate) mod threads;

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
pub use threads::{serve_as_worker, serving_threads, set_worker_threads};

// The shape plans, shared with the GPU backend so both validate and index identically.
pub(crate) use conv::{PreparedConv, check_residual, conv2d_output_shape};
pub(crate) use elementwise::{broadcast_strides, check_divisor};
pub(crate) use layout::{concat_shape, gather_plan, slice_plan, split_plan, transpose_plan};
pub(crate) use matmul::{MatmulPlan, matmul_plan};
pub(crate) use pool::max_pool2d_output_shape;
pub(crate) use resize::resize_maps;
pub(crate) use select::{ReducePlan, TopKPlan, gather_elements_plan, reduce_plan, top_k_plan};

/// Splits `out` into chunks of whole rows and fills them on the pool's threads.
pub(crate) fn for_each_row_chunk(
    out: &mut [f32],
    row_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / row_len;
    let rows_per_chunk = rows.div_ceil(threads::worker_count().min(rows).max(1));
    threads::for_each_chunk_mut(out, rows_per_chunk * row_len, |index, chunk| {
        fill(index * rows_per_chunk, chunk);
    });
}
