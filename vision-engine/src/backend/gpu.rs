use super::{Activation, Backend};
use crate::{
    EngineError, GpuContext, ShapeError, Tensor,
    cpu::{
        self, BinaryOp, Conv2d, CoordinateTransform, MatmulPlan, MaxPool2d, NearestRounding,
        broadcast_strides,
    },
    tensor::{shape_error, strides},
};
use kernels::Kernel;
use wgpu::util::DeviceExt;

/// Kernels with how many read-only storage inputs each entry point binds before its output.
const KERNELS: [(Kernel, usize); 9] = [
    (kernels::ACTIVATION, 0),
    (kernels::BINARY, 2),
    (kernels::CONV2D, 3),
    (kernels::GATHER, 2),
    (kernels::MATMUL, 2),
    (kernels::MAX_POOL, 1),
    (kernels::RESIZE_NEAREST, 2),
    (kernels::SOFTMAX, 1),
    (kernels::STRIDED_COPY, 1),
];

/// The highest rank the index-walking kernels take (their uniforms hold 8 sizes).
const MAX_RANK: usize = 8;

/// Runs the WGSL kernels on a wgpu device. Every pipeline is created once, at construction.
///
/// Every kernel binds, in order: its read-only inputs, its output (read-write), its uniform.
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: Vec<(&'static str, &'static str, wgpu::ComputePipeline)>,
}

/// Uniform contents as 32-bit words, laid out as the kernels' `Params` structs: scalars in
/// groups of four, then 8-wide arrays.
#[derive(Default)]
struct Params(Vec<u32>);

impl Params {
    fn words(mut self, words: &[u32]) -> Self {
        self.0.extend_from_slice(words);
        self
    }

    fn array8(mut self, values: impl IntoIterator<Item = u32>) -> Self {
        let start = self.0.len();
        self.0.extend(values);
        assert!(
            self.0.len() - start <= MAX_RANK,
            "checked against MAX_RANK before"
        );
        self.0.resize(start + MAX_RANK, 0);
        self
    }
}

fn to_u32(op: &'static str, value: usize) -> Result<u32, ShapeError> {
    u32::try_from(value)
        .map_err(|_| shape_error(op, format!("{value} does not fit the GPU's 32-bit indices")))
}

fn check_rank(op: &'static str, rank: usize) -> Result<(), ShapeError> {
    if rank > MAX_RANK {
        return Err(shape_error(
            op,
            format!("rank {rank} is above the GPU backend's {MAX_RANK}"),
        ));
    }
    Ok(())
}

fn words(op: &'static str, values: &[usize]) -> Result<Vec<u32>, ShapeError> {
    values.iter().map(|&v| to_u32(op, v)).collect()
}

