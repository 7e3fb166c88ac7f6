//! The built-in task generators: prompts whose right answer is computed with them.
//! Each draws only from the session's seeded generator, so the same seed makes the
//! same tasks and answers in every run.

use std::sync::Arc;

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use crate::check::{Checker, TaskCheck};
use crate::text::{count_tokens, synthetic_text};

/// One generated task: the new user message, its checker, and the right answer (what
/// is appended to the context before the session's next call).
pub struct MadeTask {
    /// The user message's text.
    pub user_text: String,
    /// What a right reply is.
    pub check: Arc<TaskCheck>,
    /// The right reply's text.
    pub answer_text: String,
    /// The output length, when the task sets it.
    pub max_output_tokens: Option<u32>,
    /// A system message before the user message (file tasks).
    pub system: Option<String>,
}

fn made(user_text: String, checker: Checker, group: String, answer_text: String) -> MadeTask {
    let check = TaskCheck::new(checker, Some(group)).expect("built-in checkers compile");
    MadeTask {
        user_text,
        check: Arc::new(check),
        answer_text,
        max_output_tokens: None,
        system: None,
    }
}

/// `a + b`, `a - b` (never negative) or `a * b`, after two worked examples.
pub(super) fn arithmetic(rng: &mut impl Rng) -> MadeTask {
    let (op, sym, a, b, r) = match rng.random_range(0..3) {
        0 => {
            let (a, b) = (rng.random_range(10..100), rng.random_range(10..100));
            ("add", "+", a, b, a + b)
        }
        1 => {
            let (a, b) = (rng.random_range(20..100), rng.random_range(1..20));
            ("sub", "-", a, b, a - b)
        }
        _ => {
            let (a, b) = (rng.random_range(2..13), rng.random_range(2..13));
            ("mul", "*", a, b, a * b)
        }
    };
    let text = format!(
        "Answer with the number only.\n\nQuestion: What is 12 + 7?\nAnswer: 19\n\nQuestion: What is 9 * 6?\nAnswer: 54\n\nQuestion: What is {a} {sym} {b}?\nAnswer:"
    );
    made(
        text,
        Checker::Number {
            answer: f64::from(r),
            tolerance: 0.0,
        },
        format!("op={op}"),
        format!(" {r}"),
    )
}

const SUBJECTS: [&str; 8] = [
    "The food",
    "The service",
    "The room",
    "The film",
    "The battery",
    "The delivery",
    "The staff",
    "The screen",
];
const POSITIVE: [&str; 6] = [
    "excellent",
    "wonderful",
    "great",
    "delightful",
    "superb",
    "fantastic",
];
const NEGATIVE: [&str; 6] = [
    "terrible",
    "awful",
    "horrible",
    "disappointing",
    "dreadful",
    "poor",
];
const NEUTRAL: [&str; 6] = [
    "I went there on a Tuesday.",
    "We ordered it last month.",
    "It came in a blue box.",
    "My friend told me about it.",
    "I used it for two weeks.",
    "The shop is near the station.",
];

/// A review of clear polarity, about `input_tokens` long, after two labelled examples.
pub(super) fn sentiment(rng: &mut impl Rng, input_tokens: u32) -> MadeTask {
    let positive = rng.random_bool(0.5);
    let adjectives = if positive { &POSITIVE } else { &NEGATIVE };
    let head = "Classify the sentiment of the review as positive or negative. Answer with one word.\n\nReview: The staff were wonderful and the room was great.\nSentiment: positive\n\nReview: The battery was awful and the screen was poor.\nSentiment: negative\n\nReview:";
    let tail = "\nSentiment:";
    let budget = input_tokens.saturating_sub((count_tokens(head) + count_tokens(tail)) as u32);
    let mut review = String::new();
    let mut polar = 0;
    // At least two sentences of the polarity; neutral ones fill the length.
    while polar < 2 || (count_tokens(&review) as u32) < budget {
        let s = if polar < 2 || rng.random_bool(0.5) {
            polar += 1;
            format!(
                " {} was {}.",
                SUBJECTS.choose(rng).expect("not empty"),
                adjectives.choose(rng).expect("not empty")
            )
        } else {
            format!(" {}", NEUTRAL.choose(rng).expect("not empty"))
        };
        review.push_str(&s);
        if polar > 64 {
            break;
        }
    }
    let label = if positive { "positive" } else { "negative" };
    made(
        format!("{head}{review}{tail}"),
        Checker::Label {
            labels: vec!["positive".into(), "negative".into()],
            answer: label.into(),
        },
        format!("label={label}"),
        format!(" {label}"),
    )
}

const COLOURS: [&str; 8] = [
    "red", "blue", "green", "yellow", "black", "white", "orange", "purple",
];
const PLACES: [&str; 6] = ["vault", "locker", "gate", "cabinet", "door", "safe"];

