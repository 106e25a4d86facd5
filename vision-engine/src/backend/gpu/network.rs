//! A whole network resident on the GPU: weights uploaded once, intermediate tensors in a pool of
//! buffers shared by liveness, every launch bound once at preparation. An inference writes the
//! input, records the launches in a few submissions the GPU starts on while the rest are
//! recorded, and reads back only the outputs; a detection decodes the first output and runs NMS
//! in the last submission and reads back only the kept boxes.

use super::{
    Backend, GpuBackend, PreparedLaunch,
    detections::DetectionStage,
    launch::{self, Binding, ConvKernels, Launch, OpPlan},
};
use crate::{
    EngineError, Tensor,
    cpu::BinaryOp,
    graph::{Executor, Network, Op, Operand, Step, decode_on_host},
    letterbox::Letterbox,
    postprocess::{NmsOptions, OutputLayout, RawDetection},
    tensor::shape_error,
};

/// Launches in the first submission of an inference; each later one has twice as many.
const FIRST_SUBMISSION_LAUNCHES: usize = 8;

/// Where each value lives: a pool buffer, shared with values whose lifetimes do not overlap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BufferPlan {
    /// For each value of the network, its pool buffer; `None` for values no step produces
    /// (those the SiLU fusion replaced).
    pub buffer_of: Vec<Option<usize>>,
    /// For each value, where it starts in its buffer, in elements: non-zero for a value placed
    /// in its slice of a Concat's output ([`concat_placements`]) and for a Split part read in
    /// place.
    pub offset_of: Vec<usize>,
    /// For each view (a Reshape's output, a Split part read in place: [`aliases`]), the value
    /// whose storage it shares; no launch writes it.
    pub alias_of: Vec<Option<usize>>,
    /// For each Concat input already in its slice of a Concat's output (placed there, or a part
    /// of a Split whose input is placed there), that output: the Concat copies nothing for it.
    pub placed_in: Vec<Option<usize>>,
    /// For each step with scratch memory (split-k partial sums), its pool buffer: a storage
    /// alive during that step alone.
    pub scratch_of: Vec<Option<usize>>,
    /// Size in bytes of each pool buffer.
    pub buffer_bytes: Vec<u64>,
    /// The largest input-plus-output bytes of a single step: a floor for any plan.
    pub largest_step_bytes: u64,
}

impl BufferPlan {
    pub fn peak_bytes(&self) -> u64 {
        self.buffer_bytes.iter().sum()
    }

    /// Whether a resident network runs `launch` of `step`: not a Concat's copy of a value
    /// already in its slice, nor a Split's copy of a part read in place, nor an empty grid.
    fn runs(&self, step: &Step, launch: &Launch) -> bool {
        let in_slice = matches!(step.op, Op::Concat(_))
            && launch
                .inputs
                .iter()
                .filter_map(|b| bound_value(step, b))
                .any(|v| self.placed_in[v] == Some(step.outputs[0]));
        let view = bound_value(step, &launch.output).is_some_and(|v| self.alias_of[v].is_some());
        !in_slice && !view && !launch.grid.is_empty()
    }

    /// The buffer of a value that some step produces (or the input).
    fn buffer(&self, value: usize) -> usize {
        self.buffer_of[value].expect("every value a step reads is produced by an earlier step")
    }
}

/// The value a launch of `step` binds at `binding` (`None`: a constant, or the launch's own).
fn bound_value(step: &Step, binding: &Binding) -> Option<usize> {
    match binding {
        Binding::Input(i) => match step.inputs[*i] {
            Operand::Value(v) => Some(v),
            Operand::Constant(_) => None,
        },
        Binding::Output(o) => Some(step.outputs[*o]),
        _ => None,
    }
}

/// The operands `step` may read from the buffer it writes, one of them at most, through its
/// output binding ([`read_through_output`]): either of an Add's, a MaxPool's input, a
/// convolution's residual.
fn operands_read_through_output(step: &Step) -> std::ops::Range<usize> {
    match step.op {
        Op::Binary(BinaryOp::Add) => 0..2,
        Op::MaxPool(_) => 0..1,
        Op::Conv { residual: true, .. } => 1..2,
        _ => 0..0,
    }
}

/// `launch` of `step` with an operand that lies in its output's buffer read through the output
/// binding (`binary.wgsl`'s `add_from_out`, `max_pool.wgsl`'s `main_from_out`, `residual.wgsl`'s
/// second source), its own binding a stand-in: one launch may not bind a buffer both read-only
/// and writable.
fn read_through_output(step: &Step, launch: &mut Launch, buffer_of: impl Fn(usize) -> usize) {
    let Some(out) = bound_value(step, &launch.output).map(&buffer_of) else {
        return;
    };
    for j in operands_read_through_output(step) {
        let Some(at) = launch.inputs.iter().position(|b| *b == Binding::Input(j)) else {
            continue;
        };
        if bound_value(step, &launch.inputs[at]).map(&buffer_of) != Some(out) {
            continue;
        }
        match step.op {
            Op::MaxPool(_) => launch.entry = "main_from_out",
            Op::Conv { .. } => launch::read_residual_through_output(launch),
            _ => {
                launch.entry = "add_from_out";
                launch.params[launch::BINARY_FROM_OUT_WORD] = j as u32 + 1;
            }
        }
        launch.inputs[at] = Binding::Absent;
    }
}

/// GPU bytes of a tensor of `shape` with elements of `element_bytes`, in whole 4-byte words.
fn bytes(shape: &[usize], element_bytes: usize) -> u64 {
    (shape.iter().product::<usize>() as u64 * element_bytes as u64)
        .next_multiple_of(4)
        .max(4)
}

/// The launches of every step of `network`, each convolution taking at most `scratch_limit(step)`
/// bytes of split-k partial sums.
fn plan_each(
    network: &Network,
    conv_kernels: ConvKernels,
    scratch_limit: impl Fn(usize) -> u64,
) -> Result<Vec<OpPlan>, EngineError> {
    let constants: Vec<&Tensor> = network.constants.iter().collect();
    network
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let shapes: Vec<&[usize]> = step
                .inputs
                .iter()
                .map(|o| match *o {
                    Operand::Value(v) => network.value_shapes[v].as_slice(),
                    Operand::Constant(c) => network.constants[c].shape(),
                })
                .collect();
            launch::plan(
                &step.op,
                &shapes,
                &constants,
                conv_kernels,
                scratch_limit(i),
            )
        })
        .collect()
}

/// The launches of every step of `network` (tensors of `element_bytes` per element), within
/// issue 4's memory bound: a plan over twice the largest step's inputs plus outputs is made
/// again with each split convolution's f32 partial sums held to what its step leaves free, the
/// largest buffer idle during that step or else what the bound leaves above the values' own peak
/// (one buffer that all such steps share): how [`plan_buffers`] places them, values first. A
/// layer whose sums fit neither takes the most slices that do, or none. Only those layers lose
/// slices; whole convolutions need no scratch, so the plan is over the bound only where the
/// values alone are.
fn plan_steps(
    network: &Network,
    conv_kernels: ConvKernels,
    element_bytes: usize,
) -> Result<Vec<OpPlan>, EngineError> {
    let plans = plan_each(network, conv_kernels, |_| u64::MAX)?;
    let unbounded = plan_buffers(network, &plans, element_bytes);
    let bound = 2 * unbounded.largest_step_bytes;
    if unbounded.peak_bytes() <= bound {
        return Ok(plans);
    }
    // Split-k changes no value's storage: the values' placement is the same with any slices.
    let values = value_storages(network, &plans, element_bytes);
    let Placement { bytes, busy, .. } = place(&values.storages);
    let above_values = bound.saturating_sub(bytes.iter().sum());
    plan_each(network, conv_kernels, |step| {
        let idle = (0..bytes.len())
            .filter(|&b| idle_during(&busy[b], step))
            .map(|b| bytes[b])
            .max()
            .unwrap_or(0);
        idle.max(above_values)
    })
}

/// Which step makes each value and which steps read it.
struct Uses {
    /// The step and output index that make each value (`None`: the input, or a fused-away value).
    producer: Vec<Option<(usize, usize)>>,
    /// The steps and operand indices that read each value.
    readers: Vec<Vec<(usize, usize)>>,
}

