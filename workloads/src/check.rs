//! Checkers: what a right reply to a verifiable request is, and the grading of a
//! reply against it (README, "Verified tasks").
//!
//! A checker reads the reply's **answer line** (its first non-empty line, trimmed),
//! except `json_schema`, which reads the first JSON object or array in the reply that
//! parses. Most
//! models go on after answering, and the harness asks for an exact output length, so
//! the rest of the reply is never graded. The kinds:
//!
//! - `exact`: the answer line equals `answer` after normalising (surrounding quotes,
//!   backticks, asterisks and trailing `.,;:!` removed, runs of spaces collapsed;
//!   case-insensitive unless `case_sensitive`).
//! - `label`: the normalised answer line is one of `labels` (case-insensitive); a label
//!   other than `answer` is a wrong answer, anything else is malformed.
//! - `regex`: `pattern` matches somewhere in the answer line.
//! - `number`: the first number on the answer line is within `tolerance` of `answer`.
//! - `json_schema`: the reply holds a JSON value that validates against `schema`
//!   (malformed otherwise), and it contains every value of `expected` (a subset match:
//!   objects may have more keys; arrays and scalars are equal).
//!
//! Checkers are compiled once when the workload is read ([`TaskCheck::new`]), and a bad
//! one is refused then with what is wrong: a regex that does not compile, a schema that
//! is not a valid JSON Schema, an `answer` outside its `labels`, an `expected` value
//! the schema itself rejects (a task that could never pass).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use results::CheckFailure;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest regex a checker may compile, bytes of its compiled program.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The most candidate starts tried when looking for a JSON value in a reply.
const JSON_STARTS_TRIED: usize = 64;

/// What a right reply is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Checker {
    /// The answer line equals `answer` (normalised).
    Exact {
        /// The right answer.
        answer: String,
        /// Compare case as well (default: case-insensitive).
        #[serde(default)]
        case_sensitive: bool,
    },
    /// The answer line is one of `labels`, and it is `answer`.
    Label {
        /// Every answer the request allows.
        labels: Vec<String>,
        /// The right one.
        answer: String,
    },
    /// `pattern` matches in the answer line.
    Regex {
        /// A regular expression (Rust `regex` syntax).
        pattern: String,
    },
    /// The first number on the answer line is within `tolerance` of `answer`.
    Number {
        /// The right value.
        answer: f64,
        /// Largest absolute difference accepted (default 0: exact).
        #[serde(default)]
        tolerance: f64,
    },
    /// The reply holds JSON valid against `schema`, containing `expected`.
    JsonSchema {
        /// A JSON Schema (draft 2020-12 unless `$schema` says otherwise; no remote
        /// references are fetched).
        schema: Value,
        /// Values the JSON must contain (subset match); absent: any valid JSON passes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<Value>,
    },
}

impl Checker {
    /// The kind's name, as in the spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Checker::Exact { .. } => "exact",
            Checker::Label { .. } => "label",
            Checker::Regex { .. } => "regex",
            Checker::Number { .. } => "number",
            Checker::JsonSchema { .. } => "json_schema",
        }
    }
}

/// A compiled checker and the group its request reports under.
pub struct TaskCheck {
    /// The checker as written.
    pub checker: Checker,
    /// Label the request is counted under in `verification.by_group` (e.g.
    /// `depth=0.50`); `None` counts it under the checker's kind only.
    pub group: Option<String>,
    compiled: Compiled,
}

enum Compiled {
    None,
    Regex(Regex),
    Schema(Box<jsonschema::Validator>),
}

impl fmt::Debug for TaskCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskCheck")
            .field("checker", &self.checker)
            .field("group", &self.group)
            .finish()
    }
}

impl PartialEq for TaskCheck {
    fn eq(&self, other: &Self) -> bool {
        self.checker == other.checker && self.group == other.group
    }
}

/// The grade of one reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the reply is right.
    pub passed: bool,
    /// Why not, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<CheckFailure>,
    /// What was read and what was expected, one line.
    pub detail: String,
}

impl Verdict {
    fn pass(detail: String) -> Self {
        Self {
            passed: true,
            failure: None,
            detail,
        }
    }

    fn fail(failure: CheckFailure, detail: String) -> Self {
        Self {
            passed: false,
            failure: Some(failure),
            detail,
        }
    }

    /// A request that failed or gave no text: nothing to grade.
    pub fn not_graded(failure: CheckFailure, detail: impl Into<String>) -> Self {
        Self::fail(failure, detail.into())
    }
}

