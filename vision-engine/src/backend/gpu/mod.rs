//! The wgpu backend: every op as WGSL kernel launches (`launch.rs`), run op by op on host
//! tensors ([`Backend`]) or as a whole network resident on the GPU (`network.rs`).
//!
//! Tensors on the GPU hold the device's [`Precision`]: f32, or f16 where the adapter has
//! `shader-f16`. Host tensors stay f32; they are narrowed as they are uploaded (weights once, at
//! preparation) and widened as they are read back. Kernels compute in f32 either way.

mod detections;
mod launch;
mod network;

pub use launch::ConvKernels;
pub use network::{GpuNetwork, LaunchTime};

use super::{Activation, Backend};
use crate::f16::{f16_to_f32, f32_to_f16};
use crate::{
    EngineError, GpuContext, Precision, Tensor,
    cpu::{self, BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
    graph::Op,
    letterbox::Letterbox,
    tensor::shape_error,
};
use kernels::Kernel;
use launch::{Binding, Launch};
use wgpu::util::DeviceExt;

/// Kernels with how many read-only storage inputs each entry point binds before its output.
const KERNELS: [(Kernel, usize); 24] = [
    (kernels::ACTIVATION, 1),
    (kernels::BINARY, 2),
    (kernels::CONV2D, 4),
    (kernels::CONV_GEMM_64X64.kernel, 5),
    (kernels::CONV_GEMM_64X64.split_kernel, 5),
    (kernels::CONV_GEMM_32X32.kernel, 5),
    (kernels::CONV_GEMM_32X32.split_kernel, 5),
    (kernels::CONV_COOP_64X64.kernel, 5),
    (kernels::CONV_COOP_64X64.split_kernel, 5),
    (kernels::CONV_COOP_32X128.kernel, 5),
    (kernels::CONV_COOP_32X128.split_kernel, 5),
    (kernels::DECODE_BOXES, 1),
    (kernels::GATHER, 2),
    (kernels::GATHER_ELEMENTS, 2),
    (kernels::LETTERBOX, 1),
    (kernels::MATMUL, 2),
    (kernels::MAX_POOL, 1),
    (kernels::NMS, 1),
    (kernels::REDUCE_MAX, 1),
    (kernels::RESIZE_NEAREST, 2),
    (kernels::SOFTMAX, 1),
    (kernels::SPLIT_K_SUM, 3),
    (kernels::STRIDED_COPY, 1),
    (kernels::TOP_K, 1),
];

/// The convolution kernels a backend starts with on an adapter of `device_type`, opened with
/// matrix units or not (`tensor_cores`).
///
/// Matrix units (`ConvKernels::TensorCores`) took YOLOv8n at 640 from 1.70 to 1.40 ms of GPU
/// time on an H100 (BENCHMARKS.md); their f16 factors are the precision PyTorch's default TF32
/// convolutions run at.
///
/// Split-k (`ConvKernels::Tiled`) spreads a layer with few workgroups over more of them, sized for
/// an H100's 132 multiprocessors: on a GPU the slices run side by side. A software adapter
/// (`DeviceType::Cpu`: Chromium's SwiftShader WebGPU, lavapipe) runs workgroups on a few CPU
/// threads, which the whole layers already keep busy, so the slices gain no parallelism and
/// cost time: there the same tilings run whole (`ConvKernels::TiledWhole`). Measured in headless
/// Chromium's SwiftShader on a 2-core AMD EPYC (BENCHMARKS.md, `webbench --gpu-conv
/// tiled,whole`, one session): LineCheck's 320
/// model 9.92 s split, 5.51 s whole; the split convolutions themselves took 2.6x their whole
/// time (most likely SwiftShader's fixed cost per workgroup, paid by many more, shorter
/// workgroups), the sum launches only 0.26 s.
/// Other adapters (discrete, integrated, virtual, unknown) keep split-k.
pub fn conv_kernels_for(device_type: wgpu::DeviceType, tensor_cores: bool) -> ConvKernels {
    match device_type {
        wgpu::DeviceType::Cpu => ConvKernels::TiledWhole,
        _ if tensor_cores => ConvKernels::TensorCores,
        _ => ConvKernels::Tiled,
    }
}

/// The highest rank the index-walking kernels take (their uniforms hold 8 sizes).
const MAX_RANK: usize = 8;

/// Runs the WGSL kernels on a wgpu device. Every pipeline is created once, at construction.
///
/// Every kernel binds, in order: its read-only inputs, its output (read-write), its uniform.
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: Vec<(&'static str, &'static str, wgpu::ComputePipeline)>,
    conv_kernels: std::cell::Cell<ConvKernels>,
}

