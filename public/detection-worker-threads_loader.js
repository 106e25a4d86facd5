// The detection worker's threaded build (built by xtask with shared memory, for
// cross-origin-isolated pages), as a module worker. The CPU backend's other threads are workers
// on this same script, named so: their first message brings the detection worker's compiled
// module and memory, and the module's entry point then serves the thread pool
// (`detection::worker::run`).
import init from './detection-worker-threads.js';

if (self.name === 'linecheck-cpu-thread') {
  onmessage = ({ data }) => init({ module_or_path: data.module, memory: data.memory });
} else {
  init();
}
