//! Verifiable tasks: a workload whose requests carry checkers (a `[tasks]` table), so
//! that each reply is graded after it is timed (README, "Verified tasks").
//!
//! Tasks come from a built-in generator, seeded like every other request stream, with
//! answers computed when the prompt is made (never from a model):
//!
//! - `arithmetic`: short sums, differences and products, one answer number;
//! - `sentiment`: a review of clear polarity, one of the labels `positive`, `negative`;
//! - `needle`: an access code hidden in a haystack of `input` length at one of `depths`,
//!   asked for at the end;
//! - `tool_call`: an agent's steps, each asking for one call of the tools the shared
//!   prefix defines, answered by a JSON object checked against the tools' schema and
//!   the expected arguments; the tool result of each step (of `followup` length) and
//!   the right call are appended to the context, so the stream never depends on what a
//!   target answered.
//!
//! or from a file of the user's own tasks (`kind = "file"`): JSON lines of
//! `{"prompt": ..., "check": {...}}` with an optional `system`, `group` and
//! `max_output_tokens`; every line is checked when the workload is read, and a bad one
//! is refused with its line number.

mod builtin;

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::WorkloadError;
use crate::check::{Checker, TaskCheck};

pub use builtin::{MadeTask, tool_prefix, tools_text};

/// The most tasks a task file may hold.
pub const MAX_FILE_TASKS: usize = 100_000;

/// Where a workload's tasks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Short arithmetic, a number checker.
    Arithmetic,
    /// Review sentiment, a label checker.
    Sentiment,
    /// A key hidden in a long context, a number checker per depth.
    Needle,
    /// Agent tool calls, a JSON Schema checker with expected arguments.
    ToolCall,
    /// The user's own tasks, from `path`.
    File,
}

/// The `[tasks]` table of a workload spec.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TasksSpec {
    /// The generator, or `file`.
    pub kind: TaskKind,
    /// `needle`: where the key is hidden, as fractions of the haystack (0 = start,
    /// 1 = end); sessions cycle through them. Default `[0.1, 0.5, 0.9]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depths: Vec<f64>,
    /// `file`: JSON lines of tasks; relative paths are relative to the workload file
    /// (resolved to an absolute path when the spec is loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `file`: SHA-256 (hex) of the file, filled in when it is read; a value written in
    /// the spec pins the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The tasks read from the file (not part of the spec's JSON).
    #[serde(skip)]
    #[schemars(skip)]
    pub loaded: Option<Arc<Vec<FileTask>>>,
}

impl PartialEq for TasksSpec {
    /// Specs are equal when they say the same (a loaded file is named by its digest).
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind
            && self.depths == o.depths
            && self.path == o.path
            && self.sha256 == o.sha256
    }
}

/// The default needle depths.
pub const DEFAULT_DEPTHS: [f64; 3] = [0.1, 0.5, 0.9];

/// One line of a task file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTaskLine {
    /// The user message.
    pub prompt: String,
    /// A system message before it, if any.
    #[serde(default)]
    pub system: Option<String>,
    /// What a right reply is.
    pub check: Checker,
    /// Label the task is counted under (`verification.by_group`).
    #[serde(default)]
    pub group: Option<String>,
    /// Output tokens for this task (default: the workload's `output`).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// A task of a file, compiled.
#[derive(Debug)]
pub struct FileTask {
    /// The system message.
    pub system: Option<String>,
    /// The user message.
    pub prompt: String,
    /// Its checker.
    pub check: Arc<TaskCheck>,
    /// Its output length.
    pub max_output_tokens: Option<u32>,
}

fn invalid(origin: &str, field: &str, message: String) -> WorkloadError {
    WorkloadError::Invalid {
        origin: origin.to_string(),
        field: field.to_string(),
        message,
    }
}