/// A haystack of synthetic words about `input_tokens` long, with one sentence giving
/// a 4-digit code at `depth`, and a question for it at the end.
pub(super) fn needle(rng: &mut impl Rng, input_tokens: u32, depth: f64) -> MadeTask {
    let colour = COLOURS.choose(rng).expect("not empty");
    let place = PLACES.choose(rng).expect("not empty");
    let code: u32 = rng.random_range(1000..10000);
    let head = "Read the notes and answer the question after them.\n\nNotes:";
    let needle = format!(" The access code of the {colour} {place} is {code}.");
    let question = format!(
        "\n\nQuestion: What is the access code of the {colour} {place}? Answer with the number only.\nAnswer:"
    );
    let fixed = count_tokens(head) + count_tokens(&needle) + count_tokens(&question);
    let hay = (input_tokens as usize).saturating_sub(fixed).max(16);
    let before = ((hay as f64) * depth).round() as usize;
    let (t1, _) = synthetic_text(rng, before);
    let (t2, _) = synthetic_text(rng, hay - before);
    made(
        format!("{head}{t1}{needle}{t2}{question}"),
        Checker::Number {
            answer: f64::from(code),
            tolerance: 0.0,
        },
        format!("depth={depth:.2}"),
        format!(" {code}"),
    )
}

/// One tool of the agent's set: name, what it does, arguments (name, JSON Schema).
struct Tool {
    name: &'static str,
    about: &'static str,
    args: &'static [(&'static str, &'static str)],
}

const TOOLS: [Tool; 4] = [
    Tool {
        name: "get_weather",
        about: "the weather forecast of a city",
        args: &[
            ("city", "string"),
            ("unit", "\"celsius\" or \"fahrenheit\""),
        ],
    },
    Tool {
        name: "get_time",
        about: "the local time in a city",
        args: &[("city", "string")],
    },
    Tool {
        name: "convert_currency",
        about: "an amount of money in another currency",
        args: &[
            ("amount", "number"),
            ("from", "three-letter currency code"),
            ("to", "three-letter currency code"),
        ],
    },
    Tool {
        name: "search_flights",
        about: "flights between two cities",
        args: &[("origin", "string"), ("destination", "string")],
    },
];
const CITIES: [&str; 10] = [
    "Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Madrid", "Seoul", "Nairobi", "Toronto", "Sydney",
];
const CURRENCIES: [&str; 6] = ["USD", "EUR", "JPY", "GBP", "CHF", "CAD"];

/// The agent's instructions and tool definitions (the end of the shared prefix).
pub fn tools_text() -> String {
    let mut s = String::from(
        "You are an agent that completes tasks by calling tools. For each request, reply with exactly one JSON object and nothing else: {\"tool\": <tool name>, \"arguments\": {<argument>: <value>}}.\n\nTools:\n",
    );
    for t in &TOOLS {
        let args: Vec<String> = t.args.iter().map(|(n, ty)| format!("{n}: {ty}")).collect();
        s.push_str(&format!("- {}({}): {}\n", t.name, args.join(", "), t.about));
    }
    s.push_str("\nExample: for \"What time is it in Rome?\" reply {\"tool\": \"get_time\", \"arguments\": {\"city\": \"Rome\"}}\n");
    s
}

/// The shared prefix of tool-call tasks: background notes of synthetic words, then the
/// tool definitions, about `tokens` long in all (never shorter than the definitions).
pub fn tool_prefix(rng: &mut impl Rng, tokens: u32) -> String {
    let tools = tools_text();
    let head = "Background notes (not needed for the tasks):";
    let filler = (tokens as usize).saturating_sub(count_tokens(&tools) + count_tokens(head) + 2);
    if filler == 0 {
        return tools;
    }
    let (words, _) = synthetic_text(rng, filler);
    format!("{head}{words}\n\n{tools}")
}

/// The JSON Schema of a valid call of one of the tools: a known tool, and (one `if`
/// per tool, so that a failure names the argument) that tool's arguments.
fn tools_schema() -> Value {
    let per_tool: Vec<Value> = TOOLS
        .iter()
        .map(|t| {
            let props: serde_json::Map<String, Value> = t
                .args
                .iter()
                .map(|(n, _)| {
                    let ty = match (t.name, *n) {
                        (_, "amount") => json!({"type": "number"}),
                        ("get_weather", "unit") => json!({"enum": ["celsius", "fahrenheit"]}),
                        (_, "from" | "to") => json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
                        _ => json!({"type": "string", "minLength": 1}),
                    };
                    ((*n).to_string(), ty)
                })
                .collect();
            let required: Vec<&str> = t.args.iter().map(|(n, _)| *n).collect();
            json!({
                "if": {"properties": {"tool": {"const": t.name}}},
                "then": {
                    "properties": {
                        "arguments": {"required": required, "properties": props}
                    }
                }
            })
        })
        .collect();
    json!({
        "type": "object",
        "required": ["tool", "arguments"],
        "properties": {
            "tool": {"enum": TOOLS.iter().map(|t| t.name).collect::<Vec<_>>()},
            "arguments": {"type": "object"}
        },
        "allOf": per_tool
    })
}

