//! Target settings: the typed keys a target kind accepts, declared once by the crate
//! that implements the kind (`kernels` for local engines, `providers` for remote
//! targets) and read by the harness's target registry for validation, `infermeter
//! targets` and the README's table.

use std::collections::BTreeMap;

/// What a setting's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Free text.
    Text,
    /// `true` or `false` (also `1`/`0`, `yes`/`no`).
    Bool,
    /// A positive number of seconds.
    Seconds,
    /// An integer in `[min, max]`.
    Integer {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A file path.
    Path,
    /// An `http://` or `https://` URL.
    Url,
    /// The name of an environment variable (never its value).
    EnvVarName,
    /// A JSON value (a string where it does not parse as JSON).
    Json,
    /// A non-negative amount of US dollars.
    Usd,
}

impl KeyType {
    /// How the README and `infermeter targets` describe it.
    pub fn describe(&self) -> String {
        match self {
            KeyType::Text => "text".into(),
            KeyType::Bool => "bool".into(),
            KeyType::Seconds => "seconds".into(),
            KeyType::Integer { min, max: u64::MAX } => format!("integer >= {min}"),
            KeyType::Integer { min, max } => format!("integer {min} to {max}"),
            KeyType::Choice(words) => words.join(" \\| "),
            KeyType::Path => "path".into(),
            KeyType::Url => "URL".into(),
            KeyType::EnvVarName => "variable name".into(),
            KeyType::Json => "JSON".into(),
            KeyType::Usd => "USD".into(),
        }
    }
}

/// One key a target kind accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The key; a family of keys ends in `.*` (`body.*`: any `body.FIELD`).
    pub name: &'static str,
    /// Its value's type.
    pub ty: KeyType,
    /// Its default, as it would be written; `None`: unset unless given.
    pub default: Option<&'static str>,
    /// What it does.
    pub help: &'static str,
}

impl KeySpec {
    /// Whether `key` is this key (or one of this family's).
    pub fn matches(&self, key: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => key.len() > prefix.len() && key.starts_with(prefix),
            None => key == self.name,
        }
    }
}

/// The settings of one target spec, checked against the keys of its kind.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    keys: &'static [KeySpec],
    given: &'a BTreeMap<String, String>,
}

impl<'a> Settings<'a> {
    /// `given` read against `keys`; `Err(key)` names the first key none of `keys`
    /// matches.
    pub fn new(
        keys: &'static [KeySpec],
        given: &'a BTreeMap<String, String>,
    ) -> Result<Self, &'a str> {
        match given.keys().find(|k| !keys.iter().any(|s| s.matches(k))) {
            Some(unknown) => Err(unknown.as_str()),
            None => Ok(Self { keys, given }),
        }
    }

    /// The value given for `key`, else its declared default.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.given.get(key).map(String::as_str).or_else(|| {
            self.keys
                .iter()
                .find(|s| s.name == key)
                .and_then(|s| s.default)
        })
    }

    /// The integer given for `key` (else its default), checked against the bounds its
    /// declaration states; `Err` says what is wrong with the value.
    pub fn integer(&self, key: &str) -> Result<Option<u64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let (min, max) = match self.keys.iter().find(|s| s.name == key).map(|s| s.ty) {
            Some(KeyType::Integer { min, max }) => (min, max),
            _ => (0, u64::MAX),
        };
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ if max == u64::MAX => Err(format!("`{v}` is not an integer of at least {min}")),
            _ => Err(format!("`{v}` is not an integer from {min} to {max}")),
        }
    }

    /// Whether the spec gave `key` itself.
    pub fn given(&self, key: &str) -> bool {
        self.given.contains_key(key)
    }

    /// Every given key of the family `prefix` (`body.`), without the prefix.
    pub fn family(&self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.given
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }
}

/// The names of `keys`, comma-separated (for error messages).
pub fn names(keys: &[KeySpec]) -> String {
    keys.iter()
        .map(|k| k.name.replace('*', "NAME"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[KeySpec] = &[
        KeySpec {
            name: "model",
            ty: KeyType::Text,
            default: Some("m0"),
            help: "",
        },
        KeySpec {
            name: "body.*",
            ty: KeyType::Json,
            default: None,
            help: "",
        },
        KeySpec {
            name: "n",
            ty: KeyType::Integer { min: 1, max: 8 },
            default: Some("2"),
            help: "",
        },
    ];

    #[test]
    fn defaults_families_and_unknown_keys() {
        let given: BTreeMap<String, String> = [("body.temperature", "0"), ("body.stop", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Settings::new(KEYS, &given).unwrap();
        assert_eq!(s.get("model"), Some("m0"));
        assert!(!s.given("model"));
        assert_eq!(
            s.family("body.").collect::<Vec<_>>(),
            vec![("stop", "x"), ("temperature", "0")]
        );
        let mut bad = given.clone();
        let mut empty_field = given.clone();
        bad.insert("colour".into(), "red".into());
        assert_eq!(Settings::new(KEYS, &bad).unwrap_err(), "colour");
        empty_field.insert("body.".into(), "x".into());
        assert_eq!(Settings::new(KEYS, &empty_field).unwrap_err(), "body.");
        assert_eq!(names(KEYS), "model, body.NAME, n");
        assert_eq!(s.integer("n"), Ok(Some(2)));
        let nine: BTreeMap<String, String> = [("n".to_string(), "9".to_string())].into();
        let e = Settings::new(KEYS, &nine)
            .unwrap()
            .integer("n")
            .unwrap_err();
        assert_eq!(e, "`9` is not an integer from 1 to 8");
    }
}
