//! Decoding and NMS on the GPU: `decode_boxes.wgsl` appends the anchors above the confidence
//! threshold to a candidate list, `nms.wgsl` sorts them and keeps the boxes, in one workgroup.
//! The same definition as `postprocess::decode_and_nms`, so both give identical detections; a
//! frame reads back only the count and the kept boxes (32 bytes each).

use super::{GpuBackend, PreparedLaunch, launch::Grid};
use crate::{
    EngineError, Tensor,
    postprocess::{NmsOptions, OutputLayout, RawDetection},
    tensor::shape_error,
};

/// Words before the boxes in `nms.wgsl`'s output: kept count, candidate count, padding.
const HEADER_WORDS: u64 = 4;
/// Words of one candidate or kept box (`Candidate` in the kernels).
const SLOT_WORDS: u64 = 8;

/// The buffers and bound launches that decode one detector output where it lies on the GPU.
pub(super) struct DetectionStage {
    anchors: u32,
    classes: u32,
    input_offset: u32,
    /// The launches' shared uniform (`Params` in the kernels), rewritten each frame.
    params: wgpu::Buffer,
    /// Candidate count (cleared each frame) and room for one candidate per anchor.
    candidates: wgpu::Buffer,
    /// `nms.wgsl`'s output: header, kept boxes, sort scratch.
    kept: wgpu::Buffer,
    /// Mappable copy of the header and the kept boxes.
    staging: wgpu::Buffer,
    launches: [PreparedLaunch; 2],
}

impl DetectionStage {
    /// Binds the stage to `source`, the buffer holding the output at element `offset`.
    pub fn new(
        backend: &GpuBackend,
        layout: OutputLayout,
        source: &wgpu::Buffer,
        offset: usize,
    ) -> Result<Self, EngineError> {
        let OutputLayout::Anchors { classes, anchors } = layout else {
            return Err(shape_error(
                "Detections",
                format!("{layout} needs no NMS: it is decoded on the host"),
            )
            .into());
        };
        let too_large = || shape_error("Detections", format!("{layout} is too large for the GPU"));
        let to_u32 = |v: usize| u32::try_from(v).map_err(|_| too_large());
        let (anchors32, classes32, offset32) =
            (to_u32(anchors)?, to_u32(classes)?, to_u32(offset)?);
        let slots = 4 * SLOT_WORDS * anchors as u64;
        let candidate_bytes = 4 * HEADER_WORDS + slots;
        let kept_bytes = candidate_bytes + 4 * anchors.next_power_of_two() as u64;
        let limit = backend.ctx.device.limits().max_storage_buffer_binding_size;
        if kept_bytes > limit {
            return Err(shape_error(
                "Detections",
                format!(
                    "{layout}: NMS over {anchors} anchors needs {kept_bytes} bytes in one binding, \
                     the adapter allows {limit}"
                ),
            )
            .into());
        }
        let device = &backend.ctx.device;
        let buffer = |label, size, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let params = buffer("nms params", 32, U::UNIFORM | U::COPY_DST);
        let candidates = buffer("candidates", candidate_bytes, U::STORAGE | U::COPY_DST);
        let kept = buffer("kept boxes", kept_bytes, U::STORAGE | U::COPY_SRC);
        let staging = backend.ctx.staging(candidate_bytes);
        let launches = [
            backend.bind(
                &kernels::DECODE_BOXES,
                "main",
                &[source, &candidates, &params],
                Grid::Elements(anchors),
            ),
            backend.bind(
                &kernels::NMS,
                "main",
                &[&candidates, &kept, &params],
                Grid::Workgroups([1, 1, 1]),
            ),
        ];
        Ok(Self {
            anchors: anchors32,
            classes: classes32,
            input_offset: offset32,
            params,
            candidates,
            kept,
            staging,
            launches,
        })
    }

    pub fn layout(&self) -> OutputLayout {
        OutputLayout::Anchors {
            classes: self.classes as usize,
            anchors: self.anchors as usize,
        }
    }

    /// Writes this frame's thresholds and records, after the work already in `encoder`: clear
    /// the candidate count, decode, NMS, copy the kept boxes out. Returns the bytes to read.
    pub fn record(
        &self,
        backend: &GpuBackend,
        encoder: &mut wgpu::CommandEncoder,
        options: NmsOptions,
    ) -> u64 {
        let clamp = |v: usize| v.min(self.anchors as usize) as u32;
        let max_detections = clamp(options.max_detections);
        let params = [
            self.anchors,
            self.classes,
            self.input_offset,
            max_detections,
            clamp(options.max_candidates),
            options.confidence.to_bits(),
            options.iou.to_bits(),
            // Rounded here, as the CPU reference rounds it.
            (1.0 + options.iou).to_bits(),
        ];
        let ctx = &backend.ctx;
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&params));
        encoder.clear_buffer(&self.candidates, 0, Some(4 * HEADER_WORDS));
        backend.record(encoder, &self.launches, None);
        let bytes = 4 * (HEADER_WORDS + SLOT_WORDS * u64::from(max_detections));
        encoder.copy_buffer_to_buffer(&self.kept, 0, &self.staging, 0, bytes);
        bytes
    }

    /// The kept boxes, once the submission with [`DetectionStage::record`]'s work is done.
    pub async fn read(
        &self,
        backend: &GpuBackend,
        bytes: u64,
    ) -> Result<Vec<RawDetection>, EngineError> {
        let data = backend.ctx.read_mapped(&self.staging, bytes).await?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&data);
        let kept = words[0] as usize;
        let slots = &words[HEADER_WORDS as usize..];
        if kept * SLOT_WORDS as usize > slots.len() {
            return Err(EngineError::Readback(format!(
                "NMS reported {kept} boxes, room was for {}",
                slots.len() / SLOT_WORDS as usize
            )));
        }
        Ok(slots
            .as_chunks::<{ SLOT_WORDS as usize }>()
            .0
            .iter()
            .take(kept)
            .map(|w| RawDetection {
                bbox: [0, 1, 2, 3].map(|i| f32::from_bits(w[i])),
                score: f32::from_bits(w[4]),
                class_id: w[5],
            })
            .collect())
    }
}

impl GpuBackend {
    /// Decoding and NMS of a detector output on the GPU (`postprocess::decode_and_nms`'s twin),
    /// for the conformance tests; a [`crate::GpuNetwork`] runs the same stage in its frame.
    pub async fn decode_and_nms(
        &self,
        output: &Tensor,
        layout: OutputLayout,
        options: NmsOptions,
    ) -> Result<Vec<RawDetection>, EngineError> {
        layout
            .check(output.data().len())
            .map_err(|e| shape_error("Detections", e.to_string()))?;
        let source = self.upload(output);
        let stage = DetectionStage::new(self, layout, &source, 0)?;
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        let bytes = stage.record(self, &mut encoder, options);
        self.ctx.queue.submit([encoder.finish()]);
        stage.read(self, bytes).await
    }
}
