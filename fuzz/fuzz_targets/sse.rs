//! The SSE parser on arbitrary bytes, cut into reads at arbitrary points: it never
//! panics, never holds more than its event bound, and every cut gives the same events
//! as one read.
#![no_main]

use infermeter_providers::sse::SseParser;
use libfuzzer_sys::fuzz_target;

const MAX_EVENT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let mut whole = SseParser::new(MAX_EVENT);
    let mut all = Vec::new();
    let whole_result = whole.push(body, &mut all);

    let mut parts = SseParser::new(MAX_EVENT);
    let mut events = Vec::new();
    let at = usize::from(cut).min(body.len());
    let first = parts.push(&body[..at], &mut events);
    let second = if first.is_ok() {
        parts.push(&body[at..], &mut events)
    } else {
        first.clone()
    };
    // The same verdict and, when both succeed, the same events.
    assert_eq!(whole_result.is_ok(), first.is_ok() && second.is_ok());
    if whole_result.is_ok() {
        assert_eq!(all, events);
    }
    for e in &all {
        assert!(e.data.len() <= MAX_EVENT);
    }
});
