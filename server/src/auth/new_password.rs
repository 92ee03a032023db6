//! What a new password must be: as long as `domain::Password` requires (12 to 128 characters), and
//! none of the ~100,000 common and breached passwords the `passwords` crate ships (its
//! `common-password` table, compiled in: no list typed here, no network). Every place a password
//! is set goes through [`acceptable`]: a user's own change, an admin's new account, the command
//! line.

use crate::domain::Password;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Too short or too long: `domain::Password`'s own words.
    #[error("{0}")]
    Length(String),
    #[error("that password is on a list of common and breached passwords; choose another")]
    Common,
}

/// Whether a password is on the list, as typed or in lower case (the list is mostly lower case,
/// and `Password123456` is no better than `password123456`).
pub fn is_common(text: &str) -> bool {
    passwords::analyzer::is_common_password(text)
        || passwords::analyzer::is_common_password(text.to_lowercase())
}

/// A password fit to be set.
pub fn acceptable(text: String) -> Result<Password, WeakPassword> {
    let common = is_common(&text);
    let password = Password::parse(text).map_err(|e| WeakPassword::Length(e.to_string()))?;
    if common {
        return Err(WeakPassword::Common);
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_enough_common_passwords_are_refused_in_any_case() {
        // Entries of the crate's list at least 12 characters long.
        for common in ["000000000000", "012345678910", "qwertyuiopasdfghjkl"] {
            assert!(is_common(common), "{common} is on the list");
            assert_eq!(acceptable(common.to_owned()), Err(WeakPassword::Common));
        }
        assert!(is_common("PASSWORD1234"), "as typed or in lower case");
        assert!(matches!(
            acceptable("short".to_owned()),
            Err(WeakPassword::Length(message)) if message.contains("at least 12")
        ));
        assert!(acceptable("ada-password! quietly purple".to_owned()).is_ok());
    }
}
