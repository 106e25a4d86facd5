/// Everything that can go wrong in the engine, each with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no GPU adapter found ({0}); on Linux without a GPU install mesa-vulkan-drivers (lavapipe)"
    )]
    NoAdapter(String),
    #[error(
        "the GPU adapter '{adapter}' cannot open a device with the limits and features the engine needs: {reason}"
    )]
    DeviceRequest { adapter: String, reason: String },
    #[error("reading a result back from the GPU failed: {0}")]
    Readback(String),
    #[error(transparent)]
    Shape(#[from] crate::ShapeError),
}
