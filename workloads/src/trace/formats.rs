//! Readers of the trace formats infermeter replays, each into [`TraceRequest`]s:
//!
//! - Mooncake JSON lines: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`
//!   (one id per block of `block_tokens` prompt tokens; requests whose leading ids are
//!   equal share that prefix).
//! - BurstGPT CSV: `Timestamp` (s), `Model`, `Request tokens`, `Response tokens`, ...
//!   (rows with 0 response tokens are failures in the log and are skipped).
//! - Azure LLM inference trace CSV: `TIMESTAMP` (`2023-11-16 18:15:46.6805900`),
//!   `ContextTokens`, `GeneratedTokens`.
//! - infermeter's own `requests.jsonl`: `scheduled_s`, `tokenizer_input_tokens`,
//!   `max_output_tokens`, `session`, `call`, `prefix` (a recorded run: the same
//!   schedule, lengths, shared prefix and session histories).
//!
//! Every reader names the line and the field of the first bad value.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Block, TraceFormat, TraceRequest, block_key};

/// What a reader made of a file: the requests (time from the first), and how many
/// rows it skipped and why.
pub(crate) struct Parsed {
    pub requests: Vec<TraceRequest>,
    pub skipped: Vec<(String, u64)>,
}

/// Reads `text` in `format`; `block_tokens` is Mooncake's block size.
pub(crate) fn parse(format: TraceFormat, text: &str, block_tokens: u32) -> Result<Parsed, String> {
    let mut parsed = match format {
        TraceFormat::Mooncake => mooncake(text, block_tokens)?,
        TraceFormat::Burstgpt => burstgpt(text)?,
        TraceFormat::Azure => azure(text)?,
        TraceFormat::RequestsJsonl => requests_jsonl(text)?,
    };
    // Time from the first request; a trace out of order is sorted (stably).
    parsed.requests.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    if let Some(t0) = parsed.requests.first().map(|r| r.at_s) {
        for r in &mut parsed.requests {
            r.at_s -= t0;
        }
    }
    Ok(parsed)
}

fn positive(line: usize, field: &str, v: i64) -> Result<u32, String> {
    u32::try_from(v)
        .ok()
        .filter(|&n| n >= 1 && f64::from(n) <= crate::bounds::MAX_TOKENS)
        .ok_or_else(|| {
            format!(
                "line {line}: `{field}` must be a token count from 1 to {}, got {v}",
                crate::bounds::MAX_TOKENS
            )
        })
}

fn time(line: usize, field: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "line {line}: `{field}` must be a time >= 0, got {v}"
        ))
    }
}

/// A prompt with no prefix information: one segment of its own.
fn unique(line: usize, input_tokens: u32) -> Vec<Block> {
    vec![Block {
        key: block_key("request", line as u64),
        tokens: input_tokens,
    }]
}

fn mooncake(text: &str, block_tokens: u32) -> Result<Parsed, String> {
    #[derive(Deserialize)]
    struct Row {
        timestamp: f64,
        input_length: i64,
        output_length: i64,
        #[serde(default)]
        hash_ids: Vec<u64>,
    }
    let mut requests = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(raw).map_err(|e| format!("line {line}: {e}"))?;
        let input_tokens = positive(line, "input_length", row.input_length)?;
        let output_tokens = positive(line, "output_length", row.output_length)?;
        let mut blocks = Vec::new();
        let mut left = input_tokens;
        for id in &row.hash_ids {
            if left == 0 {
                break;
            }
            let n = left.min(block_tokens);
            blocks.push(Block {
                key: block_key("mooncake", *id),
                tokens: n,
            });
            left -= n;
        }
        if left > 0 {
            // More prompt than blocks: the rest is this request's own.
            blocks.push(Block {
                key: block_key("request", line as u64),
                tokens: left,
            });
        }
        requests.push(TraceRequest {
            at_s: time(line, "timestamp", row.timestamp)? / 1000.0,
            input_tokens,
            output_tokens,
            blocks,
        });
    }
    Ok(Parsed {
        requests,
        skipped: Vec::new(),
    })
}

/// The column of `name` in a CSV header, or an error naming the columns found.
fn column(headers: &csv::StringRecord, name: &str) -> Result<usize, String> {
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "no `{name}` column (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
}

fn csv_rows(
    text: &str,
    mut each: impl FnMut(usize, &csv::StringRecord, &csv::StringRecord) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .clone();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("record {}: {e}", i + 1))?;
        let line = row.position().map_or(i + 2, |p| p.line() as usize);
        each(line, &headers, &row)?;
    }
    Ok(())
}

fn field<T: std::str::FromStr>(
    line: usize,
    row: &csv::StringRecord,
    at: usize,
    name: &str,
) -> Result<T, String> {
    let raw = row.get(at).unwrap_or("");
    raw.parse()
        .map_err(|_| format!("line {line}: `{name}` is not a number: `{raw}`"))
}

fn burstgpt(text: &str) -> Result<Parsed, String> {
    let mut requests = Vec::new();
    let mut failed = 0u64;
    csv_rows(text, |line, headers, row| {
        let (t, inp, out) = (
            column(headers, "Timestamp")?,
            column(headers, "Request tokens")?,
            column(headers, "Response tokens")?,
        );
        let output: i64 = field(line, row, out, "Response tokens")?;
        if output == 0 {
            failed += 1;
            return Ok(());
        }
        let input_tokens = positive(
            line,
            "Request tokens",
            field(line, row, inp, "Request tokens")?,
        )?;
        requests.push(TraceRequest {
            at_s: time(line, "Timestamp", field(line, row, t, "Timestamp")?)?,
            input_tokens,
            output_tokens: positive(line, "Response tokens", output)?,
            blocks: unique(line, input_tokens),
        });
        Ok(())
    })?;
    Ok(Parsed {
        requests,
        skipped: if failed > 0 {
            vec![(
                "0 response tokens (a failed request in the log)".into(),
                failed,
            )]
        } else {
            Vec::new()
        },
    })
}

