//! The WGSL compute kernels of the vision engine, embedded as source so the same text is compiled
//! by the native driver and by the browser's WebGPU implementation.
//!
//! Every file in `wgsl/` but `common.wgsl` must be listed in [`ALL`]; the tests validate each with
//! naga, in every [`Precision`], and check that the entry points the engine calls exist.
//!
//! One source per kernel serves both precisions: tensors' elements have the type `Elem`, which
//! [`Precision::preamble`] defines as `f32` or `f16`. Kernels load elements into `f32`
//! (`f32(input[i])`), compute and accumulate in `f32`, and convert once when they store
//! (`out[i] = Elem(sum)`).

/// One WGSL source file and the compute entry points the engine calls in it.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// Unique among the kernels: the file name, or the file and variant for tiled variants.
    pub name: &'static str,
    /// File name under `kernels/wgsl/`.
    pub file: &'static str,
    /// `common.wgsl` followed by the file (WGSL has no includes), without the precision's
    /// preamble: compile [`Kernel::source`].
    pub body: &'static str,
    pub entry_points: &'static [&'static str],
    /// Whether every loop of the kernel counts a variable by a constant step toward its bound
    /// (checked by a test), so that it ends whatever its uniforms and buffers hold. The engine
    /// compiles such a kernel without the counter wgpu otherwise adds to every loop against
    /// endless ones: on an H200 that counter cost 15% of YOLOv8n's GPU time (BENCHMARKS.md).
    pub counted_loops: bool,
    /// Whether the kernel multiplies on the GPU's matrix units (wgpu's experimental cooperative
    /// matrices, 16x16x16 in f16 with f32 sums, in subgroups of 32): it compiles only on a device
    /// opened with them (`GpuContext::tensor_cores`).
    pub tensor_cores: bool,
}

/// The directives a kernel with `tensor_cores` starts with (before the precision's preamble; WGSL
/// takes a repeated `enable`).
const TENSOR_CORE_ENABLES: &str = "enable f16;\nenable wgpu_cooperative_matrix;\n";

impl Kernel {
    /// The WGSL to compile for tensors of `precision`.
    pub fn source(&self, precision: Precision) -> String {
        let enables = if self.tensor_cores {
            TENSOR_CORE_ENABLES
        } else {
            ""
        };
        format!("{enables}{}{}", precision.preamble(), self.body)
    }
}

/// The element type of tensors in GPU buffers. Arithmetic and sums are `f32` in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    F32,
    /// Half the bytes per element; needs the adapter's `shader-f16` feature.
    F16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F16];

    /// Starts every kernel: `enable` directives must precede all declarations in WGSL, and `Elem`
    /// is the element type of every tensor the kernels bind.
    pub const fn preamble(self) -> &'static str {
        match self {
            Precision::F32 => "alias Elem = f32;\n",
            Precision::F16 => "enable f16;\nalias Elem = f16;\n",
        }
    }

    /// Bytes per tensor element in GPU buffers.
    pub const fn element_bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// "f32" or "f16", as the command line tools take and print it.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("'{name}' is not a precision: f32 or f16"))
    }
}

/// Workgroup size of every one-dimensional kernel (`WORKGROUP_SIZE` in `common.wgsl`).
pub const ELEMENTWISE_WORKGROUP_SIZE: u32 = 256;

/// The helpers every kernel starts with.
pub const COMMON_FILE: &str = "common.wgsl";

/// What the implicit-GEMM convolutions share (Params, bindings, loads): part of their kernels,
/// not a kernel.
pub const CONV_LOADS_FILE: &str = "conv_loads.wgsl";

/// The residual a convolution's output may take (`residual_at`): part of the convolution kernels
/// and of the split-k sum, not a kernel.
pub const RESIDUAL_FILE: &str = "residual.wgsl";

