// The detection worker's threaded build (built by xtask with shared memory, for
// cross-origin-isolated pages), as a module worker. The CPU backend's other threads are workers
// on this same script, named so: their first message brings the detection worker's compiled
// module and memory, and they then serve its thread pool (`detection::worker`).
import init, { serve_cpu_thread } from './detection-worker-threads.js';

if (self.name === 'linecheck-cpu-thread') {
  onmessage = async ({ data }) => {
    await init({ module_or_path: data.module, memory: data.memory });
    serve_cpu_thread();
  };
} else {
  init();
}