/// Step `call` of an agent task: the previous step's tool result (of
/// `result_tokens`, after the first step), then a request for one tool call.
pub(super) fn tool_call(rng: &mut impl Rng, call: u32, result_tokens: u32) -> MadeTask {
    let tool = &TOOLS[rng.random_range(0..TOOLS.len())];
    let city = *CITIES.choose(rng).expect("not empty");
    let other = loop {
        let c = *CITIES.choose(rng).expect("not empty");
        if c != city {
            break c;
        }
    };
    let (ask, args) = match tool.name {
        "get_weather" => {
            let unit = if rng.random_bool(0.5) {
                "celsius"
            } else {
                "fahrenheit"
            };
            (
                format!("What is the weather in {city}? Give it in {unit}."),
                json!({"city": city, "unit": unit}),
            )
        }
        "get_time" => (format!("What time is it in {city}?"), json!({"city": city})),
        "convert_currency" => {
            let amount = rng.random_range(2..500) * 10;
            let from = *CURRENCIES.choose(rng).expect("not empty");
            let to = loop {
                let c = *CURRENCIES.choose(rng).expect("not empty");
                if c != from {
                    break c;
                }
            };
            (
                format!("How much is {amount} {from} in {to}?"),
                json!({"amount": amount, "from": from, "to": to}),
            )
        }
        _ => (
            format!("Find flights from {city} to {other}."),
            json!({"origin": city, "destination": other}),
        ),
    };
    let expected = json!({"tool": tool.name, "arguments": args.clone()});
    let text = if call == 0 {
        format!("Request: {ask}")
    } else {
        let (result, _) = synthetic_text(rng, result_tokens as usize);
        format!("Tool result:{result}\n\nNext request: {ask}")
    };
    made(
        text,
        Checker::JsonSchema {
            schema: tools_schema(),
            expected: Some(expected.clone()),
        },
        format!("tool={}", tool.name),
        // In the order the instructions show.
        format!("{{\"tool\": \"{}\", \"arguments\": {args}}}", tool.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_right_answer_of_each_generator_passes_its_own_checker() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for i in 0..200 {
            let tasks = [
                arithmetic(&mut rng),
                sentiment(&mut rng, 200),
                needle(&mut rng, 300, [0.1, 0.5, 0.9][i % 3]),
                tool_call(&mut rng, (i % 3) as u32, 40),
            ];
            for t in tasks {
                let v = t.check.grade(&t.answer_text);
                assert!(v.passed, "{}: {:?} on {:?}", t.user_text, v, t.answer_text);
            }
        }
    }

    #[test]
    fn a_wrong_answer_fails_each_generator_checker() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let a = arithmetic(&mut rng);
        assert!(!a.check.grade(" 100000").passed);
        let s = sentiment(&mut rng, 120);
        let other = if s.answer_text.contains("positive") {
            "negative"
        } else {
            "positive"
        };
        assert!(!s.check.grade(other).passed);
        let n = needle(&mut rng, 200, 0.5);
        assert!(!n.check.grade("0").passed);
        let t = tool_call(&mut rng, 0, 0);
        let mut wrong: Value = serde_json::from_str(&t.answer_text).unwrap();
        wrong["tool"] = json!("get_time");
        wrong["arguments"] = json!({"city": "Atlantis"});
        assert!(!t.check.grade(&wrong.to_string()).passed);
        assert!(!t.check.grade("I would call get_weather").passed);
        // A failure of the tools' schema names the argument.
        let schema = TaskCheck::new(
            Checker::JsonSchema {
                schema: tools_schema(),
                expected: None,
            },
            None,
        )
        .unwrap();
        let v = schema.grade(r#"{"tool": "get_weather", "arguments": {"city": "Paris"}}"#);
        assert_eq!(v.failure, Some(results::CheckFailure::Malformed));
        assert!(
            v.detail.contains("/arguments") && v.detail.contains("unit"),
            "{v:?}"
        );
        let v = schema.grade(r#"{"tool": "get_currency", "arguments": {}}"#);
        assert!(v.detail.contains("/tool"), "{v:?}");
        assert!(
            schema
                .grade(r#"{"tool": "get_time", "arguments": {"city": "Oslo"}}"#)
                .passed
        );
    }

    #[test]
    fn a_needle_sits_at_its_depth_in_a_haystack_of_the_asked_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for depth in [0.0, 0.25, 1.0] {
            let t = needle(&mut rng, 1000, depth);
            let n = count_tokens(&t.user_text) as f64;
            assert!((n - 1000.0).abs() < 20.0, "{n} tokens");
            let at = t.user_text.find("The access code").unwrap() as f64;
            let hay_end = t.user_text.find("\n\nQuestion").unwrap() as f64;
            let frac = at / hay_end;
            assert!((frac - depth).abs() < 0.1, "depth {depth}: at {frac}");
            assert_eq!(
                t.check.group.as_deref(),
                Some(format!("depth={depth:.2}").as_str())
            );
        }
    }

    #[test]
    fn the_tool_prefix_has_the_asked_length_and_ends_with_the_tools() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let p = tool_prefix(&mut rng, 2000);
        assert!(
            (count_tokens(&p) as i64 - 2000).abs() < 8,
            "{}",
            count_tokens(&p)
        );
        assert!(p.ends_with(&tools_text()));
        assert_eq!(tool_prefix(&mut rng, 10), tools_text());
    }
}