impl Uses {
    fn of(network: &Network) -> Self {
        let values = network.value_shapes.len();
        let mut producer = vec![None; values];
        let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); values];
        for (i, step) in network.steps.iter().enumerate() {
            for (o, &out) in step.outputs.iter().enumerate() {
                producer[out] = Some((i, o));
            }
            for (j, operand) in step.inputs.iter().enumerate() {
                if let Operand::Value(v) = *operand {
                    readers[v].push((i, j));
                }
            }
        }
        Self { producer, readers }
    }
}

/// Every launch of `plan` that binds `binding` takes an element offset for it (a Reshape, which
/// launches nothing, passes its input on unread: never).
fn takes_offset(plan: &OpPlan, binding: &Binding) -> bool {
    !plan.aliases_input
        && plan.launches.iter().all(|l| {
            let binds = l.inputs.contains(binding) || l.output == *binding;
            !binds || l.offsets.iter().any(|(b, _)| b == binding)
        })
}

/// Whether every step that reads `value` takes element offsets for it, directly or, for a view
/// of it (a Reshape's output, not a graph output), through every step that reads that view.
fn read_at_offsets(network: &Network, plans: &[OpPlan], uses: &Uses, value: usize) -> bool {
    !network.output_operands.contains(&Operand::Value(value))
        && uses.readers[value].iter().all(|&(r, j)| {
            takes_offset(&plans[r], &Binding::Input(j))
                || (plans[r].aliases_input
                    && read_at_offsets(network, plans, uses, network.steps[r].outputs[0]))
        })
}

/// Values that are views of another value's storage, made by no launch: with that value and the
/// element offset where they start in it. A Reshape's output always is (offset 0). So is a part
/// of a Split whose parts are contiguous runs of its input (every axis before the split's is 1:
/// [`contiguous_run`]),
/// where the part is not a graph output and every step that reads it, or a Reshape of it, takes
/// element offsets for it ([`read_at_offsets`]); its copy launch is skipped. Elsewhere a part
/// stays a strided copy. So is a Concat of consecutive parts of such a Split, in order, along its
/// axis (a merged head's boxes and scores, [`crate::graph`]'s `merge_sibling_convs`), and a Slice
/// that selects a contiguous run of its input (dist2bbox's halves of the box distances), on the
/// same conditions.
fn aliases(network: &Network, plans: &[OpPlan], uses: &Uses) -> Vec<Option<(usize, usize)>> {
    let mut alias_of = vec![None; network.value_shapes.len()];
    // Where each part of a Split starts in its input, when every part is a contiguous run of it.
    let split_runs = |step: &Step| -> Option<Vec<usize>> {
        let (Op::Split { axis, sizes }, Some(&Operand::Value(input))) =
            (&step.op, step.inputs.first())
        else {
            return None;
        };
        let shape = &network.value_shapes[input];
        let parts = crate::cpu::split_plan(shape, *axis, sizes).ok()?;
        parts
            .iter()
            .map(|part| contiguous_run(shape, part))
            .collect()
    };
    for (step, plan) in network.steps.iter().zip(plans) {
        let Some(&Operand::Value(input)) = step.inputs.first() else {
            continue;
        };
        if plan.aliases_input {
            alias_of[step.outputs[0]] = Some((input, 0));
        }
        match step.op {
            Op::Split { .. } => {
                let Some(runs) = split_runs(step) else {
                    continue;
                };
                for (&part, &offset) in step.outputs.iter().zip(&runs) {
                    if read_at_offsets(network, plans, uses, part) {
                        alias_of[part] = Some((input, offset));
                    }
                }
            }
            Op::Slice {
                ref starts,
                ref ends,
                ref axes,
                ref steps,
            } => {
                let shape = &network.value_shapes[input];
                let Ok(plan) = crate::cpu::slice_plan(shape, starts, ends, Some(axes), Some(steps))
                else {
                    continue;
                };
                let out = step.outputs[0];
                if let Some(offset) = contiguous_run(shape, &plan)
                    && read_at_offsets(network, plans, uses, out)
                {
                    alias_of[out] = Some((input, offset));
                }
            }
            Op::Concat(axis) => {
                let Some((split, first)) = uses.producer[input] else {
                    continue;
                };
                let split = &network.steps[split];
                let Op::Split {
                    axis: split_axis, ..
                } = split.op
                else {
                    continue;
                };
                let out = step.outputs[0];
                let consecutive_parts = step.inputs.iter().enumerate().all(|(k, operand)| {
                    split.outputs.get(first + k).map(|&p| Operand::Value(p)) == Some(*operand)
                });
                let rank = network.value_shapes[out].len();
                let same_axis = crate::normalize_axis("Concat", axis, rank).ok()
                    == crate::normalize_axis("Split", split_axis, rank).ok();
                if let Some(runs) = split_runs(split)
                    && consecutive_parts
                    && same_axis
                    && read_at_offsets(network, plans, uses, out)
                {
                    let Operand::Value(whole) = split.inputs[0] else {
                        unreachable!("split_runs reads a value")
                    };
                    alias_of[out] = Some((whole, runs[first]));
                }
            }
            _ => {}
        }
    }
    alias_of
}

/// Where a slice of `input` (each axis's start, step and count: `cpu::slice_plan`) starts, in
/// elements, when its elements are one contiguous run of the input in order.
fn contiguous_run(input: &[usize], plan: &[(i64, i64, usize)]) -> Option<usize> {
    let input_strides = crate::tensor::strides(input);
    let shape: Vec<usize> = plan.iter().map(|&(_, _, count)| count).collect();
    let contiguous = plan
        .iter()
        .zip(&input_strides)
        .zip(crate::tensor::strides(&shape))
        .all(|((&(_, step, count), &from), to)| count <= 1 || step * from as i64 == to as i64);
    contiguous.then(|| {
        plan.iter()
            .zip(&input_strides)
            .map(|(&(start, _, _), &stride)| start as usize * stride)
            .sum()
    })
}

/// Where Concat inputs already are in their slice of the Concat's output.
struct ConcatPlacements {
    /// Values stored in a Concat's output: that output and the element offset of the value's
    /// slice. A Split's input placed there holds its parts' slices.
    placed: Vec<Option<(usize, usize)>>,
    /// For each Concat input already in its slice of the Concat's output (placed there, or a
    /// part of a Split whose input is placed there), that output: the Concat copies nothing for it.
    in_slice: Vec<Option<usize>>,
}