/// A launch with its buffers bound, ready to record.
struct PreparedLaunch {
    pipeline: usize,
    bind_group: wgpu::BindGroup,
    grid: [u32; 3],
}

impl GpuBackend {
    /// The backend in f32 on the best adapter: results as close to the CPU reference (and ONNX
    /// Runtime) as the GPU's arithmetic allows.
    pub async fn new() -> Result<Self, EngineError> {
        Self::with_precision(Precision::F32).await
    }

    /// The backend with tensors in `precision`; f16 fails on an adapter without `shader-f16`.
    /// Nothing picks f16 unasked: on the one GPU measured (an H100) it ran slower than f32
    /// (BENCHMARKS.md).
    pub async fn with_precision(precision: Precision) -> Result<Self, EngineError> {
        let ctx = GpuContext::with_precision(precision).await?;
        let device = &ctx.device;
        let mut pipelines = Vec::new();
        for (kernel, inputs) in KERNELS {
            if kernel.tensor_cores && !ctx.tensor_cores() {
                continue;
            }
            let checks = wgpu::ShaderRuntimeChecks {
                force_loop_bounding: !kernel.counted_loops,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: the one check dropped is the guard against endless loops, and only for a
            // kernel whose loops all step a counter by a constant toward a bound (a test of the
            // kernels crate checks each); the bounds are sizes of bound buffers, far below where
            // a step could wrap past them. Bounds checks stay. (In a browser this is
            // `create_shader_module`: the browser applies its own checks.)
            let module = unsafe {
                device.create_shader_module_trusted(
                    wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.name),
                        source: wgpu::ShaderSource::Wgsl(kernel.source(ctx.precision()).into()),
                    },
                    checks,
                )
            };
            let layout = bind_group_layout(device, inputs);
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            for entry in kernel.entry_points {
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                pipelines.push((kernel.name, *entry, pipeline));
            }
        }
        let conv_kernels = conv_kernels_for(ctx.device_type(), ctx.tensor_cores()).into();
        Ok(Self {
            ctx,
            pipelines,
            conv_kernels,
        })
    }

    /// Which kernels later ops and [`GpuBackend::prepare`] run convolutions on (default: the
    /// adapter's, [`conv_kernels_for`]).
    pub fn set_conv_kernels(&self, kernels: ConvKernels) {
        self.conv_kernels.set(kernels);
    }

    /// The kernels this adapter would run convolutions on without matrix units: f32 products
    /// throughout, as the CPU reference computes them (for checks within f32's rounding).
    pub fn f32_conv_kernels(&self) -> ConvKernels {
        conv_kernels_for(self.ctx.device_type(), false)
    }

    /// The kernels convolutions run on now.
    pub fn conv_kernels(&self) -> ConvKernels {
        self.conv_kernels.get()
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The element type of the tensors this backend keeps on the GPU.
    pub fn precision(&self) -> Precision {
        self.ctx.precision()
    }

    /// Whether `op` can run in this backend's precision. Run-time indices (TopK's, and what
    /// GatherElements and integer Div/Mod make of them) are tensor values, and f16 holds integers
    /// exactly only up to 2,048: those ops need f32.
    fn check_precision(&self, op: &Op) -> Result<(), EngineError> {
        let on_indices = match op {
            Op::TopK { .. } => Some("TopK"),
            Op::GatherElements(_) => Some("GatherElements"),
            Op::Binary(binary) if binary.is_integer() => Some(binary.name()),
            _ => None,
        };
        if let (Some(name), Precision::F16) = (on_indices, self.precision()) {
            return Err(shape_error(
                name,
                format!(
                    "run-time indices need f32 tensors ({} holds integers exactly only up to 2,048); run this model in f32",
                    self.precision().name()
                ),
            )
            .into());
        }
        Ok(())
    }

    /// GPU bytes of a tensor of `len` elements: whole 4-byte words, at least one (WebGPU copies
    /// and maps whole words and binds no empty buffers).
    fn tensor_bytes(&self, len: usize) -> u64 {
        ((len * self.precision().element_bytes()) as u64)
            .next_multiple_of(4)
            .max(4)
    }

    /// `values` as this device stores them, padded to [`GpuBackend::tensor_bytes`].
    fn encode(&self, values: &[f32]) -> Vec<u8> {
        let mut bytes: Vec<u8> = match self.precision() {
            Precision::F32 => bytemuck::cast_slice(values).to_vec(),
            Precision::F16 => {
                let halves: Vec<u16> = values.iter().map(|&v| f32_to_f16(v)).collect();
                bytemuck::cast_slice(&halves).to_vec()
            }
        };
        bytes.resize(self.tensor_bytes(values.len()) as usize, 0);
        bytes
    }

    /// The first `len` values of `bytes` read back from this device, as f32.
    fn decode(&self, bytes: &[u8], len: usize) -> Vec<f32> {
        match self.precision() {
            Precision::F32 => bytemuck::pod_collect_to_vec(&bytes[..len * 4]),
            Precision::F16 => bytemuck::pod_collect_to_vec::<u8, u16>(&bytes[..len * 2])
                .into_iter()
                .map(f16_to_f32)
                .collect(),
        }
    }

    fn pipeline_index(&self, kernel: &Kernel, entry: &str) -> usize {
        self.pipelines
            .iter()
            .position(|(name, e, _)| *name == kernel.name && *e == entry)
            .expect("a pipeline is created for every entry point in KERNELS")
    }

    /// A storage buffer holding `bytes` (at least 4: WebGPU binds no empty buffers).
    fn storage(&self, bytes: &[u8]) -> wgpu::Buffer {
        let contents = if bytes.is_empty() {
            &[0u8; 4][..]
        } else {
            bytes
        };
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }

    fn upload(&self, t: &Tensor) -> wgpu::Buffer {
        self.storage(&self.encode(t.data()))
    }

    /// An uninitialised storage buffer for `bytes` bytes that can be written and read back.
    fn scratch(&self, bytes: u64) -> wgpu::Buffer {
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size: bytes.next_multiple_of(4).max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Binds a launch: `buffer` resolves the op's inputs, constants and outputs; the launch's own
    /// small data and uniform get buffers here, which its bind group keeps alive.
    fn prepare_launch<'a>(
        &self,
        launch: &Launch,
        buffer: impl Fn(&Binding) -> &'a wgpu::Buffer,
    ) -> PreparedLaunch {
        let device = &self.ctx.device;
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&launch.params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        // Aligned with the inputs: the launch's own data, where it has some.
        let owned: Vec<Option<wgpu::Buffer>> = launch
            .inputs
            .iter()
            .map(|b| match b {
                Binding::Aux(words) => Some(self.storage(bytemuck::cast_slice(words))),
                Binding::Absent => Some(self.storage(&[])),
                _ => None,
            })
            .collect();
        let mut buffers: Vec<&wgpu::Buffer> = launch
            .inputs
            .iter()
            .zip(&owned)
            .map(|(b, own)| own.as_ref().unwrap_or_else(|| buffer(b)))
            .collect();
        buffers.push(buffer(&launch.output));
        buffers.push(&uniform);
        self.bind(&launch.kernel, launch.entry, &buffers, launch.grid)
    }

    /// Binds `buffers` (inputs, output, uniform: the kernel's binding order) to a pipeline.
    fn bind(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        buffers: &[&wgpu::Buffer],
        grid: launch::Grid,
    ) -> PreparedLaunch {
        let device = &self.ctx.device;
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let pipeline = self.pipeline_index(kernel, entry);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &self.pipelines[pipeline].2.get_bind_group_layout(0),
            entries: &entries,
        });
        PreparedLaunch {
            pipeline,
            bind_group,
            grid: grid.workgroups(device.limits().max_compute_workgroups_per_dimension),
        }
    }

    /// Records `launches` into one compute pass: WebGPU orders the dispatches of a pass.
    /// `timestamps` (a query set and a first index) brackets the pass with two GPU timestamps.
    fn record<'l>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        launches: impl IntoIterator<Item = &'l PreparedLaunch>,
        timestamps: Option<(&wgpu::QuerySet, u32)>,
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: timestamps.map(|(query_set, first)| {
                wgpu::ComputePassTimestampWrites {
                    query_set,
                    beginning_of_pass_write_index: Some(first),
                    end_of_pass_write_index: Some(first + 1),
                }
            }),
        });
        for launch in launches {
            pass.set_pipeline(&self.pipelines[launch.pipeline].2);
            pass.set_bind_group(0, &launch.bind_group, &[]);
            pass.dispatch_workgroups(launch.grid[0], launch.grid[1], launch.grid[2]);
        }
    }

    async fn download(
        &self,
        buffer: &wgpu::Buffer,
        shape: Vec<usize>,
    ) -> Result<Tensor, EngineError> {
        let len: usize = shape.iter().product();
        let bytes = self.ctx.read_back(buffer, self.tensor_bytes(len)).await?;
        Ok(Tensor::new(shape, self.decode(&bytes, len))?)
    }

    /// Runs one op on host tensors: upload, launch, read back.
    async fn run_op(
        &self,
        op: &Op,
        inputs: &[&Tensor],
        constants: &[&Tensor],
    ) -> Result<Vec<Tensor>, EngineError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        self.check_precision(op)?;
        let plan = launch::plan(op, &shapes, constants, self.conv_kernels.get(), u64::MAX)?;
        if plan.aliases_input {
            return Ok(vec![inputs[0].clone().reshaped(plan.outputs[0].clone())?]);
        }
        let input_buffers: Vec<wgpu::Buffer> = inputs.iter().map(|t| self.upload(t)).collect();
        let constant_buffers: Vec<wgpu::Buffer> =
            constants.iter().map(|t| self.upload(t)).collect();
        let outputs: Vec<wgpu::Buffer> = plan
            .outputs
            .iter()
            .map(|s| self.scratch(self.tensor_bytes(s.iter().product())))
            .collect();
        let scratch = self.scratch(plan.scratch_bytes);
        let prepared: Vec<PreparedLaunch> = plan
            .launches
            .iter()
            .filter(|l| !l.grid.is_empty())
            .map(|l| {
                self.prepare_launch(l, |b| match b {
                    Binding::Input(i) => &input_buffers[*i],
                    Binding::Constant(c) => &constant_buffers[*c],
                    Binding::Output(o) => &outputs[*o],
                    Binding::Scratch => &scratch,
                    Binding::Aux(_) | Binding::Absent => unreachable!("owned by the launch"),
                })
            })
            .collect();
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.record(&mut encoder, &prepared, None);
        self.ctx.queue.submit([encoder.finish()]);
        let mut results = Vec::with_capacity(outputs.len());
        for (buffer, shape) in outputs.iter().zip(plan.outputs) {
            results.push(self.download(buffer, shape).await?);
        }
        Ok(results)
    }

    /// Letterboxes RGBA pixels into a network input on the GPU (`letterbox::to_input`'s twin).
    pub async fn letterbox(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
    ) -> Result<Tensor, EngineError> {
        let pixels = letterbox.source_width as usize * letterbox.source_height as usize;
        if rgba.len() != pixels * 4 {
            return Err(shape_error(
                "Letterbox",
                format!("{} bytes is not {pixels} RGBA pixels", rgba.len()),
            )
            .into());
        }
        let shape = vec![
            1,
            3,
            letterbox.input_height as usize,
            letterbox.input_width as usize,
        ];
        let (source, out) = (
            self.storage(rgba),
            self.scratch(self.tensor_bytes(shape.iter().product())),
        );
        let prepared =
            self.prepare_launch(&launch::letterbox(letterbox), |binding| match binding {
                Binding::Input(0) => &source,
                Binding::Output(0) => &out,
                _ => unreachable!("the letterbox reads pixels and writes the input"),
            });
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.record(&mut encoder, &[prepared], None);
        self.ctx.queue.submit([encoder.finish()]);
        self.download(&out, shape).await
    }

    async fn run_one(&self, op: Op, inputs: &[&Tensor]) -> Result<Tensor, EngineError> {
        Ok(self.run_op(&op, inputs, &[]).await?.swap_remove(0))
    }
}

