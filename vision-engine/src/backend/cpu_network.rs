//! `CpuNetwork`: a network prepared for the CPU backend, as `GpuNetwork` is for the GPU.

use std::{cell::RefCell, collections::HashMap, sync::Mutex};

use super::{Backend as _, CpuBackend};
use crate::{
    EngineError, Tensor,
    cpu::PreparedConv,
    graph::{self, Executor, Network, Op},
};

/// A network on the CPU with every convolution's weights packed once, at preparation, and the
/// storage of values freed in one inference reused for the next one's convolution outputs (no
/// allocation and no zeroing once warm). It computes exactly what [`graph::OpByOp`] on
/// [`CpuBackend`] computes, which stays the reference the conformance suite checks.
pub struct CpuNetwork<'a> {
    network: &'a Network,
    /// Per step, its convolution ready to run; `None` for the other ops.
    convs: Vec<Option<PreparedConv<'a>>>,
    spare: Mutex<SpareBuffers>,
}

impl<'a> CpuNetwork<'a> {
    pub fn new(network: &'a Network) -> Result<Self, EngineError> {
        let convs = network
            .steps
            .iter()
            .map(|step| match &step.op {
                Op::Conv {
                    weight,
                    bias,
                    attrs,
                    activation,
                    ..
                } => {
                    let graph::Operand::Value(input) = step.inputs[0] else {
                        // A convolution of a constant image runs op by op.
                        return Ok(None);
                    };
                    let conv = PreparedConv::new(
                        &network.value_shapes[input],
                        &network.constants[*weight],
                        bias.map(|b| &network.constants[b]),
                        attrs,
                        *activation,
                    );
                    Ok(Some(conv.map_err(|e| {
                        crate::tensor::shape_error("Conv", format!("{}: {e}", step.node))
                    })?))
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let mut capacity = HashMap::new();
        for conv in convs.iter().flatten() {
            *capacity.entry(conv.output_len()).or_default() += 1;
        }
        Ok(Self {
            network,
            convs,
            spare: Mutex::new(SpareBuffers {
                capacity,
                free: HashMap::new(),
            }),
        })
    }
}

impl Executor for CpuNetwork<'_> {
    fn name(&self) -> String {
        CpuBackend.name()
    }

    async fn execute(&self, input: Tensor) -> Result<Vec<Tensor>, EngineError> {
        let spare = RefCell::new(std::mem::take(
            &mut *self.spare.lock().expect("no panic while held"),
        ));
        let outputs = self
            .network
            .run_steps(
                input,
                async |index, step, inputs| match &self.convs[index] {
                    Some(conv) => {
                        let buffer = spare.borrow_mut().take(conv.output_len());
                        Ok(vec![conv.run(inputs[0], inputs.get(1).copied(), buffer)?])
                    }
                    None => {
                        graph::execute(&CpuBackend, &step.op, &self.network.constants, inputs).await
                    }
                },
                |freed| spare.borrow_mut().keep(freed),
            )
            .await;
        *self.spare.lock().expect("no panic while held") = spare.into_inner();
        outputs
    }
}

/// Freed values' storage by length, at most as many of each length as convolutions write.
#[derive(Default)]
struct SpareBuffers {
    capacity: HashMap<usize, usize>,
    free: HashMap<usize, Vec<Vec<f32>>>,
}

impl SpareBuffers {
    /// A buffer of `len` values if one is spare, else an empty one to grow.
    fn take(&mut self, len: usize) -> Vec<f32> {
        self.free
            .get_mut(&len)
            .and_then(Vec::pop)
            .unwrap_or_default()
    }

    fn keep(&mut self, value: Tensor) {
        let data = value.into_data();
        let capacity = self.capacity.get(&data.len()).copied().unwrap_or(0);
        let free = self.free.entry(data.len()).or_default();
        if free.len() < capacity {
            free.push(data);
        }
    }
}
