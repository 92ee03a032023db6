//! A new password: long enough to resist guessing, short enough to hash cheaply. Never printed.

use std::fmt;

/// OWASP ASVS 5.0 (6.2.1) asks for at least 8 characters and (6.2.9) allows at least 64; staff
/// panels that can drop a hosting provider's traffic deserve more than the minimum.
pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    #[error("a password needs at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_CHARS} characters")]
    TooLong,
}

impl Password {
    pub fn parse(text: String) -> Result<Self, InvalidPassword> {
        let chars = text.chars().count();
        if chars < MIN_CHARS {
            Err(InvalidPassword::TooShort)
        } else if chars > MAX_CHARS {
            Err(InvalidPassword::TooLong)
        } else {
            Ok(Self(text))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert_eq!(
            Password::parse("short".into()),
            Err(InvalidPassword::TooShort)
        );
        assert_eq!(
            Password::parse("x".repeat(129)),
            Err(InvalidPassword::TooLong)
        );
        let password = Password::parse("correct horse battery".into()).expect("valid");
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
}