macro_rules! kernel {
    ($name:ident, $file:literal, [$($entry:literal),+]) => {
        kernel!($name, $file, [$($entry),+], counted_loops: true);
    };
    ($name:ident, $file:literal, [$($entry:literal),+], counted_loops: $counted:literal) => {
        kernel!($name, $file, [$($entry),+], counted_loops: $counted, parts: []);
    };
    // `parts`: files of WGSL the kernel uses, put before it after `common.wgsl` (RESIDUAL_FILE).
    ($name:ident, $file:literal, [$($entry:literal),+], parts: [$($part:literal),*]) => {
        kernel!($name, $file, [$($entry),+], counted_loops: true, parts: [$($part),*]);
    };
    ($name:ident, $file:literal, [$($entry:literal),+], counted_loops: $counted:literal, parts: [$($part:literal),*]) => {
        pub const $name: Kernel = Kernel {
            name: $file,
            file: $file,
            body: concat!(
                include_str!("../wgsl/common.wgsl"),
                $(include_str!(concat!("../wgsl/", $part)),)*
                include_str!(concat!("../wgsl/", $file))
            ),
            entry_points: &[$($entry),+],
            counted_loops: $counted,
            tensor_cores: false,
        };
    };
}

/// A tiling of `conv_gemm.wgsl`: each workgroup computes `tile_m` output channels by `tile_n`
/// output pixels, taking `TILE_K` values of the reduction at a time, 4 x 4 values per invocation.
/// `kernel` sums all of the reduction and stores the outputs; `split_kernel` sums one of
/// `params.pads.w` slices of it into f32 partial sums, which `SPLIT_K_SUM` adds up and stores.
#[derive(Debug, Clone, Copy)]
pub struct ConvTiling {
    pub kernel: Kernel,
    pub split_kernel: Kernel,
    pub tile_m: u32,
    pub tile_n: u32,
    pub tile_k: u32,
}

/// How `conv_gemm.wgsl` writes its sums (`put`), after the tile sizes: the outputs, or f32
/// partial sums of one slice of the reduction (a buffer that stays f32 in every precision).
macro_rules! conv_gemm_output {
    (whole) => {
        concat!(
            "const SPLIT_K: bool = false;
@group(0) @binding(3) var<storage, read> residual: array<Elem>;
@group(0) @binding(5) var<storage, read_write> out: array<Elem>;
fn put(i: u32, v: f32) { out[i] = Elem(v + residual_at(i - params.out_offset)); }
",
            include_str!("../wgsl/residual.wgsl")
        )
    };
    (split) => {
        "const SPLIT_K: bool = true;
@group(0) @binding(5) var<storage, read_write> partials_f32: array<f32>;
fn put(i: u32, v: f32) { partials_f32[i] = v; }
"
    };
}

macro_rules! conv_gemm_kernel {
    ($file:literal, $m:literal, $n:literal, $k:literal, $output:ident, $suffix:literal, $tensor_cores:literal) => {
        Kernel {
            name: concat!($file, " ", $m, "x", $n, "x", $k, $suffix),
            file: $file,
            body: concat!(
                include_str!("../wgsl/common.wgsl"),
                "const TILE_M: u32 = ",
                $m,
                "u;\nconst TILE_N: u32 = ",
                $n,
                "u;\nconst TILE_K: u32 = ",
                $k,
                "u;\n",
                conv_gemm_output!($output),
                include_str!("../wgsl/conv_loads.wgsl"),
                include_str!(concat!("../wgsl/", $file))
            ),
            entry_points: &["main"],
            counted_loops: true,
            tensor_cores: $tensor_cores,
        }
    };
}

macro_rules! conv_gemm {
    ($name:ident, $m:literal, $n:literal, $k:literal) => {
        conv_gemm!($name, "conv_gemm.wgsl", $m, $n, $k, false);
    };
    ($name:ident, $file:literal, $m:literal, $n:literal, $k:literal, $tensor_cores:literal) => {
        pub const $name: ConvTiling = ConvTiling {
            kernel: conv_gemm_kernel!($file, $m, $n, $k, whole, "", $tensor_cores),
            split_kernel: conv_gemm_kernel!($file, $m, $n, $k, split, " split-k", $tensor_cores),
            tile_m: $m,
            tile_n: $n,
            tile_k: $k,
        };
    };
}

