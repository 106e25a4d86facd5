// One runtime on one model (runtimes.mjs) in its own dedicated worker, as the kiosk runs detection:
// bench.mjs loads it, asks for one timed inference at a time, then for its last output.

import { load } from './runtimes.mjs';

let runtime = null;
let input = null;
let output = null;

async function handle(message) {
  switch (message.type) {
    case 'load': {
      input = message.input;
      runtime = await load(message.config, message.model, message.shape, input);
      output = runtime.firstOutput;
      const { run, firstOutput, gpuProfile, ...measured } = runtime;
      return measured;
    }
    case 'gpuProfile':
      return runtime.gpuProfile ? await runtime.gpuProfile() : null;
    case 'run': {
      const started = performance.now();
      output = await runtime.run(input);
      return performance.now() - started;
    }
    case 'output':
      return output;
    default:
      throw new Error(`unknown message ${message.type}`);
  }
}

onmessage = async ({ data }) => {
  try {
    postMessage({ ok: true, result: await handle(data) });
  } catch (e) {
    postMessage({ ok: false, error: `${e && e.stack ? e.stack : e}` });
  }
};
