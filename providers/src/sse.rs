//! Server-sent events framing, per the WHATWG HTML spec ("Interpreting an event
//! stream"), fed bytes as they arrive from the transport.
//!
//! - Lines end in CRLF, LF or CR; a CR at the end of one read and an LF at the start of
//!   the next are one line end.
//! - `data:` lines accumulate (joined with `\n`); `event:` sets the type; `id:` and
//!   `retry:` are kept; lines starting with `:` are comments; a field name without a
//!   colon has an empty value; one space after the colon is dropped.
//! - A blank line dispatches the event; an event with no data is dropped (the spec's
//!   rule), so keep-alive comments never reach the decoder.
//! - Memory is bounded: an event (or a line) larger than `max_event_bytes` is an error,
//!   whatever the server sends, and the parser keeps nothing else.
//! - A UTF-8 byte order mark at the very start is skipped; invalid UTF-8 is an error.

use thiserror::Error;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty means the default type (`message`).
    pub event: String,
    /// The data lines, joined with `\n`.
    pub data: String,
    /// The last `id:` field seen in this event, if any.
    pub id: Option<String>,
}

/// Why a stream could not be framed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SseError {
    /// An event or line grew past the bound.
    #[error("an event is larger than {limit} bytes")]
    TooLarge {
        /// The bound, bytes.
        limit: usize,
    },
    /// A line is not UTF-8.
    #[error("an event line is not valid UTF-8")]
    Utf8,
}

/// Incremental SSE parser: push bytes, get back the events they completed.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of the line being read (no line end yet).
    line: Vec<u8>,
    /// The previous read ended in CR: an LF at the start of the next is its pair.
    after_cr: bool,
    /// No content byte has been read yet (a BOM may come first).
    at_start: bool,
    /// Bytes of a BOM matched so far at the start (a BOM may be split across reads).
    bom_matched: usize,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// Bytes held by the current event's fields.
    held: usize,
}