/// Values a Concat's inputs can be computed straight into their slice of its output, with the
/// output and the slice's element offset. A value qualifies when the slices are contiguous (every
/// axis before the Concat's is 1), it is not the network's input, an output or a view
/// ([`aliases`]), the Concat reads it (and its views) once, and the step that writes it and every
/// other step that reads it (or its views) take element offsets for it (`Launch::offsets`); a
/// value made by a Concat is never placed (no nesting). Consecutive inputs that are all the parts
/// of one Split, in order, place that Split's input instead, at the first part's slice, on the
/// same conditions (the C2f blocks: their first convolution writes straight into the Concat's
/// output, and the Split and the Concat copy nothing for those slices). No step may then read
/// from and write into one Concat's output (a buffer bound to one launch both read-only and
/// writable is invalid), except a step reading one operand there, which it reads through its
/// output binding ([`read_through_output`]: a shortcut reading its C2f's part).
fn concat_placements(
    network: &Network,
    plans: &[OpPlan],
    uses: &Uses,
    alias_of: &[Option<(usize, usize)>],
) -> ConcatPlacements {
    let values = network.value_shapes.len();
    let mut placed: Vec<Option<(usize, usize)>> = vec![None; values];
    let mut in_slice = vec![None; values];
    // `v` and the values that are views of it, directly or through other views.
    let with_views = |v: usize| -> Vec<usize> {
        (0..values)
            .filter(|&w| {
                let mut w = w;
                loop {
                    if w == v {
                        return true;
                    }
                    match alias_of[w] {
                        Some((input, _)) => w = input,
                        None => return false,
                    }
                }
            })
            .collect()
    };
    // Whether `v` can be stored in `concat`'s output, `reads` times read by that Concat (step
    // `at`), given the placements so far.
    let qualifies = |placed: &[Option<(usize, usize)>], v: usize, at: usize, reads: usize| {
        let Some((made_by, o)) = uses.producer[v] else {
            return false;
        };
        let concat = network.steps[at].outputs[0];
        let family = with_views(v);
        let readers: Vec<(usize, usize)> = family
            .iter()
            .flat_map(|&w| uses.readers[w].iter().copied())
            .collect();
        // Whether a value is (or will be) stored in `concat`'s output.
        let stored = |mut w: usize| loop {
            if w == concat || family.contains(&w) || placed[w].is_some_and(|(c, _)| c == concat) {
                return true;
            }
            match alias_of[w] {
                Some((input, _)) => w = input,
                None => return false,
            }
        };
        let reads_and_writes = |s: usize| {
            let step = &network.steps[s];
            let stored_operands: Vec<usize> = (0..step.inputs.len())
                .filter(|&j| matches!(step.inputs[j], Operand::Value(w) if stored(w)))
                .collect();
            // One of an Add's operands, say, is read through the output binding.
            let through_output = stored_operands
                .iter()
                .any(|j| operands_read_through_output(step).contains(j));
            let reads = stored_operands.len() > usize::from(through_output);
            // Views are written by no launch.
            let writes = step
                .outputs
                .iter()
                .any(|&w| alias_of[w].is_none() && stored(w));
            reads && writes
        };
        v != 0
            && placed[v].is_none()
            && alias_of[v].is_none()
            && !network.output_operands.contains(&Operand::Value(v))
            && !matches!(network.steps[made_by].op, Op::Concat(_))
            && takes_offset(&plans[made_by], &Binding::Output(o))
            && readers.iter().filter(|&&(r, _)| r == at).count() == reads
            && readers
                .iter()
                .all(|&(r, j)| r == at || takes_offset(&plans[r], &Binding::Input(j)))
            && !reads_and_writes(made_by)
            && !readers.iter().any(|&(r, _)| r != at && reads_and_writes(r))
    };
    for (i, step) in network.steps.iter().enumerate() {
        let Op::Concat(axis) = step.op else { continue };
        let out = step.outputs[0];
        let shape = &network.value_shapes[out];
        let Ok(axis) = crate::normalize_axis("Concat", axis, shape.len()) else {
            continue;
        };
        if shape[..axis].iter().any(|&d| d != 1) {
            continue;
        }
        let inner: usize = shape[axis + 1..].iter().product();
        let slice = |operand: &Operand| match *operand {
            Operand::Value(v) => network.value_shapes[v][axis] * inner,
            Operand::Constant(c) => network.constants[c].shape()[axis] * inner,
        };
        let mut offset = 0;
        let mut k = 0;
        while k < step.inputs.len() {
            let start = offset;
            // The parts of one Split, all of them in order from here: its input in their place.
            let split = match step.inputs[k] {
                Operand::Value(v) => match uses.producer[v] {
                    Some((s, 0)) if matches!(network.steps[s].op, Op::Split { .. }) => Some(s),
                    _ => None,
                },
                Operand::Constant(_) => None,
            };
            if let Some(s) = split {
                let parts = &network.steps[s].outputs;
                let whole = match network.steps[s].inputs[0] {
                    Operand::Value(input) => Some(input),
                    Operand::Constant(_) => None,
                };
                let in_order = step.inputs[k..]
                    .iter()
                    .take(parts.len())
                    .copied()
                    .eq(parts.iter().map(|&p| Operand::Value(p)));
                // The Concat reads `whole` through the parts that are its views; the others
                // are copies of their slice of it.
                let views = parts.iter().filter(|&&p| alias_of[p].is_some()).count();
                if let (true, Some(whole)) = (in_order, whole)
                    && qualifies(&placed, whole, i, views)
                {
                    placed[whole] = Some((out, start));
                    for &part in parts {
                        in_slice[part] = Some(out);
                    }
                    offset += step.inputs[k..k + parts.len()]
                        .iter()
                        .map(slice)
                        .sum::<usize>();
                    k += parts.len();
                    continue;
                }
            }
            let operand = &step.inputs[k];
            offset += slice(operand);
            k += 1;
            if let Operand::Value(v) = *operand
                && qualifies(&placed, v, i, 1)
            {
                placed[v] = Some((out, start));
                in_slice[v] = Some(out);
            }
        }
    }
    ConcatPlacements { placed, in_slice }
}

/// Where [`place`] put storages.
struct Placement {
    /// Each storage's buffer.
    buffer_of: Vec<usize>,
    /// Each buffer's size.
    bytes: Vec<u64>,
    /// For each buffer, the steps (birth, last) of the storages it holds, in order.
    busy: Vec<Vec<(usize, usize)>>,
}

/// Whether a buffer that holds storages alive over `busy` (birth, last step) is idle at `step`.
fn idle_during(busy: &[(usize, usize)], step: usize) -> bool {
    busy.iter()
        .all(|&(birth, last)| step < birth || last < step)
}

/// Places `storages` (bytes, birth step, last step; in order of birth) greedily into the smallest
/// buffer free since before its birth.
fn place(storages: &[(u64, usize, usize)]) -> Placement {
    let mut buffer_of_storage = Vec::with_capacity(storages.len());
    let mut buffer_bytes: Vec<u64> = Vec::new();
    let mut occupied: Vec<Vec<(usize, usize)>> = Vec::new();
    for &(size, birth, last) in storages {
        let free = (0..buffer_bytes.len())
            .filter(|&b| occupied[b].last().is_none_or(|&(_, l)| l < birth))
            .filter(|&b| buffer_bytes[b] >= size)
            .min_by_key(|&b| buffer_bytes[b]);
        let b = free.unwrap_or_else(|| {
            buffer_bytes.push(size);
            occupied.push(Vec::new());
            buffer_bytes.len() - 1
        });
        occupied[b].push((birth, last));
        buffer_of_storage.push(b);
    }
    Placement {
        buffer_of: buffer_of_storage,
        bytes: buffer_bytes,
        busy: occupied,
    }
}

/// The values' storages, before any scratch memory is placed.
struct ValueStorages {
    /// For each value, its storage (`usize::MAX`: made by no step).
    storage_of: Vec<usize>,
    offset_of: Vec<usize>,
    alias_of: Vec<Option<(usize, usize)>>,
    in_slice: Vec<Option<usize>>,
    /// Each storage's bytes, birth step and last step, in order of birth.
    storages: Vec<(u64, usize, usize)>,
    largest_step_bytes: u64,
}

/// Where each value lives, as [`plan_buffers`] describes.
fn value_storages(network: &Network, plans: &[OpPlan], element_bytes: usize) -> ValueStorages {
    let values = network.value_shapes.len();
    let value_bytes = |shape: &[usize]| bytes(shape, element_bytes);
    let uses = Uses::of(network);
    let alias_of = aliases(network, plans, &uses);
    let ConcatPlacements { placed, in_slice } = concat_placements(network, plans, &uses, &alias_of);
    // storage_of[v]: the storage a value lives in; storages: (bytes, birth step, last reader).
    let mut storage_of = vec![usize::MAX; values];
    let mut offset_of = vec![0; values];
    let mut storages: Vec<(u64, usize, usize)> =
        vec![(value_bytes(&network.value_shapes[0]), 0, 0)];
    storage_of[0] = 0;
    let mut largest_step_bytes = 0;
    for (i, step) in network.steps.iter().enumerate() {
        let mut step_bytes = 0;
        for operand in &step.inputs {
            if let Operand::Value(v) = *operand {
                let storage = &mut storages[storage_of[v]];
                storage.2 = storage.2.max(i);
                step_bytes += value_bytes(&network.value_shapes[v]);
            }
        }
        let mut new_storage = |value: usize| {
            storages.push((value_bytes(&network.value_shapes[value]), i, i));
            storages.len() - 1
        };
        for &out in &step.outputs {
            step_bytes += value_bytes(&network.value_shapes[out]);
            if storage_of[out] != usize::MAX {
                continue; // a Concat's output, born with the first value placed in it
            }
            storage_of[out] = match (alias_of[out], placed[out]) {
                (Some((input, offset)), _) => {
                    offset_of[out] = offset_of[input] + offset;
                    storage_of[input]
                }
                (None, Some((concat, offset))) => {
                    if storage_of[concat] == usize::MAX {
                        storage_of[concat] = new_storage(concat);
                    }
                    offset_of[out] = offset;
                    storage_of[concat]
                }
                (None, None) => new_storage(out),
            };
        }
        largest_step_bytes = largest_step_bytes.max(step_bytes);
    }
    for operand in &network.output_operands {
        if let Operand::Value(v) = *operand {
            storages[storage_of[v]].2 = usize::MAX;
        }
    }
    ValueStorages {
        storage_of,
        offset_of,
        alias_of,
        in_slice,
        storages,
        largest_step_bytes,
    }
}

