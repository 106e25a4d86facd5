// The bench page: for each model, one input (a real camera frame, letterboxed by our engine), then
// every runtime in its own fresh worker (worker.mjs), one after the other, never two at once.
// `cargo xtask webbench` calls startBench(plan) over WebDriver and polls window.bench.

import init, { letterbox_input, output_shape, parse_model } from './engine/linecheck_webbench.js';
import { load } from './runtimes.mjs';

window.bench = { state: 'idle', progress: [], results: [], error: null };

function say(line) {
  window.bench.progress.push(line);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function imageRgba(url) {
  const bitmap = await createImageBitmap(new Blob([await fetchBytes(url)]));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  return { rgba: new Uint8Array(data.buffer), width: bitmap.width, height: bitmap.height };
}

/// A runtime's worker: one request at a time, answered in order.
class RuntimeWorker {
  constructor() {
    this.worker = new Worker('./worker.mjs', { type: 'module' });
    this.pending = null;
    this.worker.onmessage = ({ data }) => this.settle(data.ok ? null : new Error(data.error), data.result);
    this.worker.onerror = (e) => this.settle(new Error(`worker: ${e.message}`));
  }

  settle(error, result) {
    const pending = this.pending;
    this.pending = null;
    if (pending) error ? pending.reject(error) : pending.resolve(result);
  }

  call(message) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message);
    });
  }
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted[sorted.length - 1] };
}

/// How far `output` is from `reference` (both [1, 4 + classes, anchors]): L2 relative error over
/// everything, and the largest difference in the box rows (input pixels) and in the score rows.
function agreement(output, reference, anchors) {
  if (output.length !== reference.length) return { error: `${output.length} values, reference ${reference.length}` };
  let diff2 = 0;
  let ref2 = 0;
  let box = 0;
  let score = 0;
  let nonFinite = 0;
  for (let i = 0; i < output.length; i++) {
    const d = Math.abs(output[i] - reference[i]);
    if (!Number.isFinite(d)) {
      nonFinite++;
      continue;
    }
    diff2 += d * d;
    ref2 += reference[i] * reference[i];
    if (Math.floor(i / anchors) < 4) box = Math.max(box, d);
    else score = Math.max(score, d);
  }
  return { relL2: Math.sqrt(diff2 / ref2), box, score, nonFinite };
}

/// The model's bytes and the one input every runtime gets: the frame, letterboxed by our engine.
async function modelInput(model, frame) {
  const bytes = await fetchBytes(model.url);
  const shape = Array.from(parse_model(bytes));
  const [, , height, width] = shape;
  const anchors = output_shape()[2];
  const input = letterbox_input(frame.rgba, frame.width, frame.height, width, height);
  return { bytes, shape, width, height, anchors, input };
}

function labelOf(model, config) {
  const what = `${config.backend || config.ep}${config.conv ? ` (conv ${config.conv})` : ''}`;
  return `${model.name}: ${config.runtime} ${what}${config.threads ? ` ${config.threads}T` : ''}`;
}

