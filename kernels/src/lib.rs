//! The WGSL compute kernels of the vision engine, embedded as source so the same text is compiled
//! by the native driver and by the browser's WebGPU implementation.
//!
//! Every file in `wgsl/` but `common.wgsl` must be listed in [`ALL`]; the tests validate each with
//! naga and check that the entry points the engine calls exist.

/// One WGSL source file and the compute entry points the engine calls in it.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// File name under `kernels/wgsl/`.
    pub file: &'static str,
    /// `common.wgsl` followed by the file: WGSL has no includes.
    pub source: &'static str,
    pub entry_points: &'static [&'static str],
}

/// Workgroup size of every one-dimensional kernel (`WORKGROUP_SIZE` in `common.wgsl`).
pub const ELEMENTWISE_WORKGROUP_SIZE: u32 = 256;

/// The helpers every kernel starts with.
pub const COMMON_FILE: &str = "common.wgsl";

macro_rules! kernel {
    ($name:ident, $file:literal, [$($entry:literal),+]) => {
        pub const $name: Kernel = Kernel {
            file: $file,
            source: concat!(include_str!("../wgsl/common.wgsl"), include_str!(concat!("../wgsl/", $file))),
            entry_points: &[$($entry),+],
        };
    };
}

kernel!(ACTIVATION, "activation.wgsl", ["sigmoid", "silu"]);
kernel!(BINARY, "binary.wgsl", ["add", "sub", "mul", "div"]);
kernel!(CONV2D, "conv2d.wgsl", ["main"]);
kernel!(GATHER, "gather.wgsl", ["main"]);
kernel!(LETTERBOX, "letterbox.wgsl", ["main"]);
kernel!(MATMUL, "matmul.wgsl", ["main"]);
kernel!(MAX_POOL, "max_pool.wgsl", ["main"]);
kernel!(RESIZE_NEAREST, "resize_nearest.wgsl", ["main"]);
kernel!(SOFTMAX, "softmax.wgsl", ["main"]);
kernel!(STRIDED_COPY, "strided_copy.wgsl", ["main"]);

pub const ALL: &[Kernel] = &[
    ACTIVATION,
    BINARY,
    CONV2D,
    GATHER,
    LETTERBOX,
    MATMUL,
    MAX_POOL,
    RESIZE_NEAREST,
    SOFTMAX,
    STRIDED_COPY,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn validate(kernel: &Kernel) -> naga::Module {
        let module = naga::front::wgsl::parse_str(kernel.source)
            .unwrap_or_else(|e| panic!("{}: {}", kernel.file, e.emit_to_string(kernel.source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", kernel.file, e.emit_to_string(kernel.source)));
        module
    }

    #[test]
    fn every_kernel_is_valid_wgsl_with_its_entry_points() {
        for kernel in ALL {
            let module = validate(kernel);
            let found: BTreeSet<&str> = module
                .entry_points
                .iter()
                .filter(|e| e.stage == naga::ShaderStage::Compute)
                .map(|e| e.name.as_str())
                .collect();
            for entry in kernel.entry_points {
                assert!(
                    found.contains(entry),
                    "{}: no compute entry point {entry}",
                    kernel.file
                );
            }
        }
    }

    #[test]
    fn every_wgsl_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".wgsl") && name != COMMON_FILE)
            .collect();
        let listed: BTreeSet<String> = ALL.iter().map(|k| k.file.to_string()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn invalid_wgsl_is_rejected_by_the_validation_the_tests_use() {
        let broken = Kernel {
            file: "broken.wgsl",
            source: "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
            entry_points: &["main"],
        };
        assert!(std::panic::catch_unwind(|| validate(&broken)).is_err());
    }
}