fn bind_group_layout(device: &wgpu::Device, inputs: usize) -> wgpu::BindGroupLayout {
    let buffer = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let read_only = wgpu::BufferBindingType::Storage { read_only: true };
    let entries: Vec<_> = (0..inputs as u32)
        .map(|b| buffer(b, read_only))
        .chain([
            buffer(
                inputs as u32,
                wgpu::BufferBindingType::Storage { read_only: false },
            ),
            buffer(inputs as u32 + 1, wgpu::BufferBindingType::Uniform),
        ])
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &entries,
    })
}

impl Backend for GpuBackend {
    /// The adapter and the precision, e.g. "NVIDIA H100 (Vulkan, discrete GPU), f16".
    fn name(&self) -> String {
        format!("{}, {}", self.ctx.adapter(), self.precision().name())
    }

    async fn activation(&self, kind: Activation, input: &Tensor) -> Result<Tensor, EngineError> {
        self.run_one(Op::Activation(kind), &[input]).await
    }

    async fn conv2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        attrs: &Conv2d,
        activation: Option<Activation>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor, EngineError> {
        let op = Op::Conv {
            weight: 0,
            bias: bias.map(|_| 1),
            attrs: attrs.clone(),
            activation,
            residual: residual.is_some(),
        };
        let constants: Vec<&Tensor> = std::iter::once(weight).chain(bias).collect();
        let inputs: Vec<&Tensor> = std::iter::once(input).chain(residual).collect();
        Ok(self.run_op(&op, &inputs, &constants).await?.swap_remove(0))
    }

