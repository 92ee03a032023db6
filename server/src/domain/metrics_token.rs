//! The bearer token a Prometheus scraper must present for `/metrics`, when one is configured.

use std::fmt;

use subtle::ConstantTimeEq;

/// 16 to 256 visible ASCII characters (what Prometheus' `credentials_file` sends as it is).
/// Never printed: `Debug` shows only that a token is set.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a metrics token is 16 to 256 visible ASCII characters without spaces")]
pub struct InvalidMetricsToken;

impl MetricsToken {
    /// The token from a credentials file's text: surrounding whitespace (the file's trailing
    /// newline) is not part of it.
    pub fn parse(text: &str) -> Result<Self, InvalidMetricsToken> {
        let token = text.trim();
        let valid =
            (16..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(token.to_owned()))
        } else {
            Err(InvalidMetricsToken)
        }
    }

    /// Whether an `Authorization` header value carries this token (`Bearer <token>`; the scheme
    /// is case-insensitive, RFC 9110). The comparison takes the same time wherever the first
    /// wrong byte is, so response times do not reveal a prefix.
    pub fn authorizes(&self, authorization: &[u8]) -> bool {
        let Some(space) = authorization.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, presented) = (&authorization[..space], &authorization[space + 1..]);
        scheme.eq_ignore_ascii_case(b"bearer") && bool::from(presented.ct_eq(self.0.as_bytes()))
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-scrape-token-0123";

    #[test]
    fn tokens_are_bounded_and_the_file_newline_is_not_part_of_them() {
        let token = MetricsToken::parse(&format!("{TOKEN}\n")).expect("valid");
        assert!(token.authorizes(format!("Bearer {TOKEN}").as_bytes()));
        for bad in [
            "",
            "short",
            "has a space inside it",
            "ünïcode-is-not-ascii!!",
            &"x".repeat(257),
        ] {
            assert_eq!(
                MetricsToken::parse(bad),
                Err(InvalidMetricsToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_the_exact_bearer_token_authorizes() {
        let token = MetricsToken::parse(TOKEN).expect("valid");
        for refused in [
            String::new(),
            TOKEN.to_owned(),
            format!("Basic {TOKEN}"),
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            format!("Bearer  {TOKEN}"),
        ] {
            assert!(!token.authorizes(refused.as_bytes()), "{refused:?}");
        }
        assert!(token.authorizes(format!("bearer {TOKEN}").as_bytes()));
        assert_eq!(format!("{token:?}"), "MetricsToken(<redacted>)");
    }
}