impl TaskCheck {
    /// Compiles `checker`; the error says what is wrong with it, one line.
    pub fn new(checker: Checker, group: Option<String>) -> Result<Self, String> {
        let compiled = match &checker {
            Checker::Exact { answer, .. } => {
                if normalise(answer, true).is_empty() {
                    return Err("exact: `answer` is empty".into());
                }
                Compiled::None
            }
            Checker::Label { labels, answer } => {
                if labels.is_empty() {
                    return Err("label: `labels` is empty".into());
                }
                let mut seen: Vec<String> = Vec::new();
                for l in labels {
                    let n = normalise(l, false);
                    if n.is_empty() {
                        return Err("label: a label is empty".into());
                    }
                    if seen.contains(&n) {
                        return Err(format!("label: `{l}` is listed twice"));
                    }
                    seen.push(n);
                }
                if !seen.contains(&normalise(answer, false)) {
                    return Err(format!(
                        "label: `answer` `{answer}` is not one of the labels ({})",
                        labels.join(", ")
                    ));
                }
                Compiled::None
            }
            Checker::Regex { pattern } => {
                if pattern.is_empty() {
                    return Err("regex: `pattern` is empty".into());
                }
                let re = regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        format!(
                            "regex: `pattern` does not compile: {}",
                            one_line(&e.to_string())
                        )
                    })?;
                Compiled::Regex(re)
            }
            Checker::Number { answer, tolerance } => {
                if !answer.is_finite() {
                    return Err("number: `answer` must be a finite number".into());
                }
                if !(tolerance.is_finite() && *tolerance >= 0.0) {
                    return Err(format!(
                        "number: `tolerance` must be a finite number >= 0, got {tolerance}"
                    ));
                }
                Compiled::None
            }
            Checker::JsonSchema { schema, expected } => {
                let v = jsonschema::validator_for(schema).map_err(|e| {
                    format!(
                        "json_schema: `schema` is not a valid JSON Schema: {}",
                        one_line(&e.to_string())
                    )
                })?;
                if let Some(x) = expected
                    && let Err(e) = v.validate(x)
                {
                    return Err(format!(
                        "json_schema: `expected` fails its own schema (the task could never pass): {}",
                        one_line(&e.to_string())
                    ));
                }
                Compiled::Schema(Box::new(v))
            }
        };
        if let Some(g) = &group
            && (g.is_empty() || g.len() > 64 || g.chars().any(char::is_control))
        {
            return Err(format!("group `{g}` must be 1 to 64 printable characters"));
        }
        Ok(Self {
            checker,
            group,
            compiled,
        })
    }

    /// Grades `reply` (the target's answer text, reasoning excluded).
    pub fn grade(&self, reply: &str) -> Verdict {
        use CheckFailure::{Malformed, WrongAnswer};
        let line = answer_line(reply);
        let shown = clip(line, 80);
        match (&self.checker, &self.compiled) {
            (Checker::JsonSchema { expected, .. }, Compiled::Schema(v)) => {
                let Some(found) = first_json(reply) else {
                    return Verdict::fail(Malformed, "no JSON value in the reply".into());
                };
                if let Err(e) = v.validate(&found) {
                    return Verdict::fail(Malformed, schema_failure(&e));
                }
                match expected {
                    Some(x) => match subset_mismatch(x, &found, "") {
                        None => Verdict::pass("valid JSON with the expected values".into()),
                        Some(m) => Verdict::fail(WrongAnswer, m),
                    },
                    None => Verdict::pass("valid JSON".into()),
                }
            }
            _ if line.is_empty() => Verdict::fail(Malformed, "the reply has no answer line".into()),
            (
                Checker::Exact {
                    answer,
                    case_sensitive,
                },
                _,
            ) => {
                if normalise(line, *case_sensitive) == normalise(answer, *case_sensitive) {
                    Verdict::pass(format!("`{shown}`"))
                } else {
                    Verdict::fail(WrongAnswer, format!("expected `{answer}`, got `{shown}`"))
                }
            }
            (Checker::Label { labels, answer }, _) => {
                let got = normalise(line, false);
                match labels.iter().find(|l| normalise(l, false) == got) {
                    None => Verdict::fail(
                        Malformed,
                        format!("`{shown}` is not one of {}", labels.join(", ")),
                    ),
                    Some(l) if normalise(l, false) == normalise(answer, false) => {
                        Verdict::pass(format!("`{l}`"))
                    }
                    Some(l) => {
                        Verdict::fail(WrongAnswer, format!("expected `{answer}`, got `{l}`"))
                    }
                }
            }
            (Checker::Regex { pattern }, Compiled::Regex(re)) => {
                if re.is_match(line) {
                    Verdict::pass(format!("`{shown}` matches"))
                } else {
                    Verdict::fail(WrongAnswer, format!("`{shown}` does not match `{pattern}`"))
                }
            }
            (Checker::Number { answer, tolerance }, _) => match first_number(line) {
                None => Verdict::fail(Malformed, format!("no number in `{shown}`")),
                Some(x) if (x - answer).abs() <= *tolerance => Verdict::pass(format!("{x}")),
                Some(x) => Verdict::fail(
                    WrongAnswer,
                    format!("expected {answer} ± {tolerance}, got {x}"),
                ),
            },
            // `new` compiles every regex and schema checker.
            _ => Verdict::fail(Malformed, "checker not compiled".into()),
        }
    }
}

