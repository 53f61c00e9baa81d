//! Redaction: every secret of the configuration becomes `***` in anything shown or stored.
//!
//! A secret can reach output in other spellings than its own: percent-encoded in a URL,
//! form-encoded in a body, escaped inside a JSON or XML string. All of them are matched,
//! in one pass (Aho-Corasick), longest first.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use percent_encoding::utf8_percent_encode;

use super::template::{COMPONENT, xml_escape};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// The most bytes of secrets (in all their spellings) searched for with a DFA.
const LONGEST_FOR_DFA: usize = 8 << 10;

/// Replaces known secret values with [`MASK`].
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for these secret values (empty ones are ignored).
    pub fn new(secrets: &[String]) -> Redactor {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            patterns.push(secret.clone());
            patterns.push(utf8_percent_encode(secret, COMPONENT).to_string());
            patterns.push(form_urlencoded::byte_serialize(secret.as_bytes()).collect());
            let json = serde_json::Value::from(secret.as_str()).to_string();
            patterns.push(json[1..json.len() - 1].to_string());
            patterns.push(xml_escape(secret));
        }
        patterns.sort();
        patterns.dedup();
        // A DFA searches fastest, but building one takes time that grows with the square
        // of a pattern's length (a 64 KiB secret read from a file took 20 s); past a few
        // KiB of secrets the contiguous NFA, built in linear time, does the searching.
        let total: usize = patterns.iter().map(String::len).sum();
        let kind = (total > LONGEST_FOR_DFA).then_some(AhoCorasickKind::ContiguousNFA);
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(kind)
                .build(&patterns)
                .expect("plain literal patterns always build")
        });
        Redactor { matcher }
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![MASK; m.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_spelling_of_a_secret() {
        let r = Redactor::new(&["s3cr+t/\"x\"".into(), "".into()]);
        assert_eq!(r.redact("key=s3cr+t/\"x\""), "key=***");
        assert_eq!(
            r.redact("https://h/?k=s3cr%2Bt%2F%22x%22"),
            "https://h/?k=***"
        );
        assert_eq!(r.redact("k=s3cr%2Bt%2F%22x%22&a=1"), "k=***&a=1");
        assert_eq!(r.redact(r#"{"k":"s3cr+t/\"x\""}"#), r#"{"k":"***"}"#);
        assert_eq!(r.redact("<k>s3cr+t/&quot;x&quot;</k>"), "<k>***</k>");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(Redactor::new(&[]).redact("s3cr"), "s3cr");
    }
}
