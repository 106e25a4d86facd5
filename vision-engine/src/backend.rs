use crate::{EngineError, GpuContext};
use wgpu::util::DeviceExt;

/// The activations the engine fuses into or runs after its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Sigmoid,
    Silu,
}

impl Activation {
    pub const ALL: [Activation; 2] = [Activation::Sigmoid, Activation::Silu];

    /// The reference definition every backend must reproduce.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    fn entry_point(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
        }
    }
}

/// What every backend offers. `tests/conformance.rs` runs the same checks against each.
#[allow(async_fn_in_trait)] // Implemented in this crate only; the browser's futures are not Send.
pub trait Backend {
    /// A short name for reports: "cpu" or the adapter.
    fn name(&self) -> String;

    async fn activation(&self, kind: Activation, input: &[f32]) -> Result<Vec<f32>, EngineError>;
}

/// The plain-Rust reference backend; also the fallback where no GPU adapter exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    async fn activation(&self, kind: Activation, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        Ok(input.iter().map(|&x| kind.apply(x)).collect())
    }
}

/// Runs the WGSL kernels on a wgpu device. Pipelines are created once, at construction.
pub struct GpuBackend {
    ctx: GpuContext,
    activation_layout: wgpu::BindGroupLayout,
    activation_pipelines: Vec<(Activation, wgpu::ComputePipeline)>,
}

impl GpuBackend {
    pub async fn new() -> Result<Self, EngineError> {
        let ctx = GpuContext::new().await?;
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernels::ACTIVATION.file),
            source: wgpu::ShaderSource::Wgsl(kernels::ACTIVATION.source.into()),
        });
        let activation_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("activation"),
            entries: &[
                storage_entry(0, false),
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("activation"),
            bind_group_layouts: &[Some(&activation_layout)],
            immediate_size: 0,
        });
        let activation_pipelines = Activation::ALL
            .iter()
            .map(|&kind| {
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kind.entry_point()),
                    layout: Some(&layout),
                    module: &module,
                    entry_point: Some(kind.entry_point()),
                    compilation_options: Default::default(),
                    cache: None,
                });
                (kind, pipeline)
            })
            .collect();
        Ok(Self {
            ctx,
            activation_layout,
            activation_pipelines,
        })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn pipeline(&self, kind: Activation) -> &wgpu::ComputePipeline {
        let (_, pipeline) = self
            .activation_pipelines
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("a pipeline is created for every activation");
        pipeline
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Workgroup counts covering `len` elements, spilling into y past the 65,535 limit of one dimension.
fn elementwise_grid(len: u32, max_per_dimension: u32) -> (u32, u32) {
    let groups = len.div_ceil(kernels::ELEMENTWISE_WORKGROUP_SIZE).max(1);
    if groups <= max_per_dimension {
        (groups, 1)
    } else {
        (max_per_dimension, groups.div_ceil(max_per_dimension))
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        self.ctx.adapter().to_string()
    }

    async fn activation(&self, kind: Activation, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let device = &self.ctx.device;
        let len = u32::try_from(input.len()).expect("tensors are smaller than 2^32 elements");
        let data = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("activation data"),
            contents: bytemuck::cast_slice(input),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("activation params"),
            contents: bytemuck::cast_slice(&[len, 0, 0, 0]),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("activation"),
            layout: &self.activation_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: data.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: params.as_entire_binding(),
                },
            ],
        });
        let (x, y) = elementwise_grid(len, device.limits().max_compute_workgroups_per_dimension);
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(self.pipeline(kind));
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.ctx.queue.submit([encoder.finish()]);
        let bytes = self.ctx.read_back(&data, data.size()).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_grid_covers_every_element_within_the_dimension_limit() {
        assert_eq!(elementwise_grid(1, 65_535), (1, 1));
        assert_eq!(elementwise_grid(256, 65_535), (1, 1));
        assert_eq!(elementwise_grid(257, 65_535), (2, 1));
        let len = 65_535 * 256 + 1;
        let (x, y) = elementwise_grid(len, 65_535);
        assert_eq!((x, y), (65_535, 2));
        assert!(u64::from(x) * u64::from(y) * 256 >= u64::from(len));
    }
}