/// The first non-empty line of `reply`, trimmed.
pub fn answer_line(reply: &str) -> &str {
    reply
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// `s` with surrounding quotes, backticks and asterisks and trailing `.,;:!` removed,
/// whitespace runs collapsed, lowercased unless `case_sensitive`.
fn normalise(s: &str, case_sensitive: bool) -> String {
    let t = s
        .trim()
        .trim_matches(['"', '\'', '`', '*'])
        .trim_end_matches(['.', ',', ';', ':', '!'])
        .trim_matches(['"', '\'', '`', '*'])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if case_sensitive { t } else { t.to_lowercase() }
}

/// The first number in `s` (digits with an optional sign, thousands commas, decimals
/// and exponent).
fn first_number(s: &str) -> Option<f64> {
    static NUMBER: OnceLock<Regex> = OnceLock::new();
    let re = NUMBER.get_or_init(|| {
        Regex::new(r"[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:[eE][-+]?\d+)?").expect("a valid regex")
    });
    re.find(s)?.as_str().replace(',', "").parse().ok()
}

/// The first JSON object or array in `reply` that parses (text around it ignored).
fn first_json(reply: &str) -> Option<Value> {
    reply
        .char_indices()
        .filter(|(_, c)| matches!(c, '{' | '['))
        .take(JSON_STARTS_TRIED)
        .find_map(|(i, _)| {
            serde_json::Deserializer::from_str(&reply[i..])
                .into_iter::<Value>()
                .next()?
                .ok()
        })
}

/// Where `got` lacks a value of `want` (objects: every key of `want`; arrays and
/// scalars: equal, numbers by value), as a one-line message; `None` when it has all.
fn subset_mismatch(want: &Value, got: &Value, path: &str) -> Option<String> {
    let at = |p: &str| {
        if p.is_empty() {
            "the value".to_string()
        } else {
            format!("`{p}`")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, wv)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match g.get(k) {
                None => Some(format!("{} is missing", at(&p))),
                Some(gv) => subset_mismatch(wv, gv, &p),
            }
        }),
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (wv, gv))| subset_mismatch(wv, gv, &format!("{path}[{i}]"))),
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => None,
        (w, g) if w == g => None,
        (w, g) => Some(format!(
            "{}: expected {}, got {}",
            at(path),
            clip(&w.to_string(), 40),
            clip(&g.to_string(), 40)
        )),
    }
}