/// Assigns values to buffers. A value's storage is born at the step that produces it and dies
/// after the last step that reads it (never, for outputs); a view (a Reshape's output, a Split
/// part read in place: [`aliases`]) shares its input's storage, which then lives until the
/// view's last reader, and a value placed in a Concat's output shares that output's storage,
/// which is then born with the first value placed in it; a step's scratch memory (split-k
/// partial sums) is a storage alive during that step. Storages are placed greedily, in order of
/// birth, into the smallest free buffer that fits ([`place`]), in two ways of which the smaller
/// total is kept: scratch among the values, or values first and each scratch then into a buffer
/// idle during its step (or else one more buffer that all such steps share). Neither is smaller
/// on every network (YOLOv8n 640: the first; LineCheck's 320 model: the second). Tensors'
/// elements take `element_bytes` each.
pub(crate) fn plan_buffers(
    network: &Network,
    plans: &[OpPlan],
    element_bytes: usize,
) -> BufferPlan {
    let values = value_storages(network, plans, element_bytes);
    let storages = &values.storages;
    let scratch: Vec<(usize, u64)> = plans
        .iter()
        .enumerate()
        .filter(|(_, op)| op.scratch_bytes > 0)
        .map(|(i, op)| (i, op.scratch_bytes.next_multiple_of(4)))
        .collect();
    let mut scratch_of = vec![None; plans.len()];

    // Scratch among the values: each one a storage of its step, after the step's outputs.
    let mut mixed = storages.to_vec();
    let mut scratch_storage = Vec::with_capacity(scratch.len());
    for &(step, size) in &scratch {
        let at = mixed.partition_point(|&(_, birth, _)| birth <= step);
        mixed.insert(at, (size, step, step));
        scratch_storage.push(at); // later insertions are at later steps: this index holds
    }
    let Placement {
        buffer_of: mixed_buffer_of,
        bytes: mixed_bytes,
        ..
    } = place(&mixed);

    // Values first.
    let Placement {
        buffer_of: buffer_of_storage,
        bytes: mut buffer_bytes,
        busy: occupied,
    } = place(storages);
    let shared = buffer_bytes.len();
    let mut shared_bytes = 0;
    for &(step, size) in &scratch {
        let idle = (0..buffer_bytes.len())
            .filter(|&b| buffer_bytes[b] >= size && idle_during(&occupied[b], step))
            .min_by_key(|&b| buffer_bytes[b]);
        scratch_of[step] = Some(idle.unwrap_or_else(|| {
            shared_bytes = shared_bytes.max(size);
            shared
        }));
    }
    if shared_bytes > 0 {
        buffer_bytes.push(shared_bytes);
    }

    let (buffer_of_storage, buffer_bytes) =
        if mixed_bytes.iter().sum::<u64>() < buffer_bytes.iter().sum::<u64>() {
            let mut is_scratch = vec![false; mixed.len()];
            for (&(step, _), &at) in scratch.iter().zip(&scratch_storage) {
                is_scratch[at] = true;
                scratch_of[step] = Some(mixed_buffer_of[at]);
            }
            // The value storages, in their order, are the rest of `mixed`.
            let values = mixed_buffer_of
                .iter()
                .zip(&is_scratch)
                .filter(|&(_, &scratch)| !scratch)
                .map(|(&b, _)| b)
                .collect();
            (values, mixed_bytes)
        } else {
            (buffer_of_storage, buffer_bytes)
        };
    BufferPlan {
        buffer_of: values
            .storage_of
            .iter()
            .map(|&s| buffer_of_storage.get(s).copied())
            .collect(),
        offset_of: values.offset_of,
        alias_of: values.alias_of.iter().map(|a| a.map(|(v, _)| v)).collect(),
        placed_in: values.in_slice,
        scratch_of,
        buffer_bytes,
        largest_step_bytes: values.largest_step_bytes,
    }
}

/// A graph output: a value computed on the GPU, copied into its mappable buffer in the
/// inference's own submission (made once: creating mappable memory per frame is slow), or a
/// constant of the network.
enum OutputSource {
    Gpu { value: usize, staging: wgpu::Buffer },
    Constant(usize),
}

/// A camera frame's pixels on the GPU, kept between frames, and the letterbox launch from them.
struct FrameInput {
    /// At least the frame's bytes: grown only when a larger frame comes.
    pixels: wgpu::Buffer,
    /// Natively, the mappable buffer the host writes each frame into, on all cores, before it is
    /// copied into `pixels` (`write_buffer` would make a staging buffer for every frame and copy
    /// on one thread: most of a frame's own time on the H100, BENCHMARKS.md). wgpu places it in
    /// device-local, host-visible memory where the GPU has some (the H100's BAR), so this write
    /// is the frame's transfer across PCIe and the copy after it stays on the GPU. In the browser
    /// `write_buffer` stays: WebGPU copies out of wasm memory once anyway.
    #[cfg(not(target_arch = "wasm32"))]
    staging: wgpu::Buffer,
    /// The staging buffer's mapping, asked for as soon as its copy is submitted; `None` while it
    /// is mapped.
    #[cfg(not(target_arch = "wasm32"))]
    remap: Option<crate::gpu::MapRequest>,
    /// What `launch` letterboxes.
    letterbox: Letterbox,
    launch: PreparedLaunch,
}

/// A network prepared on one GPU backend. Built by [`GpuBackend::prepare`].
pub struct GpuNetwork<'a> {
    backend: &'a GpuBackend,
    network: &'a Network,
    pool: Vec<wgpu::Buffer>,
    plan: BufferPlan,
    launches: Vec<PreparedLaunch>,
    /// For each launch, its step's node, its kernel and the kernel's entry point, for profiles
    /// and [`GpuNetwork::launch_entries`].
    launch_names: Vec<(String, &'static str, &'static str)>,
    /// Where each graph output comes from.
    outputs: Vec<OutputSource>,
    /// Decoding and NMS of the first output, bound at the first detection (boxed: a
    /// `GpuNetwork` stays small beside the CPU executor in an enum).
    detections: std::cell::OnceCell<Box<DetectionStage>>,
    /// The last frame's pixels and its letterbox launch, kept for the next frame.
    frame: std::cell::RefCell<Option<FrameInput>>,
    // Kept alive for the bind groups that read them.
    _constants: Vec<std::cell::OnceCell<wgpu::Buffer>>,
}

impl GpuBackend {
    /// Uploads `network`'s weights, plans its buffers and binds every launch, once.
    pub fn prepare<'a>(&'a self, network: &'a Network) -> Result<GpuNetwork<'a>, EngineError> {
        for step in &network.steps {
            self.check_precision(&step.op)?;
        }
        let element_bytes = self.precision().element_bytes();
        let plans = plan_steps(network, self.conv_kernels.get(), element_bytes)?;
        let plan = plan_buffers(network, &plans, element_bytes);
        let pool: Vec<wgpu::Buffer> = plan.buffer_bytes.iter().map(|&b| self.scratch(b)).collect();
        // Uploaded when a launch first binds them: the tensor-core convolutions read their
        // weights packed, from buffers of their own, so their unpacked weights never are.
        let constants: Vec<std::cell::OnceCell<wgpu::Buffer>> = network
            .constants
            .iter()
            .map(|_| Default::default())
            .collect();
        let constant = |c: usize| constants[c].get_or_init(|| self.upload(&network.constants[c]));
        let mut launches = Vec::new();
        let mut launch_names = Vec::new();
        for (step_index, (step, op_plan)) in network.steps.iter().zip(&plans).enumerate() {
            for launch in op_plan.launches.iter().filter(|l| plan.runs(step, l)) {
                let mut launch = launch.clone();
                for (binding, word) in &launch.offsets {
                    if let Some(v) = bound_value(step, binding) {
                        launch.params[*word] =
                            launch.params[*word].wrapping_add(plan.offset_of[v] as u32);
                    }
                }
                read_through_output(step, &mut launch, |v| plan.buffer(v));
                launch_names.push((step.node.clone(), launch.kernel.name, launch.entry));
                launches.push(self.prepare_launch(&launch, |binding| {
                    match binding {
                        Binding::Input(i) => match step.inputs[*i] {
                            Operand::Value(v) => &pool[plan.buffer(v)],
                            Operand::Constant(c) => constant(c),
                        },
                        Binding::Constant(c) => constant(*c),
                        Binding::Output(o) => &pool[plan.buffer(step.outputs[*o])],
                        Binding::Scratch => {
                            &pool[plan.scratch_of[step_index]
                                .expect("a step that binds Scratch has scratch memory")]
                        }
                        Binding::Aux(_) | Binding::Absent => unreachable!("owned by the launch"),
                    }
                }));
            }
        }
        let outputs = network
            .output_operands
            .iter()
            .map(|o| match *o {
                Operand::Value(value) => OutputSource::Gpu {
                    value,
                    staging: self
                        .ctx
                        .staging(self.tensor_bytes(network.value_shapes[value].iter().product())),
                },
                Operand::Constant(c) => OutputSource::Constant(c),
            })
            .collect();
        Ok(GpuNetwork {
            backend: self,
            outputs,
            detections: std::cell::OnceCell::new(),
            frame: std::cell::RefCell::new(None),
            network,
            pool,
            plan,
            launches,
            launch_names,
            _constants: constants,
        })
    }
}