    async fn max_pool2d(&self, input: &Tensor, attrs: &MaxPool2d) -> Result<Tensor, EngineError> {
        self.run_one(Op::MaxPool(attrs.clone()), &[input]).await
    }

    async fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        // A resident network's divisors are checked at load; here the host tensor is at hand.
        cpu::check_divisor(op, b)?;
        self.run_one(Op::Binary(op), &[a, b]).await
    }

    async fn transpose(&self, input: &Tensor, perm: &[usize]) -> Result<Tensor, EngineError> {
        self.run_one(Op::Transpose(perm.to_vec()), &[input]).await
    }

    async fn slice(
        &self,
        input: &Tensor,
        starts: &[i64],
        ends: &[i64],
        axes: Option<&[i64]>,
        steps: Option<&[i64]>,
    ) -> Result<Tensor, EngineError> {
        let op = Op::Slice {
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            axes: axes.map_or_else(|| (0..starts.len() as i64).collect(), <[i64]>::to_vec),
            steps: steps.map_or_else(|| vec![1; starts.len()], <[i64]>::to_vec),
        };
        self.run_one(op, &[input]).await
    }

    async fn concat(&self, inputs: &[&Tensor], axis: i64) -> Result<Tensor, EngineError> {
        self.run_one(Op::Concat(axis), inputs).await
    }

    async fn split(
        &self,
        input: &Tensor,
        axis: i64,
        sizes: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        self.run_op(
            &Op::Split {
                axis,
                sizes: sizes.to_vec(),
            },
            &[input],
            &[],
        )
        .await
    }

    async fn gather(
        &self,
        input: &Tensor,
        axis: i64,
        indices: &[i64],
        indices_shape: &[usize],
    ) -> Result<Tensor, EngineError> {
        let op = Op::Gather {
            axis,
            indices: indices.to_vec(),
            indices_shape: indices_shape.to_vec(),
        };
        self.run_one(op, &[input]).await
    }

    async fn resize_nearest(
        &self,
        input: &Tensor,
        output_shape: &[usize],
        scales: Option<&[f32]>,
        transform: CoordinateTransform,
        rounding: NearestRounding,
    ) -> Result<Tensor, EngineError> {
        let op = Op::Resize {
            output_shape: output_shape.to_vec(),
            scales: scales.map(<[f32]>::to_vec),
            transform,
            rounding,
        };
        self.run_one(op, &[input]).await
    }

    async fn softmax(&self, input: &Tensor, axis: i64) -> Result<Tensor, EngineError> {
        self.run_one(Op::Softmax(axis), &[input]).await
    }

    async fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        self.run_one(Op::MatMul, &[a, b]).await
    }

    async fn reduce_max(
        &self,
        input: &Tensor,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<Tensor, EngineError> {
        let op = Op::ReduceMax {
            axes: axes.to_vec(),
            keepdims,
        };
        self.run_one(op, &[input]).await
    }

    async fn top_k(
        &self,
        input: &Tensor,
        axis: i64,
        k: usize,
        largest: bool,
    ) -> Result<Vec<Tensor>, EngineError> {
        self.run_op(&Op::TopK { axis, k, largest }, &[input], &[])
            .await
    }

    async fn gather_elements(
        &self,
        data: &Tensor,
        indices: &Tensor,
        axis: i64,
    ) -> Result<Tensor, EngineError> {
        self.run_one(Op::GatherElements(axis), &[data, indices])
            .await
    }

    async fn expand(&self, input: &Tensor, shape: &[usize]) -> Result<Tensor, EngineError> {
        self.run_one(Op::Expand(shape.to_vec()), &[input]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_covers_every_invocation_within_the_dimension_limit() {
        let grid = |count| launch::Grid::Elements(count).workgroups(65_535);
        assert_eq!(grid(1), [1, 1, 1]);
        assert_eq!(grid(256), [1, 1, 1]);
        assert_eq!(grid(257), [2, 1, 1]);
        let count = 65_535 * 256 + 1;
        let [x, y, _] = grid(count);
        assert_eq!((x, y), (65_535, 2));
        assert!(x as usize * y as usize * 256 >= count);
    }

    #[test]
    fn software_adapters_run_convolutions_whole_and_gpus_split_them() {
        use wgpu::DeviceType;
        for tensor_cores in [false, true] {
            assert_eq!(
                conv_kernels_for(DeviceType::Cpu, tensor_cores),
                ConvKernels::TiledWhole
            );
        }
        for gpu in [
            DeviceType::DiscreteGpu,
            DeviceType::IntegratedGpu,
            DeviceType::VirtualGpu,
            DeviceType::Other,
        ] {
            assert_eq!(conv_kernels_for(gpu, false), ConvKernels::Tiled, "{gpu:?}");
            assert_eq!(
                conv_kernels_for(gpu, true),
                ConvKernels::TensorCores,
                "{gpu:?}"
            );
        }
    }
}