/// A schema failure as one line: where, and what (the value itself left out: the
/// reply is kept beside the verdict).
fn schema_failure(e: &jsonschema::ValidationError<'_>) -> String {
    let msg = e.to_string();
    let inst = e.instance.to_string();
    let what = match msg.strip_prefix(inst.as_str()) {
        Some(rest) => format!("the value{rest}"),
        None => msg,
    };
    let at = e.instance_path.to_string();
    let at = if at.is_empty() { "/".to_string() } else { at };
    format!(
        "JSON fails the schema at `{at}`: {}",
        clip(&one_line(&what), 120)
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `n` characters of `s`, with `...` when cut.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> TaskCheck {
        TaskCheck::new(serde_json::from_value(v).unwrap(), None).unwrap()
    }

    fn refused(v: Value) -> String {
        let c: Checker = serde_json::from_value(v).unwrap();
        TaskCheck::new(c, None).unwrap_err()
    }

    #[test]
    fn exact_reads_the_answer_line_normalised() {
        let c = check(json!({"kind": "exact", "answer": "Paris"}));
        assert!(
            c.grade("\n  Paris.\nThe capital of France is Paris.")
                .passed
        );
        assert!(c.grade("**paris**").passed);
        let v = c.grade("Lyon\nParis");
        assert_eq!(v.failure, Some(CheckFailure::WrongAnswer), "{v:?}");
        assert_eq!(c.grade("  \n ").failure, Some(CheckFailure::Malformed));
        let strict = check(json!({"kind": "exact", "answer": "Paris", "case_sensitive": true}));
        assert!(!strict.grade("paris").passed);
        assert!(strict.grade("Paris").passed);
    }

    #[test]
    fn label_tells_a_wrong_label_from_an_off_label_reply() {
        let c = check(
            json!({"kind": "label", "labels": ["positive", "negative"], "answer": "positive"}),
        );
        assert!(c.grade(" Positive.\n").passed);
        assert_eq!(c.grade("negative").failure, Some(CheckFailure::WrongAnswer));
        assert_eq!(
            c.grade("The sentiment is positive").failure,
            Some(CheckFailure::Malformed)
        );
    }

    #[test]
    fn regex_matches_in_the_answer_line_only() {
        let c = check(json!({"kind": "regex", "pattern": r"^\d{3}-\d{4}$"}));
        assert!(c.grade("555-1234\nmore").passed);
        assert_eq!(
            c.grade("call 555-1234").failure,
            Some(CheckFailure::WrongAnswer)
        );
        assert!(!c.grade("nothing\n555-1234").passed);
    }

    #[test]
    fn number_reads_the_first_number_within_tolerance() {
        let c = check(json!({"kind": "number", "answer": 1234.5, "tolerance": 0.5}));
        assert!(c.grade("The answer is 1,234.9 apples").passed);
        assert!(c.grade("1234").passed);
        let v = c.grade("1236");
        assert_eq!(v.failure, Some(CheckFailure::WrongAnswer));
        assert!(v.detail.contains("1236"), "{v:?}");
        assert_eq!(c.grade("many").failure, Some(CheckFailure::Malformed));
        let neg = check(json!({"kind": "number", "answer": -7}));
        assert!(neg.grade("-7").passed);
        assert!(!neg.grade("7").passed);
    }

    #[test]
    fn json_schema_checks_validity_then_the_expected_values() {
        let c = check(json!({
            "kind": "json_schema",
            "schema": {
                "type": "object",
                "required": ["tool", "arguments"],
                "properties": {
                    "tool": {"enum": ["get_weather", "get_time"]},
                    "arguments": {"type": "object", "required": ["city"]}
                }
            },
            "expected": {"tool": "get_weather", "arguments": {"city": "Paris", "days": 2}}
        }));
        let right = r#"Sure: {"tool": "get_weather", "arguments": {"city": "Paris", "days": 2.0, "unit": "c"}} done"#;
        assert!(c.grade(right).passed, "{:?}", c.grade(right));
        let wrong = c.grade(r#"{"tool": "get_weather", "arguments": {"city": "Lyon", "days": 2}}"#);
        assert_eq!(wrong.failure, Some(CheckFailure::WrongAnswer));
        assert!(wrong.detail.contains("arguments.city"), "{wrong:?}");
        let invalid = c.grade(r#"{"tool": "send_mail", "arguments": {}}"#);
        assert_eq!(
            invalid.failure,
            Some(CheckFailure::Malformed),
            "{invalid:?}"
        );
        assert_eq!(c.grade("{ not json").failure, Some(CheckFailure::Malformed));
        let any = check(json!({"kind": "json_schema", "schema": {"type": "array"}}));
        assert!(any.grade("[1, 2]").passed);
        assert!(!any.grade(r#"{"a": 1}"#).passed);
    }

    #[test]
    fn bad_checkers_are_refused_with_what_is_wrong() {
        assert!(
            refused(json!({"kind": "regex", "pattern": "(unclosed"})).contains("does not compile")
        );
        assert!(
            refused(json!({"kind": "label", "labels": ["a", "b"], "answer": "c"}))
                .contains("not one of the labels")
        );
        assert!(
            refused(json!({"kind": "label", "labels": ["a", "A"], "answer": "a"}))
                .contains("twice")
        );
        assert!(refused(json!({"kind": "label", "labels": [], "answer": "a"})).contains("empty"));
        assert!(
            refused(json!({"kind": "number", "answer": 1, "tolerance": -1})).contains("tolerance")
        );
        assert!(refused(json!({"kind": "exact", "answer": "  "})).contains("empty"));
        assert!(
            refused(json!({"kind": "json_schema", "schema": {"type": 12}}))
                .contains("not a valid JSON Schema")
        );
        assert!(
            refused(json!({"kind": "json_schema", "schema": {"type": "object"}, "expected": [1]}))
                .contains("could never pass")
        );
        let unknown: Result<Checker, _> =
            serde_json::from_value(json!({"kind": "fuzzy", "answer": "x"}));
        assert!(unknown.is_err());
        let extra: Result<Checker, _> =
            serde_json::from_value(json!({"kind": "exact", "answer": "x", "tolernce": 1}));
        assert!(extra.is_err());
        let c: Checker = serde_json::from_value(json!({"kind": "exact", "answer": "x"})).unwrap();
        assert!(TaskCheck::new(c, Some(String::new())).is_err());
    }
}