impl GpuNetwork<'_> {
    /// Bytes of GPU memory the intermediate tensors (and the input) take, split-k partial sums
    /// included.
    pub fn activation_bytes(&self) -> u64 {
        self.plan.peak_bytes()
    }

    /// The largest single step's inputs plus outputs, in bytes: no plan can go below it.
    pub fn largest_step_bytes(&self) -> u64 {
        self.plan.largest_step_bytes
    }

    /// Kernel launches (dispatches) per inference.
    pub fn launch_count(&self) -> usize {
        self.launches.len()
    }

    /// Each launch's step (its node's name) and kernel entry point (`"add_from_out"` of
    /// `binary.wgsl`, say), in the order they run: what tests check a plan's launches by.
    pub fn launch_entries(&self) -> impl Iterator<Item = (&str, &'static str)> + '_ {
        self.launch_names
            .iter()
            .map(|(node, _, entry)| (node.as_str(), *entry))
    }

    /// GPU milliseconds of one inference on the input already in place (every launch in one
    /// pass, as `execute` runs them), from timestamp queries; `None` where the device has no
    /// `TIMESTAMP_QUERY`.
    pub async fn gpu_ms(&self) -> Result<Option<f64>, EngineError> {
        Ok(self
            .timed_passes(&[&self.launches])
            .await?
            .map(|times| times[0]))
    }

    /// Where the time goes: each launch in a pass of its own between two timestamps. Separate
    /// passes serialise the launches, so the sum is above [`GpuNetwork::gpu_ms`].
    pub async fn profile(&self) -> Result<Option<Vec<LaunchTime>>, EngineError> {
        let passes: Vec<&[PreparedLaunch]> = self.launches.chunks(1).collect();
        let Some(times) = self.timed_passes(&passes).await? else {
            return Ok(None);
        };
        Ok(Some(
            self.launch_names
                .iter()
                .zip(times)
                .map(|((node, kernel, _), ms)| LaunchTime {
                    node: node.clone(),
                    kernel,
                    ms,
                })
                .collect(),
        ))
    }

    /// Runs `passes` in one submission with timestamps around each; their GPU milliseconds.
    async fn timed_passes(
        &self,
        passes: &[&[PreparedLaunch]],
    ) -> Result<Option<Vec<f64>>, EngineError> {
        let ctx = self.backend.context();
        if !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Ok(None);
        }
        let mut times = Vec::with_capacity(passes.len());
        // A query set holds at most 4,096 timestamps.
        for chunk in passes.chunks(2048) {
            let count = 2 * chunk.len() as u32;
            let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: u64::from(count) * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            for (i, pass) in chunk.iter().enumerate() {
                self.backend
                    .record(&mut encoder, *pass, Some((&queries, 2 * i as u32)));
            }
            encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
            ctx.queue.submit([encoder.finish()]);
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(
                &ctx.read_back(&resolved, u64::from(count) * 8).await?,
            );
            let ns_per_tick = f64::from(ctx.queue.get_timestamp_period());
            times.extend(
                ticks
                    .chunks(2)
                    .map(|t| t[1].saturating_sub(t[0]) as f64 * ns_per_tick / 1e6),
            );
        }
        Ok(Some(times))
    }
}

/// GPU time of one launch of a prepared network.
#[derive(Debug, Clone)]
pub struct LaunchTime {
    /// The ONNX node the launch computes (part of).
    pub node: String,
    /// The kernel's name (`Kernel::name`).
    pub kernel: &'static str,
    pub ms: f64,
}

impl Executor for GpuNetwork<'_> {
    fn name(&self) -> String {
        format!("{} (resident)", self.backend.name())
    }

    /// One inference: write the input, run every launch, read back the outputs.
    async fn execute(&self, input: Tensor) -> Result<Vec<Tensor>, EngineError> {
        let network = self.network;
        if input.shape() != network.input_shape.as_slice() {
            return Err(shape_error(
                "Network",
                format!(
                    "input {:?} must have shape {:?}",
                    input.shape(),
                    network.input_shape
                ),
            )
            .into());
        }
        let ctx = self.backend.context();
        ctx.queue.write_buffer(
            &self.pool[self.plan.buffer(0)],
            0,
            &self.backend.encode(input.data()),
        );
        self.submit_network(None, |encoder| self.record_output_copies(encoder));
        self.read_outputs().await
    }

    /// Uploads the pixels (4 bytes each, a quarter of the float input) and letterboxes them on
    /// the GPU, in the same submission as the network.
    async fn execute_rgba(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
    ) -> Result<Vec<Tensor>, EngineError> {
        self.submit_network(
            Some(&*self.write_frame(rgba, letterbox).await?),
            |encoder| self.record_output_copies(encoder),
        );
        self.read_outputs().await
    }

    /// Letterbox, network, decoding and NMS, submitted together; reads back the kept boxes, and
    /// the raw outputs only where `keep_raw`.
    async fn detect_rgba(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
        layout: OutputLayout,
        options: NmsOptions,
        keep_raw: bool,
    ) -> Result<(Vec<RawDetection>, Option<Tensor>), EngineError> {
        let Some(stage) = self.detection_stage(layout)? else {
            // A constant or end-to-end output: nothing to decode on the GPU.
            let raw = self.execute_rgba(rgba, letterbox).await?.swap_remove(0);
            return decode_on_host(raw, layout, options, keep_raw);
        };
        let mut bytes = None;
        self.submit_network(
            Some(&*self.write_frame(rgba, letterbox).await?),
            |encoder| {
                bytes = Some(stage.record(self.backend, encoder, options));
                if keep_raw {
                    self.record_output_copies(encoder);
                }
            },
        );
        let bytes = bytes.expect("the last chunk records the detection stage");
        let detections = stage.read(self.backend, bytes).await?;
        let raw = if keep_raw {
            Some(self.read_outputs().await?.swap_remove(0))
        } else {
            None
        };
        Ok((detections, raw))
    }
}