impl TasksSpec {
    /// Checks the table's fields (the file itself is checked by [`TasksSpec::load`]).
    pub fn validate(&self, origin: &str) -> Result<(), WorkloadError> {
        if !self.depths.is_empty() && self.kind != TaskKind::Needle {
            return Err(invalid(
                origin,
                "tasks.depths",
                "only `needle` tasks have depths".into(),
            ));
        }
        if let Some(d) = self
            .depths
            .iter()
            .find(|d| !(d.is_finite() && (0.0..=1.0).contains(*d)))
        {
            return Err(invalid(
                origin,
                "tasks.depths",
                format!("a depth is a fraction from 0 to 1, got {d}"),
            ));
        }
        match (self.kind, &self.path) {
            (TaskKind::File, None) => Err(invalid(
                origin,
                "tasks.path",
                "`file` tasks need a path (JSON lines of tasks)".into(),
            )),
            (k, Some(_)) if k != TaskKind::File => Err(invalid(
                origin,
                "tasks.path",
                "only `file` tasks are read from a path".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The needle depths (the default ones when none are given).
    pub fn depths(&self) -> &[f64] {
        if self.depths.is_empty() {
            &DEFAULT_DEPTHS
        } else {
            &self.depths
        }
    }

    /// Reads and checks a task file (other kinds need none); `base` is the workload
    /// file's folder.
    pub fn load(&mut self, base: &Path, origin: &str) -> Result<(), WorkloadError> {
        let Some(p) = &self.path else { return Ok(()) };
        if self.loaded.is_some() {
            return Ok(());
        }
        let crate::pinned::PinnedFile {
            shown,
            sha256,
            text,
        } = crate::pinned::read(p, self.sha256.as_deref(), base, origin, "tasks")?;
        let tasks = parse_file(&text).map_err(|m| WorkloadError::Parse {
            origin: format!("{origin}: tasks {shown}"),
            message: m,
        })?;
        self.path = Some(shown);
        self.sha256 = Some(sha256);
        self.loaded = Some(Arc::new(tasks));
        Ok(())
    }

    /// Makes the task of call `call` of session `session` (`input_tokens` and
    /// `followup_tokens` drawn from the spec's lengths).
    pub fn make(
        &self,
        rng: &mut impl Rng,
        session: u64,
        call: u32,
        input_tokens: u32,
        followup_tokens: u32,
    ) -> MadeTask {
        match self.kind {
            TaskKind::Arithmetic => builtin::arithmetic(rng),
            TaskKind::Sentiment => builtin::sentiment(rng, input_tokens),
            TaskKind::Needle => {
                let depths = self.depths();
                let depth = depths[((session + u64::from(call)) % depths.len() as u64) as usize];
                builtin::needle(rng, input_tokens, depth)
            }
            TaskKind::ToolCall => builtin::tool_call(rng, call, followup_tokens),
            TaskKind::File => {
                let tasks = self.loaded.as_ref().filter(|t| !t.is_empty());
                match tasks {
                    Some(t) => {
                        let task = &t[(session as usize + call as usize) % t.len()];
                        MadeTask {
                            user_text: task.prompt.clone(),
                            check: Arc::clone(&task.check),
                            answer_text: String::new(),
                            max_output_tokens: task.max_output_tokens,
                            system: task.system.clone(),
                        }
                    }
                    // An unread file: a validated spec is always loaded before use.
                    None => builtin::arithmetic(rng),
                }
            }
        }
    }
}

/// Parses and compiles a task file: one JSON object per non-empty line.
pub fn parse_file(text: &str) -> Result<Vec<FileTask>, String> {
    let mut tasks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if tasks.len() == MAX_FILE_TASKS {
            return Err(format!("more than {MAX_FILE_TASKS} tasks"));
        }
        let t: FileTaskLine = serde_json::from_str(line)
            .map_err(|e| format!("line {at}: {}", e.to_string().replace('\n', " ")))?;
        if t.prompt.trim().is_empty() {
            return Err(format!("line {at}: `prompt` is empty"));
        }
        if let Some(n) = t.max_output_tokens
            && (n == 0 || f64::from(n) > crate::bounds::MAX_TOKENS)
        {
            return Err(format!(
                "line {at}: `max_output_tokens` must be in 1..={}",
                crate::bounds::MAX_TOKENS
            ));
        }
        let check =
            TaskCheck::new(t.check, t.group).map_err(|m| format!("line {at}: check: {m}"))?;
        tasks.push(FileTask {
            system: t.system,
            prompt: t.prompt,
            check: Arc::new(check),
            max_output_tokens: t.max_output_tokens,
        });
    }
    if tasks.is_empty() {
        return Err("holds no task".into());
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_file_is_read_and_a_bad_line_named() {
        let good = r#"{"prompt": "What is the capital of France?", "check": {"kind": "exact", "answer": "Paris"}, "group": "geo"}

{"prompt": "2+2?", "check": {"kind": "number", "answer": 4}, "max_output_tokens": 4}"#;
        let t = parse_file(good).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].check.group.as_deref(), Some("geo"));
        assert_eq!(t[1].max_output_tokens, Some(4));
        let bad_regex = format!(
            "{}\n{}",
            good.lines().next().unwrap(),
            r#"{"prompt": "x", "check": {"kind": "regex", "pattern": "[a-"}}"#
        );
        let e = parse_file(&bad_regex).unwrap_err();
        assert!(e.starts_with("line 2: check: regex"), "{e}");
        let e = parse_file(r#"{"prompt": "x", "check": {"kind": "lable", "answer": "a"}}"#)
            .unwrap_err();
        assert!(e.starts_with("line 1:") && e.contains("lable"), "{e}");
        let e =
            parse_file(r#"{"prompt": "x", "check": {"kind": "exact", "answer": "a"}, "extra": 1}"#)
                .unwrap_err();
        assert!(e.contains("extra"), "{e}");
        assert_eq!(parse_file("\n\n").unwrap_err(), "holds no task");
        let e = parse_file(r#"{"prompt": " ", "check": {"kind": "exact", "answer": "a"}}"#)
            .unwrap_err();
        assert!(e.contains("prompt"), "{e}");
    }
}
