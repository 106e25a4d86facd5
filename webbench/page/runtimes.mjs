// The two runtimes behind one interface, for the bench page's workers (worker.mjs) and for the CPU
// profile taken on the page itself (bench.mjs). Both are loaded and timed the same way, from
// JavaScript around the same calls: the runtime's own wasm (runtime load), then model bytes ->
// first result (cold start); `run(input)` is one inference with its output read back to JavaScript.

/// Loads `config`'s runtime and model, and runs it once (the cold start).
export function load(config, model, shape, input) {
  return config.runtime === 'ours' ? loadOurs(config, model, input) : loadOrt(config, model, shape, input);
}

/// "google swiftshader (fallback adapter)": the adapter both GPU runtimes get by default.
async function describeAdapter() {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) return 'no WebGPU adapter';
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.device].filter((s) => s).join(' ') || 'unnamed adapter';
  const fallback = info.isFallbackAdapter ?? adapter.isFallbackAdapter;
  return fallback ? `${name} (fallback adapter)` : name;
}

/// Starts `threads - 1` workers on the threaded engine's module and shared memory, and waits until
/// each serves the CPU backend's thread pool.
async function startCpuThreads(engine, threads) {
  engine.set_cpu_threads(threads);
  const message = { module: engine.wasm_module(), memory: engine.wasm_memory() };
  const started = Array.from(
    { length: threads - 1 },
    () =>
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL('./cpu-thread.mjs', import.meta.url), { type: 'module' });
        worker.onmessage = ({ data }) => (data.ok ? resolve() : reject(new Error(data.error)));
        worker.onerror = (e) => reject(new Error(`CPU thread worker: ${e.message}`));
        worker.postMessage(message);
      }),
  );
  await Promise.all(started);
}

async function loadOurs(config, model, input) {
  const started = performance.now();
  // One thread: the plain build. More: the threaded build (shared memory, so the page must be
  // cross-origin isolated), its other threads in workers of their own.
  const threads = config.threads ?? 1;
  const engine = await import(threads > 1 ? './engine-threads/linecheck_webbench.js' : './engine/linecheck_webbench.js');
  await engine.default(); // fetch, compile and instantiate the wasm module
  if (threads > 1) await startCpuThreads(engine, threads);
  const loaded = performance.now();
  engine.parse_model(model);
  const parsed = performance.now();
  // The convolution kernels (`web_bench --gpu-conv`): "auto" is the adapter's choice, the kiosk's.
  if (config.backend === 'gpu') await engine.start_gpu(config.conv ?? 'auto');
  const device = performance.now();
  engine.prepare(config.backend);
  const prepared = performance.now();
  const run = (input) => engine.run(input);
  const firstOutput = await run(input);
  const first = performance.now();
  const gpu = config.backend === 'gpu';
  const memory = engine.activation_bytes();
  return {
    run,
    firstOutput,
    // GPU time of one inference and by kernel (timestamp queries), for `web_bench --profile-gpu`.
    gpuProfile: gpu ? async () => ({ gpuMs: await engine.gpu_ms(), kernels: await engine.gpu_profile() }) : null,
    loadMs: loaded - started,
    coldMs: first - loaded,
    coldParts: [
      ['parse + fold', parsed - loaded],
      ...(gpu ? [['device + pipelines', device - parsed]] : []),
      [gpu ? 'weights + bind groups' : 'prepare', prepared - device],
      ['first run', first - prepared],
    ],
    info: {
      runtime: 'ours',
      backend: gpu ? `GPU (WebGPU; conv ${config.conv ?? 'auto'}: ${engine.gpu_conv_kernels()})` : 'CPU (wasm SIMD)',
      adapter: gpu ? await describeAdapter() : 'wasm SIMD',
      threads: gpu ? null : threads,
      gpuMemoryBytes: memory ?? null,
    },
  };
}

// The smallest model there is (one Relu on a [1] float), hand-encoded as ONNX protobuf: creating a
// session on it loads ONNX Runtime's wasm module (and, for WebGPU, opens the device) before the
// model's own cold start is timed, as our runtime's load is timed apart from its cold start.
function tinyModel() {
  const varint = (n) => {
    const out = [];
    while (n > 127) {
      out.push((n & 127) | 128);
      n >>>= 7;
    }
    out.push(n);
    return out;
  };
  const bytes = (field, value) => [...varint((field << 3) | 2), ...varint(value.length), ...value];
  const number = (field, value) => [...varint(field << 3), ...varint(value)];
  const text = (s) => [...new TextEncoder().encode(s)];
  // ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape { dim { 1 } } } } }
  const valueInfo = (name) =>
    bytes(1, text(name)).concat(bytes(2, bytes(1, number(1, 1).concat(bytes(2, bytes(1, number(1, 1)))))));
  const node = bytes(1, text('x')).concat(bytes(2, text('y')), bytes(4, text('Relu')));
  const graph = bytes(1, node).concat(bytes(2, text('tiny')), bytes(11, valueInfo('x')), bytes(12, valueInfo('y')));
  // ModelProto { ir_version: 8, graph, opset_import { domain: "", version: 17 } }
  const modelProto = number(1, 8).concat(bytes(7, graph), bytes(8, bytes(1, []).concat(number(2, 17))));
  return new Uint8Array(modelProto);
}

async function loadOrt(config, model, shape, input) {
  const started = performance.now();
  // The package's CPU-only entry (`onnxruntime-web/wasm`) for the WASM EP, as a CPU-only page
  // would import it; its default entry (which adds WebGPU, through JSEP) for the WebGPU EP.
  const gpu = config.ep === 'webgpu';
  const ort = await import(gpu ? './ort/ort.bundle.min.mjs' : './ort/ort.wasm.bundle.min.mjs');
  ort.env.wasm.numThreads = config.threads;
  ort.env.logLevel = 'error';
  const options = { executionProviders: [config.ep] };
  await (await ort.InferenceSession.create(tinyModel(), options)).release();
  const loaded = performance.now();
  const session = await ort.InferenceSession.create(model, options);
  const created = performance.now();
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  const run = async (input) => {
    const outputs = await session.run({ [inputName]: new ort.Tensor('float32', input, shape) });
    return outputs[outputName].data; // on the CPU: WebGPU results are read back, as ours are
  };
  const firstOutput = await run(input);
  const first = performance.now();
  return {
    run,
    firstOutput,
    loadMs: loaded - started,
    coldMs: first - loaded,
    coldParts: [
      ['session create', created - loaded],
      ['first run', first - created],
    ],
    info: {
      runtime: `onnxruntime-web ${ort.env.versions.web}`,
      backend: gpu ? 'WebGPU EP' : 'WASM EP',
      adapter: gpu ? await describeAdapter() : 'wasm SIMD',
      threads: gpu ? null : ort.env.wasm.numThreads,
      gpuMemoryBytes: null,
    },
  };
}