impl GpuBackend {
    pub async fn new() -> Result<Self, EngineError> {
        let ctx = GpuContext::new().await?;
        let device = &ctx.device;
        let mut pipelines = Vec::new();
        for (kernel, inputs) in KERNELS {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.file),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            });
            let layout = bind_group_layout(device, inputs);
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.file),
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
                pipelines.push((kernel.file, *entry, pipeline));
            }
        }
        Ok(Self { ctx, pipelines })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn pipeline(&self, kernel: &Kernel, entry: &str) -> &wgpu::ComputePipeline {
        self.pipelines
            .iter()
            .find(|(file, e, _)| *file == kernel.file && *e == entry)
            .map(|(_, _, p)| p)
            .expect("a pipeline is created for every entry point in KERNELS")
    }

    /// A storage buffer holding `bytes` (at least 4 bytes: WebGPU binds no empty buffers).
    fn storage(&self, bytes: &[u8]) -> wgpu::Buffer {
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
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
        self.storage(bytemuck::cast_slice(t.data()))
    }

    fn output(&self, len: usize) -> wgpu::Buffer {
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output"),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Records one dispatch of `count` invocations.
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (kernel, entry): (&Kernel, &str),
        inputs: &[&wgpu::Buffer],
        output: &wgpu::Buffer,
        params: Params,
        count: usize,
    ) {
        if count == 0 {
            return;
        }
        let device = &self.ctx.device;
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&params.0),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let pipeline = self.pipeline(kernel, entry);
        let entries: Vec<wgpu::BindGroupEntry> = inputs
            .iter()
            .chain([&output, &&uniform])
            .enumerate()
            .map(|(i, buffer)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let (x, y) = grid(count, device.limits().max_compute_workgroups_per_dimension);
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Submits `encoder` and reads `output` back as a tensor of `shape`.
    async fn finish(
        &self,
        encoder: wgpu::CommandEncoder,
        output: &wgpu::Buffer,
        shape: Vec<usize>,
    ) -> Result<Tensor, EngineError> {
        self.ctx.queue.submit([encoder.finish()]);
        let len: usize = shape.iter().product();
        let bytes = self.ctx.read_back(output, (len * 4) as u64).await?;
        Ok(Tensor::new(shape, bytemuck::pod_collect_to_vec(&bytes))?)
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx.device.create_command_encoder(&Default::default())
    }

    /// Records a strided copy: `dst[dst_offset + Σ i·dst_strides] = src[src_offset + Σ i·src_strides]`
    /// for every index `i` of `shape`.
    #[allow(clippy::too_many_arguments)]
    fn strided_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        op: &'static str,
        (src, src_offset, src_strides): (&wgpu::Buffer, i64, &[i64]),
        (dst, dst_offset, dst_strides): (&wgpu::Buffer, usize, &[usize]),
        shape: &[usize],
    ) -> Result<(), ShapeError> {
        check_rank(op, shape.len())?;
        let count: usize = shape.iter().product();
        let to_i32 =
            |v: i64| i32::try_from(v).map_err(|_| shape_error(op, "offset beyond 32-bit indices"));
        let src_strides: Vec<u32> = src_strides
            .iter()
            .map(|&s| to_i32(s).map(|s| s as u32))
            .collect::<Result<_, _>>()?;
        let params = Params::default()
            .words(&[
                to_u32(op, count)?,
                shape.len() as u32,
                to_i32(src_offset)? as u32,
                to_u32(op, dst_offset)?,
            ])
            .array8(words(op, shape)?)
            .array8(src_strides)
            .array8(words(op, dst_strides)?);
        self.dispatch(
            encoder,
            (&kernels::STRIDED_COPY, "main"),
            &[src],
            dst,
            params,
            count,
        );
        Ok(())
    }

    /// One slice of `input` (already on the GPU) as its own tensor, following `cpu::slice_plan`.
    async fn slice_uploaded(
        &self,
        op: &'static str,
        input: (&wgpu::Buffer, &[usize]),
        plan: &[(i64, i64, usize)],
    ) -> Result<Tensor, EngineError> {
        let (buffer, shape_in) = input;
        let in_strides = strides(shape_in);
        let shape: Vec<usize> = plan.iter().map(|&(_, _, count)| count).collect();
        let offset: i64 = plan
            .iter()
            .zip(&in_strides)
            .map(|(&(start, _, _), &s)| start * s as i64)
            .sum();
        let steps: Vec<i64> = plan
            .iter()
            .zip(&in_strides)
            .map(|(&(_, step, _), &s)| step * s as i64)
            .collect();
        let out = self.output(shape.iter().product());
        let mut encoder = self.encoder();
        self.strided_copy(
            &mut encoder,
            op,
            (buffer, offset, &steps),
            (&out, 0, &strides(&shape)),
            &shape,
        )?;
        self.finish(encoder, &out, shape).await
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

/// Workgroup counts covering `count` invocations, spilling into y past the per-dimension limit.
fn grid(count: usize, max_per_dimension: u32) -> (u32, u32) {
    let groups = (count.div_ceil(kernels::ELEMENTWISE_WORKGROUP_SIZE as usize)).max(1) as u32;
    if groups <= max_per_dimension {
        (groups, 1)
    } else {
        (max_per_dimension, groups.div_ceil(max_per_dimension))
    }
}

fn activation_code(activation: Option<Activation>) -> u32 {
    match activation {
        None => 0,
        Some(Activation::Sigmoid) => 1,
        Some(Activation::Silu) => 2,
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        self.ctx.adapter().to_string()
    }

    async fn activation(&self, kind: Activation, input: &Tensor) -> Result<Tensor, EngineError> {
        let data = self.upload(input);
        let entry = match kind {
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
        };
        let len = to_u32("Activation", input.len())?;
        let mut encoder = self.encoder();
        let params = Params::default().words(&[len, 0, 0, 0]);
        self.dispatch(
            &mut encoder,
            (&kernels::ACTIVATION, entry),
            &[],
            &data,
            params,
            input.len(),
        );
        self.finish(encoder, &data, input.shape().to_vec()).await
    }

    async fn conv2d(
        &self,
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        attrs: &Conv2d,
        activation: Option<Activation>,
    ) -> Result<Tensor, EngineError> {
        let out_shape = cpu::conv2d_output_shape(
            input.shape(),
            weight.shape(),
            bias.map(Tensor::shape),
            attrs,
        )?;
        let count: usize = out_shape.iter().product();
        let (m, c_per_group, kh, kw) = (
            weight.shape()[0],
            weight.shape()[1],
            weight.shape()[2],
            weight.shape()[3],
        );
        let op = "Conv";
        let params = Params::default()
            .words(&[
                to_u32(op, count)?,
                activation_code(activation),
                u32::from(bias.is_some()),
                0,
            ])
            .words(&words(op, input.shape())?)
            .words(&words(op, &out_shape)?)
            .words(&words(op, &[kh, kw, c_per_group, m / attrs.group])?)
            .words(&words(
                op,
                &[
                    attrs.strides[0],
                    attrs.strides[1],
                    attrs.dilations[0],
                    attrs.dilations[1],
                ],
            )?)
            .words(&words(op, &[attrs.pads[0], attrs.pads[1], 0, 0])?);
        let (x, w) = (self.upload(input), self.upload(weight));
        let b = bias.map_or_else(|| self.storage(&[]), |b| self.upload(b));
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::CONV2D, "main"),
            &[&x, &w, &b],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, out_shape.to_vec()).await
    }

    async fn max_pool2d(&self, input: &Tensor, attrs: &MaxPool2d) -> Result<Tensor, EngineError> {
        let out_shape = cpu::max_pool2d_output_shape(input.shape(), attrs)?;
        let count: usize = out_shape.iter().product();
        let op = "MaxPool";
        let params = Params::default()
            .words(&[to_u32(op, count)?, 0, 0, 0])
            .words(&words(op, input.shape())?)
            .words(&words(op, &out_shape)?)
            .words(&words(op, &[attrs.kernel[0], attrs.kernel[1], 0, 0])?)
            .words(&words(
                op,
                &[
                    attrs.strides[0],
                    attrs.strides[1],
                    attrs.dilations[0],
                    attrs.dilations[1],
                ],
            )?)
            .words(&words(op, &[attrs.pads[0], attrs.pads[1], 0, 0])?);
        let x = self.upload(input);
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::MAX_POOL, "main"),
            &[&x],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, out_shape.to_vec()).await
    }

    async fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        let (name, entry) = match op {
            BinaryOp::Add => ("Add", "add"),
            BinaryOp::Sub => ("Sub", "sub"),
            BinaryOp::Mul => ("Mul", "mul"),
            BinaryOp::Div => ("Div", "div"),
        };
        let shape = cpu::broadcast_shape(name, a.shape(), b.shape())?;
        check_rank(name, shape.len())?;
        let count: usize = shape.iter().product();
        let params = Params::default()
            .words(&[to_u32(name, count)?, shape.len() as u32, 0, 0])
            .array8(words(name, &shape)?)
            .array8(words(name, &broadcast_strides(a.shape(), &shape))?)
            .array8(words(name, &broadcast_strides(b.shape(), &shape))?);
        let (ga, gb) = (self.upload(a), self.upload(b));
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::BINARY, entry),
            &[&ga, &gb],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, shape).await
    }

    async fn transpose(&self, input: &Tensor, perm: &[usize]) -> Result<Tensor, EngineError> {
        let (shape, source_strides) = cpu::transpose_plan(input.shape(), perm)?;
        let source_strides: Vec<i64> = source_strides.iter().map(|&s| s as i64).collect();
        let (src, out) = (self.upload(input), self.output(shape.iter().product()));
        let mut encoder = self.encoder();
        self.strided_copy(
            &mut encoder,
            "Transpose",
            (&src, 0, &source_strides),
            (&out, 0, &strides(&shape)),
            &shape,
        )?;
        self.finish(encoder, &out, shape).await
    }

    async fn slice(
        &self,
        input: &Tensor,
        starts: &[i64],
        ends: &[i64],
        axes: Option<&[i64]>,
        steps: Option<&[i64]>,
    ) -> Result<Tensor, EngineError> {
        let plan = cpu::slice_plan(input.shape(), starts, ends, axes, steps)?;
        self.slice_uploaded("Slice", (&self.upload(input), input.shape()), &plan)
            .await
    }

    async fn concat(&self, inputs: &[&Tensor], axis: i64) -> Result<Tensor, EngineError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        let (axis, shape) = cpu::concat_shape(&shapes, axis)?;
        let out_strides = strides(&shape);
        let out = self.output(shape.iter().product());
        let mut encoder = self.encoder();
        let sources: Vec<wgpu::Buffer> = inputs.iter().map(|t| self.upload(t)).collect();
        let mut offset = 0;
        for (t, src) in inputs.iter().zip(&sources) {
            let src_strides: Vec<i64> = strides(t.shape()).iter().map(|&s| s as i64).collect();
            let dst_offset = offset * out_strides[axis];
            self.strided_copy(
                &mut encoder,
                "Concat",
                (src, 0, &src_strides),
                (&out, dst_offset, &out_strides),
                t.shape(),
            )?;
            offset += t.shape()[axis];
        }
        self.finish(encoder, &out, shape).await
    }

    async fn split(
        &self,
        input: &Tensor,
        axis: i64,
        sizes: &[usize],
    ) -> Result<Vec<Tensor>, EngineError> {
        let rank = input.shape().len();
        let axis_index = crate::normalize_axis("Split", axis, rank)?;
        let len = input.shape()[axis_index];
        if sizes.iter().sum::<usize>() != len {
            return Err(shape_error(
                "Split",
                format!("sizes {sizes:?} do not add up to {len} along axis {axis_index}"),
            )
            .into());
        }
        let src = self.upload(input);
        let mut parts = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for &size in sizes {
            let end = (start + size) as i64;
            let plan =
                cpu::slice_plan(input.shape(), &[start as i64], &[end], Some(&[axis]), None)?;
            parts.push(
                self.slice_uploaded("Split", (&src, input.shape()), &plan)
                    .await?,
            );
            start += size;
        }
        Ok(parts)
    }

    async fn gather(
        &self,
        input: &Tensor,
        axis: i64,
        indices: &[i64],
        indices_shape: &[usize],
    ) -> Result<Tensor, EngineError> {
        let op = "Gather";
        let (axis, resolved, shape) =
            cpu::gather_plan(input.shape(), axis, indices, indices_shape)?;
        let count: usize = shape.iter().product();
        let inner: usize = input.shape()[axis + 1..].iter().product();
        let params = Params::default().words(&[
            to_u32(op, count)?,
            to_u32(op, resolved.len().max(1))?,
            to_u32(op, input.shape()[axis])?,
            to_u32(op, inner.max(1))?,
        ]);
        let index_words = words(op, &resolved)?;
        let (src, idx) = (
            self.upload(input),
            self.storage(bytemuck::cast_slice(&index_words)),
        );
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::GATHER, "main"),
            &[&src, &idx],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, shape).await
    }

    async fn resize_nearest(
        &self,
        input: &Tensor,
        output_shape: &[usize],
        scales: Option<&[f32]>,
        transform: CoordinateTransform,
        rounding: NearestRounding,
    ) -> Result<Tensor, EngineError> {
        let op = "Resize";
        let maps = cpu::resize_maps(input.shape(), output_shape, scales, transform, rounding)?;
        check_rank(op, output_shape.len())?;
        let mut offsets = Vec::with_capacity(maps.len());
        let mut flat: Vec<usize> = Vec::new();
        for map in &maps {
            offsets.push(flat.len());
            flat.extend(map);
        }
        let count: usize = output_shape.iter().product();
        let params = Params::default()
            .words(&[to_u32(op, count)?, output_shape.len() as u32, 0, 0])
            .array8(words(op, output_shape)?)
            .array8(words(op, &strides(input.shape()))?)
            .array8(words(op, &offsets)?);
        let map_words = words(op, &flat)?;
        let (src, map_buffer) = (
            self.upload(input),
            self.storage(bytemuck::cast_slice(&map_words)),
        );
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::RESIZE_NEAREST, "main"),
            &[&src, &map_buffer],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, output_shape.to_vec()).await
    }

    async fn softmax(&self, input: &Tensor, axis: i64) -> Result<Tensor, EngineError> {
        let op = "Softmax";
        let axis = crate::normalize_axis(op, axis, input.shape().len())?;
        let len = input.shape()[axis];
        let inner: usize = input.shape()[axis + 1..].iter().product();
        let rows = input.len().checked_div(len).unwrap_or(0);
        let params = Params::default().words(&[
            to_u32(op, rows)?,
            to_u32(op, len)?,
            to_u32(op, inner.max(1))?,
            0,
        ]);
        let (src, out) = (self.upload(input), self.output(input.len()));
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::SOFTMAX, "main"),
            &[&src],
            &out,
            params,
            rows,
        );
        self.finish(encoder, &out, input.shape().to_vec()).await
    }

    async fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        let op = "MatMul";
        let MatmulPlan {
            m,
            n,
            k,
            batch,
            stride_a,
            stride_b,
            output_shape,
        } = cpu::matmul_plan(a.shape(), b.shape())?;
        check_rank(op, batch.len())?;
        let count: usize = output_shape.iter().product();
        let params = Params::default()
            .words(&[
                to_u32(op, count)?,
                to_u32(op, m)?,
                to_u32(op, n)?,
                to_u32(op, k)?,
            ])
            .words(&[batch.len() as u32, 0, 0, 0])
            .array8(words(op, &batch)?)
            .array8(words(op, &stride_a)?)
            .array8(words(op, &stride_b)?);
        let (ga, gb) = (self.upload(a), self.upload(b));
        let out = self.output(count);
        let mut encoder = self.encoder();
        self.dispatch(
            &mut encoder,
            (&kernels::MATMUL, "main"),
            &[&ga, &gb],
            &out,
            params,
            count,
        );
        self.finish(encoder, &out, output_shape).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_covers_every_invocation_within_the_dimension_limit() {
        assert_eq!(grid(1, 65_535), (1, 1));
        assert_eq!(grid(256, 65_535), (1, 1));
        assert_eq!(grid(257, 65_535), (2, 1));
        let count = 65_535 * 256 + 1;
        let (x, y) = grid(count, 65_535);
        assert_eq!((x, y), (65_535, 2));
        assert!(x as usize * y as usize * 256 >= count);
    }

    #[test]
    fn params_pad_arrays_to_eight_words() {
        let p = Params::default().words(&[1, 2, 3, 4]).array8([5, 6]);
        assert_eq!(p.0, [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0]);
    }
}