impl GpuNetwork<'_> {
    /// The decoding stage of the first output, bound at the first call; `None` where that
    /// output is a constant of the model or an end-to-end head's (no NMS to run).
    fn detection_stage(
        &self,
        layout: OutputLayout,
    ) -> Result<Option<&DetectionStage>, EngineError> {
        let Some(OutputSource::Gpu { value, .. }) = self.outputs.first() else {
            return Ok(None);
        };
        // An end-to-end head's few rows are read back whole: the threshold is all there is to do.
        if let OutputLayout::EndToEnd { .. } = layout {
            return Ok(None);
        }
        let len: usize = self.network.value_shapes[*value].iter().product();
        layout
            .check(len)
            .map_err(|e| shape_error("Detections", e.to_string()))?;
        if self.detections.get().is_none() {
            let source = &self.pool[self.plan.buffer(*value)];
            let stage =
                DetectionStage::new(self.backend, layout, source, self.plan.offset_of[*value])?;
            // Single-threaded: nothing else can have set it since the check.
            let _ = self.detections.set(Box::new(stage));
        }
        let stage = self.detections.get().expect("set above");
        if stage.layout() != layout {
            return Err(shape_error(
                "Detections",
                format!(
                    "this network's output is decoded as {}, not {layout}",
                    stage.layout()
                ),
            )
            .into());
        }
        Ok(Some(stage))
    }

    /// Writes `rgba` into the kept pixel buffer and returns the letterbox launch from it into the
    /// network's input. The buffer is made again only for a larger frame, the launch (its
    /// uniform and bind group) only for another letterbox: frames of one camera allocate nothing.
    async fn write_frame(
        &self,
        rgba: &[u8],
        letterbox: &Letterbox,
    ) -> Result<std::cell::Ref<'_, PreparedLaunch>, EngineError> {
        let expected = [
            1,
            3,
            letterbox.input_height as usize,
            letterbox.input_width as usize,
        ];
        let pixels = letterbox.source_width as usize * letterbox.source_height as usize;
        if self.network.input_shape != expected || rgba.len() != pixels * 4 {
            return Err(shape_error(
                "Network",
                format!(
                    "a letterbox to {expected:?} of {} bytes for a {:?} input",
                    rgba.len(),
                    self.network.input_shape
                ),
            )
            .into());
        }
        // The last frame's copy out of the staging buffer must be done before this one is
        // written there (the wait ended with the last frame's readback, so this rarely waits).
        #[cfg(not(target_arch = "wasm32"))]
        let remap = self
            .frame
            .borrow_mut()
            .as_mut()
            .and_then(|f| f.remap.take());
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(request) = remap {
            self.backend.context().mapped(request).await?;
        }
        let mut frame = self.frame.borrow_mut();
        let bytes = rgba.len() as u64;
        if frame.as_ref().is_none_or(|f| f.pixels.size() < bytes) {
            let pixels = self.backend.scratch(bytes);
            let launch = self.letterbox_launch(&pixels, letterbox);
            *frame = Some(FrameInput {
                #[cfg(not(target_arch = "wasm32"))]
                staging: self
                    .backend
                    .context()
                    .device
                    .create_buffer(&wgpu::BufferDescriptor {
                        label: Some("frame staging"),
                        size: pixels.size(),
                        usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: true,
                    }),
                #[cfg(not(target_arch = "wasm32"))]
                remap: None,
                pixels,
                letterbox: *letterbox,
                launch,
            });
        }
        let kept = frame.as_mut().expect("made above");
        if kept.letterbox != *letterbox {
            kept.launch = self.letterbox_launch(&kept.pixels, letterbox);
            kept.letterbox = *letterbox;
        }
        self.upload_frame(kept, rgba)?;
        drop(frame);
        Ok(std::cell::Ref::map(self.frame.borrow(), |f| {
            &f.as_ref().expect("written above").launch
        }))
    }

    /// Writes `rgba` into the mapped staging buffer, a part per thread, and submits its copy
    /// into the pixel buffer, which the frame's own submission follows; then asks for the
    /// staging buffer mapped again.
    #[cfg(not(target_arch = "wasm32"))]
    fn upload_frame(&self, kept: &mut FrameInput, rgba: &[u8]) -> Result<(), EngineError> {
        let ctx = self.backend.context();
        let bytes = rgba.len();
        let part = bytes
            .div_ceil(crate::cpu::threads::worker_count())
            .next_multiple_of(wgpu::MAP_ALIGNMENT as usize);
        let views = (0..bytes)
            .step_by(part)
            .map(|at| {
                let range = at as u64..(at + part).min(bytes) as u64;
                kept.staging
                    .get_mapped_range_mut(range)
                    .map(std::sync::Mutex::new)
                    .map_err(|e| EngineError::Readback(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::cpu::threads::run_tasks(views.len(), &|index| {
            let mut view = views[index]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = index * part;
            let len = view.len();
            view.copy_from_slice(&rgba[at..at + len]);
        });
        drop(views);
        kept.staging.unmap();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&kept.staging, 0, &kept.pixels, 0, bytes as u64);
        ctx.queue.submit([encoder.finish()]);
        kept.remap = Some(crate::gpu::GpuContext::map_request(
            kept.staging.slice(..),
            wgpu::MapMode::Write,
        ));
        Ok(())
    }

    #[cfg(target_arch = "wasm32")]
    fn upload_frame(&self, kept: &mut FrameInput, rgba: &[u8]) -> Result<(), EngineError> {
        self.backend
            .context()
            .queue
            .write_buffer(&kept.pixels, 0, rgba);
        Ok(())
    }

    /// The letterbox of `letterbox`'s pixels in `pixels` into the network's input.
    fn letterbox_launch(&self, pixels: &wgpu::Buffer, letterbox: &Letterbox) -> PreparedLaunch {
        let input = &self.pool[self.plan.buffer(0)];
        self.backend
            .prepare_launch(&launch::letterbox(letterbox), |binding| match binding {
                Binding::Input(0) => pixels,
                Binding::Output(0) => input,
                _ => unreachable!("the letterbox reads pixels and writes the input"),
            })
    }

    /// Records `first` (if any) and the whole network, then `last`, and submits them in chunks,
    /// each twice as long as the one before: the GPU runs the first launches while the host
    /// records the next, instead of idling until every launch is recorded. Recording a launch
    /// takes about half as long as the GPU takes to run one (H100), so doubling keeps the GPU fed.
    fn submit_network(
        &self,
        first: Option<&PreparedLaunch>,
        last: impl FnOnce(&mut wgpu::CommandEncoder),
    ) {
        let launches: Vec<&PreparedLaunch> = first.into_iter().chain(&self.launches).collect();
        let (mut rest, mut length) = (&launches[..], FIRST_SUBMISSION_LAUNCHES);
        while rest.len() > length {
            let (chunk, later) = rest.split_at(length);
            self.submit_launches(chunk, |_| {});
            (rest, length) = (later, 2 * length);
        }
        self.submit_launches(rest, last);
    }

    /// Records `launches`, then `last`, into one command buffer and submits it.
    fn submit_launches(
        &self,
        launches: &[&PreparedLaunch],
        last: impl FnOnce(&mut wgpu::CommandEncoder),
    ) {
        let ctx = self.backend.context();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        self.backend
            .record(&mut encoder, launches.iter().copied(), None);
        last(&mut encoder);
        ctx.queue.submit([encoder.finish()]);
    }

    /// One inference on the input already in place, without reading anything back: its wall
    /// clock against [`GpuNetwork::gpu_ms`] is what recording and submitting cost.
    pub async fn run_resident(&self) -> Result<(), EngineError> {
        self.submit_network(None, |_| {});
        self.backend.context().submitted_work_done().await
    }

    /// Records the copies of the outputs into their readback buffers.
    fn record_output_copies(&self, encoder: &mut wgpu::CommandEncoder) {
        for output in &self.outputs {
            if let OutputSource::Gpu { value, staging } = output {
                let source = &self.pool[self.plan.buffer(*value)];
                encoder.copy_buffer_to_buffer(source, 0, staging, 0, staging.size());
            }
        }
    }

    /// The outputs, once the submission with their copies is done.
    async fn read_outputs(&self) -> Result<Vec<Tensor>, EngineError> {
        let network = self.network;
        let ctx = self.backend.context();
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for (output, (_, shape)) in self.outputs.iter().zip(&network.outputs) {
            outputs.push(match output {
                OutputSource::Gpu { staging, .. } => {
                    let len: usize = shape.iter().product();
                    let data = if len == 0 {
                        Vec::new()
                    } else {
                        let bytes = ctx.read_mapped(staging, staging.size()).await?;
                        self.backend.decode(&bytes, len)
                    };
                    Tensor::new(shape.clone(), data)?
                }
                OutputSource::Constant(c) => network.constants[*c].clone(),
            });
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mini_detector() -> Network {
        let bytes = include_bytes!("../../../tests/fixtures/detector/mini_detector.onnx");
        Network::from_onnx(&crate::onnx::parse_model(bytes).unwrap()).unwrap()
    }

    /// LineCheck's shipped model: YOLOv8's C2f blocks, with and without shortcuts.
    fn shipped_model() -> Network {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/linecheck-defects-320.onnx"
        );
        let bytes = std::fs::read(path).unwrap();
        Network::from_onnx(&crate::onnx::parse_model(&bytes).unwrap()).unwrap()
    }

    /// Replays `network` over memory regions (buffer, start, end) as the launches that `plan`
    /// keeps run: a write evicts the values it overlaps, and every read must find the value it
    /// expects still in a region that holds it. A view renames (part of) its input; a Concat's
    /// inputs in their slices must be there already. No launch may read and write one buffer.
    /// `launch` of `step` as the resident network binds it under `plan`: an operand in its
    /// output's buffer read through the output binding.
    fn as_bound(step: &Step, launch: &Launch, plan: &BufferPlan) -> Launch {
        let mut launch = launch.clone();
        read_through_output(step, &mut launch, |v| plan.buffer(v));
        launch
    }

    fn replay(network: &Network, plans: &[OpPlan], plan: &BufferPlan) {
        let len = |v: usize| network.value_shapes[v].iter().product::<usize>().max(1);
        let region = |v: usize| {
            let start = plan.offset_of[v];
            (plan.buffer(v), start, start + len(v))
        };
        type Holds = Vec<((usize, usize, usize), usize)>;
        let held = |holds: &Holds, (b, start, end): (usize, usize, usize), roots: &[usize]| {
            holds
                .iter()
                .any(|&((hb, hs, he), r)| hb == b && hs <= start && end <= he && roots.contains(&r))
        };
        let write = |holds: &mut Holds, (b, start, end): (usize, usize, usize), value| {
            holds.retain(|&((hb, hs, he), _)| hb != b || he <= start || end <= hs);
            holds.push(((b, start, end), value));
        };
        // root[v]: the value whose write put v's elements where they are.
        let mut root: Vec<usize> = (0..network.value_shapes.len()).collect();
        // For a Split's part, its Split's input.
        let mut whole: Vec<Option<usize>> = vec![None; network.value_shapes.len()];
        let mut holds: Holds = vec![(region(0), 0)];
        for (i, (step, op_plan)) in network.steps.iter().zip(plans).enumerate() {
            for operand in &step.inputs {
                if let Operand::Value(v) = *operand {
                    assert!(
                        held(&holds, region(v), &[root[v]]),
                        "step {} reads an overwritten value",
                        step.node
                    );
                }
            }
            for launch in op_plan.launches.iter().filter(|l| plan.runs(step, l)) {
                let launch = as_bound(step, launch, plan);
                let written = bound_value(step, &launch.output).map(|v| plan.buffer(v));
                for input in launch.inputs.iter().filter_map(|b| bound_value(step, b)) {
                    assert_ne!(
                        Some(plan.buffer(input)),
                        written,
                        "step {}: a launch reads and writes one buffer",
                        step.node
                    );
                }
            }
            // Split-k partial sums fill a buffer that none of the step's operands may share.
            if let Some(b) = plan.scratch_of[i] {
                let operands = step.inputs.iter().filter_map(|o| match *o {
                    Operand::Value(v) => Some(v),
                    Operand::Constant(_) => None,
                });
                for v in operands.chain(step.outputs.iter().copied()) {
                    assert_ne!(
                        plan.buffer(v),
                        b,
                        "step {}: scratch shares a buffer",
                        step.node
                    );
                }
                holds.retain(|&((hb, _, _), _)| hb != b);
            }
            if let Op::Concat(axis) = step.op {
                let out = step.outputs[0];
                let shape = &network.value_shapes[out];
                let axis = crate::normalize_axis("Concat", axis, shape.len()).unwrap();
                let inner: usize = shape[axis + 1..].iter().product();
                let (b, start, end) = region(out);
                let mut slice = start;
                for operand in &step.inputs {
                    let Operand::Value(v) = *operand else {
                        unreachable!("no constant Concat inputs on image data")
                    };
                    let size = network.value_shapes[v][axis] * inner;
                    if plan.placed_in[v] == Some(out) {
                        let mut roots = vec![root[v]];
                        roots.extend(whole[v].map(|w| root[w]));
                        assert!(
                            held(&holds, (b, slice, slice + size), &roots),
                            "step {}: an input is not in its slice",
                            step.node
                        );
                    }
                    slice += size;
                }
                // What was computed in place stays where it is, inside the output.
                let kept: Holds = holds
                    .iter()
                    .filter(|&&((hb, hs, he), _)| hb == b && start <= hs && he <= end)
                    .copied()
                    .collect();
                write(&mut holds, region(out), out);
                holds.extend(kept);
                continue;
            }
            for &out in &step.outputs {
                if let (Op::Split { .. }, Operand::Value(input)) = (&step.op, step.inputs[0]) {
                    whole[out] = Some(input);
                }
                match plan.alias_of[out] {
                    Some(input) => root[out] = root[input],
                    None => write(&mut holds, region(out), out),
                }
            }
        }
        for operand in &network.output_operands {
            if let Operand::Value(v) = *operand {
                assert!(
                    held(&holds, region(v), &[root[v]]),
                    "an output was overwritten"
                );
            }
        }
        assert!(plan.peak_bytes() >= plan.largest_step_bytes);
    }

    #[test]
    fn no_value_is_overwritten_before_its_last_reader() {
        // Split-k as the per-layer choice makes and in many slices: the planner keeps scratch
        // among the values for the first, values first for the second.
        // Both networks have C2f blocks with shortcuts.
        for network in [mini_detector(), shipped_model()] {
            for conv_kernels in [
                ConvKernels::Tiled,
                ConvKernels::TiledWhole,
                ConvKernels::Split {
                    tiling: 1,
                    slices: 16,
                },
            ] {
                let plans = plan_steps(&network, conv_kernels, 4).unwrap();
                let plan = plan_buffers(&network, &plans, 4);
                replay(&network, &plans, &plan);
                assert!(
                    plan.placed_in.iter().any(Option::is_some),
                    "the Concats take some inputs in place"
                );
                // A shortcut (its Add fused into a convolution) reads a Split part in place and
                // writes into the Concat that holds the part.
                let read_and_written_in_place = network.steps.iter().any(|s| {
                    matches!(s.op, Op::Conv { residual: true, .. })
                        && plan.placed_in[s.outputs[0]].is_some()
                        && s.inputs
                            .iter()
                            .any(|o| matches!(*o, Operand::Value(v) if plan.alias_of[v].is_some()))
                });
                assert!(read_and_written_in_place);
                assert_eq!(
                    plan.scratch_of.iter().any(Option::is_some),
                    conv_kernels != ConvKernels::TiledWhole,
                    "some convolutions are split along k"
                );
                let every_value: u64 = network
                    .value_shapes
                    .iter()
                    .zip(&plan.buffer_of)
                    .filter(|(_, b)| b.is_some())
                    .map(|(s, _)| bytes(s, 4))
                    .sum();
                // Without the 16 slices' partial sums, which outweigh the values.
                if conv_kernels == ConvKernels::TiledWhole {
                    assert!(
                        plan.peak_bytes() * 2 < every_value,
                        "sharing by liveness must save memory: {} of {every_value}",
                        plan.peak_bytes()
                    );
                }
            }
        }
    }

    #[test]
    fn split_k_keeps_the_plan_within_twice_the_largest_step() {
        for network in [mini_detector(), shipped_model()] {
            for element_bytes in [4, 2] {
                let plans = plan_steps(&network, ConvKernels::Tiled, element_bytes).unwrap();
                let plan = plan_buffers(&network, &plans, element_bytes);
                assert!(
                    plan.peak_bytes() <= 2 * plan.largest_step_bytes,
                    "{} bytes of activations, {} in the largest step",
                    plan.peak_bytes(),
                    plan.largest_step_bytes
                );
                assert!(
                    plan.scratch_of.iter().any(Option::is_some),
                    "split-k stays where it fits"
                );
                replay(&network, &plans, &plan);
            }
        }
        // Unbounded, the shipped model's partial sums took it to 2.7x.
        let network = shipped_model();
        let plans = plan_each(&network, ConvKernels::Tiled, |_| u64::MAX).unwrap();
        let plan = plan_buffers(&network, &plans, 4);
        assert!(plan.peak_bytes() > 2 * plan.largest_step_bytes);
    }

    #[test]
    fn merged_convolutions_split_in_place_and_upsamples_and_pools_write_into_their_concats() {
        // Concats of a level's boxes and scores, as Ultralytics exports write them: the mini
        // detector's last level has its class branch first, so there the two are not adjacent in
        // the merged output; the shipped model concatenates each branch's levels instead.
        for (network, merged, adjacent) in [(mini_detector(), 3, 2), (shipped_model(), 3, 0)] {
            let plans = plan_steps(&network, ConvKernels::Tiled, 4).unwrap();
            let plan = plan_buffers(&network, &plans, 4);
            let uses = Uses::of(&network);
            // The loader's merged sibling convolutions: their Split launches nothing, each
            // branch reads its channels where the merged convolution wrote them, and a Concat
            // of adjacent branches, in order, is that run of the merged output.
            let (mut splits, mut concat_views) = (0, 0);
            for (i, (step, op_plan)) in network.steps.iter().zip(&plans).enumerate() {
                if !(matches!(step.op, Op::Split { .. }) && network.steps[i - 1].node == step.node)
                {
                    continue;
                }
                splits += 1;
                assert!(step.outputs.iter().all(|&p| plan.alias_of[p].is_some()));
                assert!(!op_plan.launches.iter().any(|l| plan.runs(step, l)));
                let Operand::Value(merged_output) = step.inputs[0] else {
                    panic!("a Split of a constant")
                };
                for &(r, _) in step.outputs.iter().flat_map(|&p| &uses.readers[p]) {
                    let concat = &network.steps[r];
                    let Op::Concat(_) = concat.op else { continue };
                    let view = concat.outputs[0];
                    let Some(whole) = plan.alias_of[view] else {
                        continue;
                    };
                    concat_views += 1;
                    assert_eq!(whole, merged_output);
                    let Operand::Value(first) = concat.inputs[0] else {
                        panic!("a Concat of a constant")
                    };
                    assert_eq!(plan.offset_of[view], plan.offset_of[first]);
                    assert!(!plans[r].launches.iter().any(|l| plan.runs(concat, l)));
                }
            }
            assert_eq!(splits, merged);
            // Each such Concat reads two parts: counted once per part.
            assert_eq!(concat_views, 2 * adjacent);
            // Every nearest upsampling writes into the Concat that reads it, and so do SPPF's
            // pools, each reading the one before it there through its output binding.
            let placed = |op: fn(&Op) -> bool| {
                network
                    .steps
                    .iter()
                    .filter(|s| op(&s.op))
                    .map(|s| plan.placed_in[s.outputs[0]].is_some())
                    .collect::<Vec<_>>()
            };
            let resizes = placed(|op| matches!(op, Op::Resize { .. }));
            assert!(
                !resizes.is_empty() && resizes.iter().all(|&p| p),
                "{resizes:?}"
            );
            assert_eq!(placed(|op| matches!(op, Op::MaxPool(_))), [true; 3]);
            let pools_from_out = network
                .steps
                .iter()
                .zip(&plans)
                .filter(|(step, _)| matches!(step.op, Op::MaxPool(_)))
                .flat_map(|(step, op_plan)| {
                    op_plan.launches.iter().map(|l| as_bound(step, l, &plan))
                })
                .filter(|l| l.entry == "main_from_out" && l.inputs[0] == Binding::Absent)
                .count();
            assert_eq!(pools_from_out, 3);
        }
    }

    #[test]
    fn c2f_splits_are_read_in_place_and_their_input_computed_into_the_concat() {
        for (network, blocks) in [(mini_detector(), 3), (shipped_model(), 8)] {
            let plans = plan_steps(&network, ConvKernels::Tiled, 4).unwrap();
            let plan = plan_buffers(&network, &plans, 4);
            let uses = Uses::of(&network);
            let mut c2f = 0;
            for (step, op_plan) in network.steps.iter().zip(&plans) {
                let Op::Split { .. } = step.op else { continue };
                let Operand::Value(input) = step.inputs[0] else {
                    continue;
                };
                let concat = plan.placed_in[step.outputs[0]];
                // Each part is its input's storage at its offset, or a copy for a reader that
                // takes no offsets.
                let mut offset = plan.offset_of[input];
                for &part in &step.outputs {
                    if plan.alias_of[part].is_some() {
                        assert_eq!(plan.buffer(part), plan.buffer(input));
                        assert_eq!(plan.offset_of[part], offset);
                    } else {
                        assert!(
                            uses.readers[part]
                                .iter()
                                .any(|&(r, j)| !takes_offset(&plans[r], &Binding::Input(j)))
                        );
                    }
                    offset += network.value_shapes[part].iter().product::<usize>();
                }
                let Some(concat) = concat else { continue };
                c2f += 1;
                // Every reader of a C2f's parts takes offsets, the shortcuts' Adds included.
                assert!(
                    step.outputs.iter().all(|&p| plan.alias_of[p].is_some()),
                    "{}",
                    step.node
                );
                // The Split's input lies in the Concat's output, where the Concat copies nothing
                // for the parts; the convolution that makes it writes there.
                assert_eq!(plan.buffer(input), plan.buffer(concat));
                assert!(
                    step.outputs
                        .iter()
                        .all(|&p| plan.placed_in[p] == Some(concat))
                );
                let split_launches = op_plan
                    .launches
                    .iter()
                    .filter(|l| plan.runs(step, l))
                    .count();
                assert_eq!(split_launches, 0, "{}", step.node);
            }
            assert_eq!(c2f, blocks, "every C2f block's Split");
            // Every bottleneck's shortcut (its Add fused into its last convolution) writes into
            // its C2f's Concat and reads its input (a Split part, or the bottleneck before it),
            // which lies in that Concat's output, through its output binding: 1 + 1 + 2 + 2 in
            // the shipped model, 1 + 2 in the mini detector (its third C2f has no shortcut).
            let mut shortcuts = 0;
            for (step, op_plan) in network.steps.iter().zip(&plans) {
                let Op::Conv { residual: true, .. } = step.op else {
                    continue;
                };
                shortcuts += 1;
                let concat = plan.placed_in[step.outputs[0]].expect("written into the Concat");
                assert_eq!(plan.buffer(step.outputs[0]), plan.buffer(concat));
                let Operand::Value(residual) = step.inputs[1] else {
                    panic!("a shortcut reads a value")
                };
                assert_eq!(plan.buffer(residual), plan.buffer(concat));
                let binds_the_residual = |l: &Launch| l.inputs.contains(&Binding::Input(1));
                let launches: Vec<&Launch> = op_plan
                    .launches
                    .iter()
                    .filter(|l| plan.runs(step, l))
                    .collect();
                assert_eq!(launches.iter().filter(|l| binds_the_residual(l)).count(), 1);
                for launch in launches {
                    assert!(
                        !binds_the_residual(&as_bound(step, launch, &plan)),
                        "{}",
                        step.node
                    );
                }
            }
            assert_eq!(shortcuts, if blocks == 8 { 6 } else { 3 });
        }
        // The mini detector's DFL head splits box distributions from class scores: a Reshape
        // reads the first part, for a Transpose that takes offsets, and the class-score Sigmoid
        // the second, so both are read in place. dist2bbox's Slices (the distances' halves) are
        // views, and the output's Concat copies nothing: the boxes' Mul and the Sigmoid write
        // into their slices.
        let network = mini_detector();
        let plans = plan_steps(&network, ConvKernels::Tiled, 4).unwrap();
        let plan = plan_buffers(&network, &plans, 4);
        let head = network
            .steps
            .iter()
            .rfind(|s| matches!(s.op, Op::Split { .. }))
            .unwrap();
        let in_place: Vec<bool> = head
            .outputs
            .iter()
            .map(|&p| plan.alias_of[p].is_some())
            .collect();
        assert_eq!(in_place, [true, true]);
        let slices: Vec<bool> = network
            .steps
            .iter()
            .filter(|s| matches!(s.op, Op::Slice { .. }))
            .map(|s| plan.alias_of[s.outputs[0]].is_some())
            .collect();
        assert_eq!(slices, [true, true]);
        let output = network.steps.last().unwrap();
        assert!(matches!(output.op, Op::Concat(_)));
        let copies = plans.last().unwrap().launches.iter();
        assert_eq!(copies.filter(|l| plan.runs(output, l)).count(), 0);
    }
}
