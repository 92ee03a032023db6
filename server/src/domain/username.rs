//! A username: 1 to 32 of `a-z 0-9 . _ -`, starting with a letter or digit, stored lowercase.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a username is 1 to 32 of a-z 0-9 . _ - and starts with a letter or digit")]
pub struct InvalidUsername;

impl Username {
    pub fn parse(text: &str) -> Result<Self, InvalidUsername> {
        let name = text.trim().to_ascii_lowercase();
        let valid = (1..=32).contains(&name.len())
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(name))
        } else {
            Err(InvalidUsername)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_bounded() {
        assert_eq!(Username::parse(" Alice ").map(|u| u.0), Ok("alice".into()));
        assert!(Username::parse("ops.night-shift_2").is_ok());
        for bad in ["", "-x", ".x", "a b", "root;", "ünï", &"a".repeat(33)] {
            assert_eq!(Username::parse(bad), Err(InvalidUsername), "{bad:?}");
        }
    }
}
