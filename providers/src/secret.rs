//! The API key: held only here, sent only in its header, and scrubbed from every
//! message that could carry it back (servers echo keys in 401 bodies).

use std::fmt;

/// An API key read from the environment.
#[derive(Clone)]
pub struct Secret(pub(crate) String);

impl Secret {
    /// Reads the key from environment variable `var`; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// The key, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key (and of any 8+ character piece of it
    /// that a server might echo in part) replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let key = self.0.as_str();
        let mut out = text.replace(key, "[redacted]");
        // Servers echo keys in part ("sk-ab...wxyz", "Incorrect API key provided:
        // sk-abc***"): drop any echoed run of 8 or more of the key's characters.
        if key.len() >= 8 && key.is_ascii() {
            for len in (8..key.len()).rev() {
                for start in 0..=key.len() - len {
                    let piece = &key[start..start + len];
                    if out.contains(piece) {
                        out = out.replace(piece, "[redacted]");
                    }
                }
            }
        }
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Scrubs `text` when there is a key.
pub fn scrub(secret: Option<&Secret>, text: &str) -> String {
    match secret {
        Some(s) => s.scrub(text),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_whole_and_partial_echoes() {
        let s = Secret("sk-test-0123456789abcdef".into());
        assert_eq!(
            s.scrub("bad key sk-test-0123456789abcdef!"),
            "bad key [redacted]!"
        );
        let partial = s.scrub("Incorrect API key provided: sk-test-0123****cdef");
        assert!(!partial.contains("sk-test-0123"), "{partial}");
        assert_eq!(s.scrub("nothing here"), "nothing here");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