// Workgroup memory (TILE_K x (TILE_M + 4 + TILE_N) floats) stays within WebGPU's 16 KiB, and
// (TILE_M / 4) x (TILE_N / 4) invocations within its 256; each invocation loads four values of
// each tile (tests below check both). Measured on an H100 (BENCHMARKS.md), 64x64 won on every
// layer large enough to fill it; the smaller tile is for layers too small to occupy a GPU.
conv_gemm!(CONV_GEMM_64X64, 64, 64, 16);
conv_gemm!(CONV_GEMM_32X32, 32, 32, 8);

/// Every tiling of the implicit-GEMM convolution, the engine picks one per layer.
pub const CONV_TILINGS: [ConvTiling; 2] = [CONV_GEMM_64X64, CONV_GEMM_32X32];

// The convolution with its products on matrix units (conv_coop.wgsl): what convolutions run on
// where the device has them (`ConvKernels::TensorCores`). On an H100 the 64x64 tiling beat the
// f32 kernels on their 32x32 layers too (BENCHMARKS.md). The 32x128 tiling is for large layers
// of at most 32 output channels, which leave half or three quarters of a 64-channel tile idle:
// the same 8 subgroups, each loaded patch value serving 32 channels of 128 pixels.
conv_gemm!(CONV_COOP_64X64, "conv_coop.wgsl", 64, 64, 16, true);
conv_gemm!(CONV_COOP_32X128, "conv_coop.wgsl", 32, 128, 16, true);

/// The tensor-core tilings.
pub const COOP_TILINGS: [ConvTiling; 2] = [CONV_COOP_64X64, CONV_COOP_32X128];

kernel!(ACTIVATION, "activation.wgsl", ["sigmoid", "silu"]);
kernel!(
    BINARY,
    "binary.wgsl",
    [
        "add",
        "add_from_out",
        "sub",
        "mul",
        "div",
        "int_div",
        "int_mod",
        "int_fmod"
    ]
);
kernel!(CONV2D, "conv2d.wgsl", ["main"], parts: ["residual.wgsl"]);
kernel!(DECODE_BOXES, "decode_boxes.wgsl", ["main"]);
kernel!(GATHER, "gather.wgsl", ["main"]);
kernel!(GATHER_ELEMENTS, "gather_elements.wgsl", ["main"]);
kernel!(LETTERBOX, "letterbox.wgsl", ["main"]);
kernel!(MATMUL, "matmul.wgsl", ["main"]);
kernel!(MAX_POOL, "max_pool.wgsl", ["main", "main_from_out"]);
// The sort doubles its counters up to the number of candidates, which a buffer holds.
kernel!(NMS, "nms.wgsl", ["main"], counted_loops: false);
kernel!(REDUCE_MAX, "reduce_max.wgsl", ["main"]);
kernel!(RESIZE_NEAREST, "resize_nearest.wgsl", ["main"]);
kernel!(SOFTMAX, "softmax.wgsl", ["main"]);
kernel!(SPLIT_K_SUM, "split_k_sum.wgsl", ["main"], parts: ["residual.wgsl"]);
kernel!(STRIDED_COPY, "strided_copy.wgsl", ["main"]);
kernel!(TOP_K, "top_k.wgsl", ["main"]);

