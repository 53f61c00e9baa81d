//! Redaction: every secret of the configuration becomes `***` in anything shown or stored.
//!
//! A secret can reach output in other spellings than its own: percent-encoded in a URL,
//! form-encoded in a body, escaped inside a JSON string (`/` as `\/` too, as PHP writes it;
//! non-ASCII, `<>&` or `+` as `\uXXXX`, as PHP, Python, Go and .NET write them)
//! or an XML one, and base64-encoded (an `Authorization: Basic` value echoed back by a
//! receiver is base64 of `user:password`; padded or not, standard or URL-safe alphabet),
//! each of those spellings of the base64 form too. All of them are matched, in one pass
//! (Aho-Corasick), longest first.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
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
            spellings(secret, &mut patterns);
            for encoded in [
                STANDARD.encode(secret),
                STANDARD_NO_PAD.encode(secret),
                URL_SAFE.encode(secret),
                URL_SAFE_NO_PAD.encode(secret),
            ] {
                spellings(&encoded, &mut patterns);
            }
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
    ///
    /// (The spellings of one secret are in [`spellings`].)
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![MASK; m.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// One text as it can appear in output: as it is, percent-encoded, form-encoded, inside a
/// JSON string (with `/` escaped or not; as serde, PHP and Python, Go and .NET write it)
/// and inside an XML one.
fn spellings(text: &str, patterns: &mut Vec<String>) {
    patterns.push(text.to_string());
    patterns.push(utf8_percent_encode(text, COMPONENT).to_string());
    patterns.push(form_urlencoded::byte_serialize(text.as_bytes()).collect());
    let json = serde_json::Value::from(text).to_string();
    let json = &json[1..json.len() - 1];
    // PHP's json_encode and Python's json.dumps write non-ASCII as \u00e4; Go writes
    // < > & as \u003c; .NET writes those, ' + ` " and non-ASCII as \u002B.
    let escaped = [
        json_escaped(text, |c| !c.is_ascii(), false),
        json_escaped(text, |c| matches!(c, '<' | '>' | '&'), false),
        json_escaped(
            text,
            |c| !c.is_ascii() || matches!(c, '<' | '>' | '&' | '\'' | '+' | '`' | '"'),
            true,
        ),
    ];
    for json in std::iter::once(json).chain(escaped.iter().map(String::as_str)) {
        patterns.push(json.replace('/', "\\/"));
        patterns.push(json.to_string());
    }
    patterns.push(xml_escape(text));
}

/// `text` between the quotes of a JSON string, the characters `escape` picks written as
/// `\uXXXX` (UTF-16, hex digits in upper case or not).
fn json_escaped(text: &str, escape: impl Fn(char) -> bool, upper: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                if upper {
                    out.push_str(&format!("\\u{unit:04X}"));
                } else {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        } else {
            let json = serde_json::Value::from(c.to_string()).to_string();
            out.push_str(&json[1..json.len() - 1]);
        }
    }
    out
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
        // PHP's json_encode writes / as \/.
        assert_eq!(r.redact(r#"{"k":"s3cr+t\/\"x\""}"#), r#"{"k":"***"}"#);
    }

    #[test]
    fn masks_secrets_in_the_json_escapes_of_php_python_go_and_dotnet() {
        let r = Redactor::new(&["p\u{e4}55<w\u{f6}rd+\u{1f511}".into()]);
        for echoed in [
            // PHP json_encode, Python json.dumps: non-ASCII escaped (a surrogate pair).
            r#"{"k":"p\u00e455<w\u00f6rd+\ud83d\udd11"}"#,
            // Go encoding/json: < > & escaped.
            "{\"k\":\"p\u{e4}55\\u003cw\u{f6}rd+\u{1f511}\"}",
            // .NET System.Text.Json: those, + and non-ASCII, upper case.
            r#"{"k":"p\u00E455\u003Cw\u00F6rd\u002B\uD83D\uDD11"}"#,
        ] {
            assert_eq!(r.redact(echoed), r#"{"k":"***"}"#, "{echoed}");
        }
        // Basic credentials as .NET echoes them: + in the base64 as \u002B.
        let r = Redactor::new(&["agent:pa>ss?word".into()]);
        assert_eq!(
            r.redact(r#"{"authorization":"Basic YWdlbnQ6cGE\u002Bc3M/d29yZA=="}"#),
            r#"{"authorization":"Basic ***"}"#
        );
    }

    #[test]
    fn masks_basic_credentials_in_base64() {
        // "agent:pa>ss?word" in base64 has + and / in the standard alphabet, - and _ in
        // the URL-safe one, and padding.
        let r = Redactor::new(&["agent:pa>ss?word".into()]);
        let header = "Basic YWdlbnQ6cGE+c3M/d29yZA==";
        assert_eq!(r.redact(header), "Basic ***");
        assert_eq!(r.redact("YWdlbnQ6cGE-c3M_d29yZA"), "***");
        assert_eq!(
            r.redact(r#"{"authorization":"Basic YWdlbnQ6cGE+c3M\/d29yZA=="}"#),
            r#"{"authorization":"Basic ***"}"#
        );
        assert_eq!(
            r.redact("a=Basic%20YWdlbnQ6cGE%2Bc3M%2Fd29yZA%3D%3D"),
            "a=Basic%20***"
        );
        assert_eq!(
            r.redact("a=Basic+YWdlbnQ6cGE%2Bc3M%2Fd29yZA%3D%3D"),
            "a=Basic+***"
        );
    }
}