/// Every runtime on one model. Each is loaded in its own worker first (cold start, the others
/// idle), then they take turns, one inference at a time, in rounds whose order rotates: on a
/// shared machine whose load drifts, every runtime sees the same drift.
async function benchModel(plan, model, frame) {
  const { bytes, shape, width, height, anchors, input } = await modelInput(model, frame);
  const entries = [];
  for (const config of plan.configs) {
    const label = labelOf(model, config);
    if (config.threads > 1 && !crossOriginIsolated) {
      say(`${label}: skipped, the page is not cross-origin isolated`);
      continue;
    }
    const gpu = config.backend === 'gpu' || config.ep === 'webgpu';
    const worker = new RuntimeWorker();
    const entry = { config, label, worker, ...(gpu ? plan.gpu : plan.cpu), times: [] };
    try {
      entry.loaded = await worker.call({ type: 'load', config, model: bytes, shape, input });
      say(`${label}: cold start ${entry.loaded.coldMs.toFixed(0)} ms`);
    } catch (e) {
      entry.failed = e.message;
    }
    entries.push(entry);
  }
  const rounds = Math.max(...entries.map((e) => e.warmup + e.runs));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[(round + k) % entries.length];
      if (entry.failed || round >= entry.warmup + entry.runs) continue;
      try {
        const ms = await entry.worker.call({ type: 'run' });
        if (round >= entry.warmup) entry.times.push(ms);
      } catch (e) {
        entry.failed = e.message;
      }
    }
    say(`${model.name}: round ${round + 1} of ${rounds} done`);
  }
  if (plan.profileGpu) {
    for (const entry of entries.filter((e) => !e.failed && e.config.runtime === 'ours' && e.config.backend === 'gpu')) {
      say(`${entry.label}: GPU profile`);
      entry.gpuProfile = await entry.worker.call({ type: 'gpuProfile' });
    }
  }
  // The reference output: the first runtime in the plan (ONNX Runtime's WASM EP on one thread).
  let reference = null;
  for (const entry of entries) {
    const { config, label, worker, warmup, times, loaded } = entry;
    let output = null;
    if (!entry.failed) {
      try {
        output = await worker.call({ type: 'output' });
      } catch (e) {
        entry.failed = e.message;
      }
    }
    worker.worker.terminate();
    if (entry.failed) {
      say(`${label}: FAILED ${entry.failed}`);
      window.bench.results.push({ model: model.name, config, failed: entry.failed.split('\n')[0] });
      continue;
    }
    const isReference = reference === null;
    reference ??= { output, by: `${loaded.info.runtime} ${loaded.info.backend}, ${loaded.info.threads} thread` };
    window.bench.results.push({
      isReference,
      model: model.name,
      input: `${width}x${height}`,
      precision: 'f32',
      ...loaded.info,
      loadMs: loaded.loadMs,
      coldMs: loaded.coldMs,
      coldParts: loaded.coldParts,
      ...summary(times),
      times,
      runs: times.length,
      warmup,
      agreement: { vs: reference.by, ...agreement(output, reference.output, anchors) },
      gpuProfile: entry.gpuProfile ?? null,
    });
    say(`${label}: median ${summary(times).median.toFixed(1)} ms`);
  }
}

window.startBench = (plan) => {
  window.bench = {
    state: 'running',
    progress: [],
    results: [],
    error: null,
    crossOriginIsolated,
    userAgent: navigator.userAgent,
    cores: navigator.hardwareConcurrency,
  };
  (async () => {
    await init();
    const frame = await imageRgba(plan.image);
    say(`input image ${plan.image}: ${frame.width}x${frame.height}`);
    for (const model of plan.models) await benchModel(plan, model, frame);
  })().then(
    () => (window.bench.state = 'done'),
    (e) => {
      window.bench.error = `${e && e.stack ? e.stack : e}`;
      window.bench.state = 'failed';
    },
  );
  return true;
};

// The CPU profile (`web_bench --profile-cpu`): one runtime loaded on the page's own thread, where
// the driver's sampling profiler (DevTools protocol) sees it; the timings are the workers'.
window.profiling = { state: 'idle' };

window.prepareProfile = (plan, model, config) => {
  window.profiling = { state: 'loading' };
  (async () => {
    await init();
    const frame = await imageRgba(plan.image);
    const { bytes, shape, input } = await modelInput(model, frame);
    const runtime = await load(config, bytes, shape, input);
    window.profiling = { state: 'ready', run: () => runtime.run(input) };
  })().catch((e) => (window.profiling = { state: 'failed', error: `${e}` }));
  return true;
};

window.runProfile = (runs) => {
  const { run } = window.profiling;
  window.profiling.state = 'running';
  (async () => {
    for (let i = 0; i < runs; i++) await run();
  })().then(
    () => (window.profiling = { state: 'done' }),
    (e) => (window.profiling = { state: 'failed', error: `${e}` }),
  );
  return true;
};
