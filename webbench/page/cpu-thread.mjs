// One more thread for our engine's CPU backend (the threaded build): the module the runtime's
// worker loaded, instantiated again on its shared memory, then serving the backend's thread pool
// for this worker's life.

import init, { serve_cpu_thread } from './engine-threads/linecheck_webbench.js';

onmessage = async ({ data: { module, memory } }) => {
  try {
    await init({ module_or_path: module, memory });
  } catch (e) {
    postMessage({ ok: false, error: `${e && e.stack ? e.stack : e}` });
    return;
  }
  postMessage({ ok: true });
  serve_cpu_thread();
};