pub const ALL: &[Kernel] = &[
    ACTIVATION,
    BINARY,
    CONV2D,
    CONV_GEMM_64X64.kernel,
    CONV_GEMM_64X64.split_kernel,
    CONV_GEMM_32X32.kernel,
    CONV_GEMM_32X32.split_kernel,
    CONV_COOP_64X64.kernel,
    CONV_COOP_64X64.split_kernel,
    CONV_COOP_32X128.kernel,
    CONV_COOP_32X128.split_kernel,
    DECODE_BOXES,
    GATHER,
    GATHER_ELEMENTS,
    LETTERBOX,
    MATMUL,
    MAX_POOL,
    NMS,
    REDUCE_MAX,
    RESIZE_NEAREST,
    SOFTMAX,
    SPLIT_K_SUM,
    STRIDED_COPY,
    TOP_K,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn validate(kernel: &Kernel, precision: Precision) -> naga::Module {
        let source = kernel.source(precision);
        let name = format!("{} ({})", kernel.name, precision.name());
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        let mut capabilities = match precision {
            Precision::F32 => naga::valid::Capabilities::empty(),
            Precision::F16 => naga::valid::Capabilities::SHADER_FLOAT16,
        };
        if kernel.tensor_cores {
            capabilities |= naga::valid::Capabilities::SHADER_FLOAT16
                | naga::valid::Capabilities::COOPERATIVE_MATRIX
                | naga::valid::Capabilities::SUBGROUP;
        }
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        module
    }

    #[test]
    fn every_kernel_is_valid_wgsl_with_its_entry_points_in_every_precision() {
        for kernel in ALL {
            for precision in Precision::ALL {
                let module = validate(kernel, precision);
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
    }

    /// A kernel that binds a tensor as `array<f32>` instead of `array<Elem>` would read f16
    /// buffers as garbage: in the f16 build no storage buffer may hold f32 scalars, but those
    /// whose names end in `_f32` (f32 on purpose, such as split-k partial sums).
    #[test]
    fn every_tensor_binding_takes_the_precisions_element_type() {
        for kernel in ALL {
            let module = validate(kernel, Precision::F16);
            for (_, global) in module.global_variables.iter() {
                let f32_on_purpose = global.name.as_ref().is_some_and(|n| n.ends_with("_f32"));
                if !matches!(global.space, naga::AddressSpace::Storage { .. }) || f32_on_purpose {
                    continue;
                }
                if let naga::TypeInner::Array { base, .. } = module.types[global.ty].inner {
                    assert_ne!(
                        module.types[base].inner,
                        naga::TypeInner::Scalar(naga::Scalar::F32),
                        "{}: storage buffer {:?} is array<f32>, not array<Elem>",
                        kernel.name,
                        global.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_kernel_stays_within_the_webgpu_baseline_workgroup_memory() {
        for kernel in ALL {
            for precision in Precision::ALL {
                let module = validate(kernel, precision);
                let bytes: u32 = module
                    .global_variables
                    .iter()
                    .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
                    .map(|(_, v)| module.types[v.ty].inner.size(module.to_ctx()))
                    .sum();
                assert!(
                    bytes <= 16 * 1024,
                    "{} ({}): {bytes} bytes of workgroup memory",
                    kernel.name,
                    precision.name()
                );
            }
        }
    }

    #[test]
    fn every_conv_tiling_fits_its_invocations() {
        for t in CONV_TILINGS {
            let invocations = (t.tile_m / 4) * (t.tile_n / 4);
            assert!(invocations <= 256, "{}", t.kernel.name);
            // Four weights and four patch values per invocation, in whole vec4 rows.
            assert_eq!(invocations * 4, t.tile_m * t.tile_k, "{}", t.kernel.name);
            assert_eq!(invocations * 4, t.tile_k * t.tile_n, "{}", t.kernel.name);
            assert_eq!((invocations / t.tile_k) % 4, 0, "{}", t.kernel.name);
        }
        for t in COOP_TILINGS {
            let invocations = (t.tile_m / 4) * (t.tile_n / 4);
            // 8 subgroups of 32, each two 16x16 blocks: 16 channels by 32 pixels.
            assert_eq!(invocations, 256, "{}", t.kernel.name);
            assert_eq!((t.tile_m / 16) * (t.tile_n / 32), 8, "{}", t.kernel.name);
            assert_eq!(t.tile_k, 16, "{}", t.kernel.name);
            // Whole rows of the patch tile per invocation: four or eight patch values (the
            // loads conv_loads.wgsl names).
            let patch_loads = t.tile_k * t.tile_n / invocations;
            assert!([4, 8].contains(&patch_loads), "{}", t.kernel.name);
            assert_eq!(invocations % t.tile_n, 0, "{}", t.kernel.name);
        }
    }

    /// Whether `value`, stored to `pointer`, is the same local variable plus or minus a constant.
    fn steps_by_a_constant(
        function: &naga::Function,
        pointer: naga::Handle<naga::Expression>,
        value: naga::Handle<naga::Expression>,
    ) -> bool {
        use naga::Expression as E;
        let local = |e: naga::Handle<E>| match function.expressions[e] {
            E::LocalVariable(v) => Some(v),
            _ => None,
        };
        let E::Binary {
            op: naga::BinaryOperator::Add | naga::BinaryOperator::Subtract,
            left,
            right,
        } = function.expressions[value]
        else {
            return false;
        };
        let loads_the_variable = matches!(
            function.expressions[left],
            E::Load { pointer: p } if local(p).is_some() && local(p) == local(pointer)
        );
        loads_the_variable && matches!(function.expressions[right], E::Literal(_) | E::Constant(_))
    }

    /// Whether every loop in `block`, nested ones included, steps a variable by a constant in
    /// its continuing block (as `for (...; ...; k += STEP)` and `k++` do).
    fn loops_are_counted(function: &naga::Function, block: &naga::Block) -> bool {
        use naga::Statement as S;
        block.iter().all(|statement| match statement {
            S::Loop {
                body, continuing, ..
            } => {
                continuing.iter().any(|s| {
                    matches!(s, S::Store { pointer, value }
                        if steps_by_a_constant(function, *pointer, *value))
                }) && loops_are_counted(function, body)
            }
            S::Block(inner) => loops_are_counted(function, inner),
            S::If { accept, reject, .. } => {
                loops_are_counted(function, accept) && loops_are_counted(function, reject)
            }
            S::Switch { cases, .. } => cases.iter().all(|c| loops_are_counted(function, &c.body)),
            _ => true,
        })
    }

    fn every_loop_is_counted(kernel: &Kernel) -> bool {
        let module = validate(kernel, Precision::F32);
        let functions = module.functions.iter().map(|(_, f)| f);
        let entry_points = module.entry_points.iter().map(|e| &e.function);
        functions
            .chain(entry_points)
            .all(|f| loops_are_counted(f, &f.body))
    }

    /// The engine compiles kernels marked `counted_loops` without wgpu's guard against endless
    /// loops: each of their loops must step a counter by a constant. A loop that doubles its
    /// counter, or a `while`, must not be marked (NMS has both, and is not).
    #[test]
    fn kernels_marked_with_counted_loops_only_have_loops_counted_by_constant_steps() {
        for kernel in ALL {
            assert_eq!(
                every_loop_is_counted(kernel),
                kernel.counted_loops,
                "{}: counted_loops is {}",
                kernel.name,
                kernel.counted_loops
            );
        }
    }

    #[test]
    fn kernel_names_are_unique() {
        let names: BTreeSet<&str> = ALL.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn every_wgsl_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| {
                name.ends_with(".wgsl")
                    && ![COMMON_FILE, CONV_LOADS_FILE, RESIDUAL_FILE].contains(&name.as_str())
            })
            .collect();
        let listed: BTreeSet<String> = ALL.iter().map(|k| k.file.to_string()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn invalid_wgsl_is_rejected_by_the_validation_the_tests_use() {
        let broken = Kernel {
            name: "broken.wgsl",
            file: "broken.wgsl",
            body: "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
            entry_points: &["main"],
            counted_loops: true,
            tensor_cores: false,
        };
        for precision in Precision::ALL {
            assert!(std::panic::catch_unwind(|| validate(&broken, precision)).is_err());
        }
    }
}
