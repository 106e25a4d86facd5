//! The detection worker: vision-engine off the page's thread (see `detection::worker`).

fn main() {
    linecheck_frontend::detection::worker::run();
}