fn azure(text: &str) -> Result<Parsed, String> {
    let mut requests = Vec::new();
    let mut first: Option<chrono::NaiveDateTime> = None;
    csv_rows(text, |line, headers, row| {
        let (t, inp, out) = (
            column(headers, "TIMESTAMP")?,
            column(headers, "ContextTokens")?,
            column(headers, "GeneratedTokens")?,
        );
        let raw = row.get(t).unwrap_or("");
        let at =
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f").map_err(|e| {
                format!(
                    "line {line}: `TIMESTAMP` `{raw}` is not `YYYY-MM-DD HH:MM:SS.fffffff`: {e}"
                )
            })?;
        let t0 = *first.get_or_insert(at);
        let at_s = (at - t0)
            .num_microseconds()
            .map_or(f64::INFINITY, |us| us as f64 / 1e6);
        let input_tokens = positive(
            line,
            "ContextTokens",
            field(line, row, inp, "ContextTokens")?,
        )?;
        requests.push(TraceRequest {
            // Rows before the first are moved to it by the sort's shift: keep them.
            at_s: if at_s.is_finite() { at_s } else { 0.0 },
            input_tokens,
            output_tokens: positive(
                line,
                "GeneratedTokens",
                field(line, row, out, "GeneratedTokens")?,
            )?,
            blocks: unique(line, input_tokens),
        });
        Ok(())
    })?;
    // Times may be negative where the file is not in order: the caller's shift
    // makes them relative to the earliest row.
    Ok(Parsed {
        requests,
        skipped: Vec::new(),
    })
}

fn requests_jsonl(text: &str) -> Result<Parsed, String> {
    #[derive(Deserialize)]
    struct Prefix {
        id: String,
        tokens: u32,
    }
    #[derive(Deserialize)]
    struct Row {
        scheduled_s: f64,
        tokenizer_input_tokens: i64,
        max_output_tokens: i64,
        session: u64,
        call: u32,
        #[serde(default)]
        input_capped: bool,
        #[serde(default)]
        cold_start: bool,
        #[serde(default)]
        prefix: Option<Prefix>,
    }
    let mut rows = Vec::new();
    let mut cold = 0u64;
    let mut seen: HashMap<(u64, u32), usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(raw).map_err(|e| format!("line {line}: {e}"))?;
        if row.cold_start {
            cold += 1;
            continue;
        }
        time(line, "scheduled_s", row.scheduled_s)?;
        positive(line, "tokenizer_input_tokens", row.tokenizer_input_tokens)?;
        positive(line, "max_output_tokens", row.max_output_tokens)?;
        if let Some(first) = seen.insert((row.session, row.call), line) {
            return Err(format!(
                "line {line}: session {} call {} is also on line {first}: the file holds several load points (a sweep, repeats or several workloads); replay one point's lines",
                row.session, row.call
            ));
        }
        rows.push((line, row));
    }
    // Rebuild each session's history: call c's prompt is the prefix, then every
    // earlier call's new input and answer, then its own new input.
    let mut by_session: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (_, r)) in rows.iter().enumerate() {
        by_session.entry(r.session).or_default().push(i);
    }
    let mut blocks: Vec<Option<Vec<Block>>> = vec![None; rows.len()];
    for calls in by_session.values_mut() {
        calls.sort_by_key(|&i| rows[i].1.call);
        let mut history: Vec<Block> = Vec::new();
        let mut history_tokens = 0u32;
        let mut consistent = true;
        for (k, &i) in calls.iter().enumerate() {
            let (_, r) = &rows[i];
            let input = r.tokenizer_input_tokens as u32;
            if k == 0
                && let Some(p) = &r.prefix
                && p.tokens < input
            {
                history.push(Block {
                    key: block_key("prefix", u64::from_str_radix(&p.id, 16).unwrap_or(0)),
                    tokens: p.tokens,
                });
                history_tokens = p.tokens;
            }
            consistent &= !r.input_capped && r.call as usize == k && input > history_tokens;
            if !consistent {
                break;
            }
            let turn = input - history_tokens;
            history.push(Block {
                key: block_key("turn", r.session << 20 | u64::from(r.call) << 1),
                tokens: turn,
            });
            blocks[i] = Some(history.clone());
            let answer = r.max_output_tokens as u32;
            history.push(Block {
                key: block_key("turn", r.session << 20 | u64::from(r.call) << 1 | 1),
                tokens: answer,
            });
            history_tokens = input + answer;
        }
    }
    let requests = rows
        .iter()
        .zip(blocks)
        .map(|((line, r), b)| {
            let input_tokens = r.tokenizer_input_tokens as u32;
            TraceRequest {
                at_s: r.scheduled_s,
                input_tokens,
                output_tokens: r.max_output_tokens as u32,
                blocks: b.unwrap_or_else(|| unique(*line, input_tokens)),
            }
        })
        .collect();
    Ok(Parsed {
        requests,
        skipped: if cold > 0 {
            vec![(
                "cold-start probes (reported apart in the recorded run)".into(),
                cold,
            )]
        } else {
            Vec::new()
        },
    })
}
