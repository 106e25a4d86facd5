use crate::EngineError;
use kernels::Precision;

/// What the kiosk shows about the GPU it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    /// For people: "NVIDIA H100 (Vulkan, discrete GPU, driver …)" or, in a browser that keeps
    /// the adapter's name private, "WebGPU (software adapter)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.name
        };
        let backend = if self.backend == "BrowserWebGpu" {
            "WebGPU"
        } else {
            &self.backend
        };
        let kind = match self.device_type.as_str() {
            "DiscreteGpu" => "discrete GPU",
            "IntegratedGpu" => "integrated GPU",
            "VirtualGpu" => "virtual GPU",
            "Cpu" => "software adapter",
            _ => "",
        };
        if self.name.is_empty() {
            write!(f, "{backend}")?;
        } else {
            write!(f, "{name} ({backend}")?;
        }
        let details: Vec<&str> = [kind, self.driver.as_str()]
            .into_iter()
            .filter(|d| !d.is_empty())
            .collect();
        match (self.name.is_empty(), details.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => write!(f, " ({})", details.join(", ")),
            (false, true) => f.write_str(")"),
            (false, false) => write!(f, ", {})", details.join(", ")),
        }
    }
}

/// A device and queue, opened with the limits every WebGPU browser guarantees.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    adapter: AdapterSummary,
    device_type: wgpu::DeviceType,
    precision: Precision,
    tensor_cores: bool,
}

/// What a device needs to run the convolutions' products on matrix units (`tensor_cores` kernels
/// of the kernels crate): wgpu's experimental cooperative matrices, f16 in shaders, subgroups.
const TENSOR_CORE_FEATURES: wgpu::Features = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// Whether `adapter` multiplies 16x16x16 blocks of f16 into f32 sums in subgroups of exactly 32
/// invocations, as the tensor-core kernels assume (NVIDIA's since Volta, natively on Vulkan).
fn has_tensor_cores(adapter: &wgpu::Adapter) -> bool {
    let info = adapter.get_info();
    adapter.features().contains(TENSOR_CORE_FEATURES)
        && info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
}

/// The features a device with tensors in `precision` must be opened with, on an adapter with
/// `available` features (and matrix units where `tensor_cores`).
fn device_features(
    available: wgpu::Features,
    precision: Precision,
    tensor_cores: bool,
) -> Result<wgpu::Features, String> {
    if precision == Precision::F16 && !available.contains(wgpu::Features::SHADER_F16) {
        return Err(
            "f16 needs the shader-f16 feature, which this adapter lacks; run in f32 instead".into(),
        );
    }
    // Timestamps, where the adapter has them, let benchmarks read GPU time; they change nothing
    // else, and the limits stay the baseline's.
    let mut features = available & wgpu::Features::TIMESTAMP_QUERY;
    if precision == Precision::F16 {
        features |= wgpu::Features::SHADER_F16;
    }
    if tensor_cores {
        features |= TENSOR_CORE_FEATURES;
    }
    Ok(features)
}

impl GpuContext {
    /// Opens the best adapter in f32. Natively `WGPU_BACKEND` (e.g. `vulkan`, `gl`) picks the API.
    ///
    /// The device is requested with `wgpu::Limits::default()`, the WebGPU baseline, also on native
    /// drivers that offer more: a kernel that would exceed a browser's limits fails in native tests.
    pub async fn new() -> Result<Self, EngineError> {
        Self::with_precision(Precision::F32).await
    }

