// One runtime on one model, timed (runtimes.mjs): a fresh module worker per measurement (bench.mjs
// starts it and terminates it after), as the kiosk runs detection in a dedicated worker.

import { measure } from './runtimes.mjs';

onmessage = async ({ data }) => {
  try {
    postMessage({ ok: true, result: await measure(data) });
  } catch (e) {
    postMessage({ ok: false, error: `${e && e.stack ? e.stack : e}` });
  }
};
