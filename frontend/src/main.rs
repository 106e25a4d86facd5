//! The LineCheck kiosk page.

fn main() {
    linecheck_frontend::run_app();
}