impl SseParser {
    /// A parser that refuses events (and lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            bom_matched: 0,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            held: 0,
        }
    }

    /// Feeds the bytes of one read; appends the events they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // An empty read changes nothing (it must not end a pending CR's pairing).
        if bytes.is_empty() {
            return Ok(());
        }
        if self.at_start {
            // A leading BOM is dropped, even when reads split it.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let want = &BOM[self.bom_matched..];
            let n = want.len().min(bytes.len());
            if bytes[..n] == want[..n] {
                self.bom_matched += n;
                bytes = &bytes[n..];
                if self.bom_matched < BOM.len() {
                    return Ok(());
                }
                self.at_start = false;
            } else {
                // Not a BOM after all: the bytes held back are content.
                self.at_start = false;
                let held = &BOM[..self.bom_matched];
                if !held.is_empty() {
                    self.push_content(held, out)?;
                }
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
        self.push_content(bytes, out)
    }

    /// The bytes of one read past any BOM.
    fn push_content(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.grow(bytes.len())?;
                    self.line.extend_from_slice(bytes);
                    break;
                }
                Some(end) => {
                    self.grow(end)?;
                    self.line.extend_from_slice(&bytes[..end]);
                    let cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    if cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out)?;
                }
            }
        }
        Ok(())
    }

    /// Whether bytes of an unfinished event are held (the stream ended mid-event).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data || (self.at_start && self.bom_matched > 0)
    }

    fn grow(&self, more: usize) -> Result<(), SseError> {
        if self.held + self.line.len() + more > self.max_event_bytes {
            return Err(SseError::TooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    id: self.id.take(),
                });
            } else {
                self.event.clear();
                self.id = None;
            }
            self.has_data = false;
            self.held = 0;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::Utf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            // `retry` only matters to reconnecting clients; unknown fields are ignored.
            _ => {}
        }
        self.held = self.event.len() + self.data.len() + self.id.as_ref().map_or(0, String::len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(reads: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for r in reads {
            p.push(r, &mut out)?;
        }
        Ok(out)
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    /// Found by `cargo fuzz run sse`: a BOM split across two reads was kept as content,
    /// so the stream framed differently (here: failed) than when read whole.
    #[test]
    fn a_bom_split_across_reads_is_dropped_as_when_whole() {
        let mut body = b"\xEF\xBB\xBF:\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF\xFFF".to_vec();
        body.extend([0u8; 14]);
        body.extend(b"data");
        body.extend([0u8; 43]);
        body.push(b'\n');
        let whole = parse_all(&[&body]);
        assert!(whole.is_ok(), "{whole:?}");
        for cut in 0..=body.len().min(8) {
            assert_eq!(
                parse_all(&[&body[..cut], &body[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let ok = b"\xEF\xBB\xBFdata: x\n\n";
        for cut in 0..=4 {
            let got = parse_all(&[&ok[..cut], &ok[cut..]]).unwrap();
            assert_eq!(data(&got), ["x"], "cut at {cut}");
        }
        // Two bytes of a BOM then something else: those bytes are content.
        let not_bom = b"\xEF\xBBdata: x\n\n";
        assert_eq!(
            parse_all(&[&not_bom[..1], &not_bom[1..]]),
            parse_all(&[not_bom])
        );
    }

    #[test]
    fn frames_the_spec_cases() {
        let ev = parse_all(&[b"data: a\n\ndata:b\r\n\r\n: comment\n\ndata\n\n"]).unwrap();
        assert_eq!(data(&ev), ["a", "b", ""]);
        let ev = parse_all(&[b"event: content_block_delta\ndata: {\"x\":1}\n\n"]).unwrap();
        assert_eq!(ev[0].event, "content_block_delta");
        assert_eq!(ev[0].data, "{\"x\":1}");
    }

    #[test]
    fn joins_multi_line_data_and_keeps_a_second_space() {
        let ev = parse_all(&[b"data: one\ndata:  two\rdata: three\r\n\n"]).unwrap();
        assert_eq!(data(&ev), ["one\n two\nthree"]);
    }

    #[test]
    fn an_event_without_data_is_dropped_and_its_type_forgotten() {
        let ev = parse_all(&[b"event: ping\n\ndata: x\n\n"]).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, "");
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        let ev = parse_all(&[b"data: a\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(data(&ev), ["a"]);
        // Even with an empty read between the CR and its LF (found by the property test).
        let ev = parse_all(&[b"event: aa\r", b"", b"\ndata: 0\r\n\r\n"]).unwrap();
        assert_eq!(ev[0].event, "aa");
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        p.push(b"data: {\"half\"", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(p.has_partial());
    }

    #[test]
    fn bounds_memory_whatever_the_server_sends() {
        let mut p = SseParser::new(64);
        let mut out = Vec::new();
        let big = vec![b'x'; 40];
        p.push(b"data: ", &mut out).unwrap();
        p.push(&big, &mut out).unwrap();
        assert_eq!(
            p.push(&big, &mut out),
            Err(SseError::TooLarge { limit: 64 })
        );
        // Many data lines add up too.
        let mut p = SseParser::new(64);
        let lines = b"data: 0123456789\n".repeat(8);
        assert!(p.push(&lines, &mut out).is_err());
    }

    #[test]
    fn skips_a_leading_bom_and_refuses_bad_utf8() {
        assert_eq!(
            data(&parse_all(&[b"\xEF\xBB\xBFdata: a\n\n"]).unwrap()),
            ["a"]
        );
        assert_eq!(parse_all(&[b"data: \xFF\n\n"]), Err(SseError::Utf8));
    }

    proptest! {
        /// However the stream is cut into reads, the events are the same.
        #[test]
        fn splitting_into_reads_changes_nothing(
            events in proptest::collection::vec(("[a-z]{0,3}", "[ -~]{0,20}", 0usize..3), 1..8),
            cuts in proptest::collection::vec(0usize..400, 0..12),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for (event, data, comments) in &events {
                for _ in 0..*comments {
                    text.push_str(&format!(": keep-alive{nl}"));
                }
                if !event.is_empty() {
                    text.push_str(&format!("event: {event}{nl}"));
                }
                text.push_str(&format!("data: {data}{nl}{nl}"));
            }
            let bytes = text.as_bytes();
            let whole = parse_all(&[bytes]).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut reads = Vec::new();
            let mut prev = 0;
            for c in cuts {
                reads.push(&bytes[prev..c]);
                prev = c;
            }
            reads.push(&bytes[prev..]);
            let split = parse_all(&reads).unwrap();
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(whole.len(), events.len());
            for (ev, (event, data, _)) in whole.iter().zip(&events) {
                prop_assert_eq!(&ev.event, event);
                prop_assert_eq!(&ev.data, data);
            }
        }
    }
}
