//! The FAIL cue: a short, loud two-tone beep an operator hears over the line's noise.

use web_sys::{AudioContext, OscillatorType};

thread_local! {
    /// One context for the page: browsers limit how many may exist.
    static CONTEXT: Option<AudioContext> = AudioContext::new().ok();
}

pub fn fail_cue() {
    CONTEXT.with(|context| {
        let Some(context) = context else { return };
        // A context made before the first tap starts suspended; the Inspect tap resumes it.
        let _ = context.resume();
        let start = context.current_time();
        for (i, frequency) in [880.0, 660.0].into_iter().enumerate() {
            let (Ok(oscillator), Ok(gain)) = (context.create_oscillator(), context.create_gain())
            else {
                return;
            };
            oscillator.set_type(OscillatorType::Square);
            oscillator.frequency().set_value(frequency);
            gain.gain().set_value(0.2);
            let at = start + i as f64 * 0.18;
            let _ = oscillator
                .connect_with_audio_node(&gain)
                .and_then(|_| gain.connect_with_audio_node(&context.destination()));
            let _ = oscillator.start_with_when(at);
            let _ = oscillator.stop_with_when(at + 0.15);
        }
    });
}