    /// Opens the best adapter with tensors in `precision`; f16 on an adapter without
    /// `shader-f16` is an error.
    pub async fn with_precision(precision: Precision) -> Result<Self, EngineError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver, info.driver_info]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let tensor_cores = has_tensor_cores(&adapter);
        let required_features = device_features(adapter.features(), precision, tensor_cores)
            .map_err(|reason| EngineError::DeviceRequest {
                adapter: summary.name.clone(),
                reason,
            })?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("linecheck"),
                required_features,
                required_limits: wgpu::Limits::default(),
                // SAFETY: wgpu marks cooperative matrices experimental (its implementation may
                // still have bugs). Only the tensor-core convolution uses them, on the one
                // configuration the adapter lists and the kernel needs; its output is checked
                // against the CPU reference on every such adapter measured (BENCHMARKS.md).
                experimental_features: if tensor_cores {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::DeviceRequest {
                adapter: summary.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            device,
            queue,
            adapter: summary,
            device_type: info.device_type,
            precision,
            tensor_cores,
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// What kind of adapter this is: `Cpu` for software ones (lavapipe natively; in a browser,
    /// wgpu reports a fallback adapter such as Chromium's SwiftShader as `Cpu`).
    pub fn device_type(&self) -> wgpu::DeviceType {
        self.device_type
    }

    /// Whether the device was opened with matrix units for the convolutions' products (the
    /// kernels crate's `tensor_cores` kernels compile on it).
    pub fn tensor_cores(&self) -> bool {
        self.tensor_cores
    }

    /// The element type of every tensor on this device.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A buffer the host can map, for `size` bytes copied from the GPU.
    pub(crate) fn staging(&self, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Copies `size` bytes of `source` into a mappable buffer and returns them.
    pub async fn read_back(
        &self,
        source: &wgpu::Buffer,
        size: u64,
    ) -> Result<Vec<u8>, EngineError> {
        let staging = self.staging(size);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(source, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        self.read_mapped(&staging, size).await
    }

    /// Resolves once the work submitted before is done.
    pub async fn submitted_work_done(&self) -> Result<(), EngineError> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = sender.send(());
        });
        self.polled(receiver, "the device dropped the queue's callback")
            .await
    }

    /// What a callback of the device sends on `receiver`, once the device has run it (`dropped`:
    /// the error where it never will).
    ///
    /// Natively this blocks in `poll` until the GPU is done; in the browser `poll` returns at
    /// once and the future resolves from the event loop.
    async fn polled<T>(
        &self,
        receiver: futures_channel::oneshot::Receiver<T>,
        dropped: &str,
    ) -> Result<T, EngineError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Readback(e.to_string()))?;
        receiver
            .await
            .map_err(|_| EngineError::Readback(dropped.into()))
    }

    /// Asks for `slice` mapped in `mode` once the work submitted before is done; await it with
    /// [`GpuContext::mapped`]. Readbacks wait at once; the frame's staging buffer (`GpuNetwork`)
    /// is asked for as soon as its copy is submitted and waited for at the next frame.
    pub(crate) fn map_request(slice: wgpu::BufferSlice<'_>, mode: wgpu::MapMode) -> MapRequest {
        let (sender, receiver) = futures_channel::oneshot::channel();
        slice.map_async(mode, move |result| {
            // The receiver only goes away with its request; nothing to tell.
            let _ = sender.send(result);
        });
        MapRequest(receiver)
    }

    /// Waits until the buffer `request` asked for is mapped.
    pub(crate) async fn mapped(&self, request: MapRequest) -> Result<(), EngineError> {
        self.polled(request.0, "the device dropped the map request")
            .await?
            .map_err(|e| EngineError::Readback(e.to_string()))
    }

    /// The first `size` bytes of a staging buffer, once the work submitted before is done.
    pub(crate) async fn read_mapped(
        &self,
        staging: &wgpu::Buffer,
        size: u64,
    ) -> Result<Vec<u8>, EngineError> {
        self.mapped(Self::map_request(
            staging.slice(..size),
            wgpu::MapMode::Read,
        ))
        .await?;
        let bytes = staging
            .slice(..size)
            .get_mapped_range()
            .map_err(|e| EngineError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}

/// A buffer's pending mapping ([`GpuContext::map_request`]).
pub(crate) struct MapRequest(
    futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, backend: &str, device_type: &str, driver: &str) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend: backend.into(),
            device_type: device_type.into(),
            driver: driver.into(),
        }
    }

    #[test]
    fn f16_runs_only_where_the_adapter_has_shader_f16() {
        let with_f16 = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        let without = wgpu::Features::TIMESTAMP_QUERY;
        let features = device_features(with_f16, Precision::F16, false).unwrap();
        assert!(features.contains(wgpu::Features::SHADER_F16));
        let err = device_features(without, Precision::F16, false).unwrap_err();
        assert!(err.contains("shader-f16"), "{err}");
        // f32: no f16 feature requested, even where it exists.
        for available in [with_f16, without] {
            assert_eq!(
                device_features(available, Precision::F32, false).unwrap(),
                wgpu::Features::TIMESTAMP_QUERY
            );
        }
        // Matrix units bring f16 in shaders with them, whatever the tensors' precision.
        assert_eq!(
            device_features(with_f16, Precision::F32, true).unwrap(),
            wgpu::Features::TIMESTAMP_QUERY | TENSOR_CORE_FEATURES
        );
    }

    #[test]
    fn adapters_are_described_in_words_also_without_a_name() {
        assert_eq!(
            summary("", "BrowserWebGpu", "Cpu", "").to_string(),
            "WebGPU (software adapter)"
        );
        assert_eq!(
            summary("NVIDIA H100", "Vulkan", "DiscreteGpu", "NVIDIA 580").to_string(),
            "NVIDIA H100 (Vulkan, discrete GPU, NVIDIA 580)"
        );
        assert_eq!(
            summary("Apple M2", "Metal", "Other", "").to_string(),
            "Apple M2 (Metal)"
        );
    }
}
