//! `ctguard-server user …`: account management from the host's shell, for the first admin and for
//! recovery. Passwords come from a prompt or standard input, never from the command line.

use std::{
    io::{BufRead, IsTerminal},
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use anyhow::{Context, bail};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use clap::Subcommand;
use ctguard_app::auth::Role;

use crate::{
    audit::{AuditEvent, AuditStore, Outcome},
    auth::{new_password::acceptable, second_factor::SecondFactorStore},
    client_info::ClientInfo,
    clock::{Clock, SystemClock},
    db,
    domain::{Password, Username},
    hashing::PasswordHasher,
    logins::{EndReason, LoginStore},
    users::UserStore,
};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is prompted for (or read from stdin with --password-stdin).
    Add {
        username: String,
        #[arg(long, default_value = "viewer")]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; their sessions end.
    Passwd {
        username: String,
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        /// Generate a random password and print it once.
        #[arg(long)]
        generate: bool,
    },
    /// Remove a user's second factor and recovery codes (one who lost both); their sessions end.
    ResetSecondFactor { username: String },
    /// Change a user's role; their sessions end.
    Role { username: String, role: Role },
    /// Disable a user; their sessions end.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
    /// List users.
    List,
    /// When there is no user at all, create an admin with a random password and print it once.
    BootstrapAdmin {
        #[arg(long, default_value = "admin")]
        username: String,
    },
}

/// Characters of generated passwords: no look-alikes (0/O, 1/l/I).
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn random_password() -> String {
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn read_password(from_stdin: bool) -> anyhow::Result<Password> {
    let text = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    };
    // The same rules as everywhere else: the length, and not a common or breached password.
    Ok(acceptable(text)?)
}

pub async fn run(database: &Path, command: UserCommand) -> anyhow::Result<()> {
    let pool = db::open(database)
        .await
        .with_context(|| format!("opening {}", database.display()))?;
    let users = UserStore::new(pool.clone());
    let logins = LoginStore::new(pool.clone());
    let second_factors = SecondFactorStore::new(pool.clone());
    let audit = AuditStore::new(pool);
    let now = SystemClock.now();
    let cli = ClientInfo {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        user_agent: "ctguard-server user (command line)".into(),
    };
    let record = |action: &'static str, target: String, detail: String| {
        let audit = audit.clone();
        let cli = cli.clone();
        async move {
            audit
                .record(
                    now,
                    AuditEvent {
                        actor: Some("command line"),
                        role: None,
                        client: &cli,
                        action,
                        target: Some(&target),
                        outcome: Outcome::Success,
                        detail: Some(&detail),
                        preview: None,
                        journal_id: None,
                        arguments: None,
                    },
                )
                .await
        }
    };
    let end_sessions = |name: Username| {
        let users = users.clone();
        let logins = logins.clone();
        async move {
            let user = users.get(&name).await?;
            anyhow::Ok(
                logins
                    .end_all_of(user.id, now, EndReason::UserChanged)
                    .await?,
            )
        }
    };

    match command {
        UserCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            let name = Username::parse(&username)?;
            let password = read_password(password_stdin)?;
            let hash = PasswordHasher::new()?.hash(&password).await?;
            users.create(&name, &hash, role, now).await?;
            record("user.add", name.to_string(), format!("role {role}")).await?;
            println!("added {name} ({role})");
        }
        UserCommand::Passwd {
            username,
            password_stdin,
            generate,
        } => {
            let name = Username::parse(&username)?;
            let password = if generate {
                let text = random_password();
                println!("new password of {name}: {text}");
                Password::parse(text)?
            } else {
                read_password(password_stdin)?
            };
            let hash = PasswordHasher::new()?.hash(&password).await?;
            users.set_password(&name, &hash, now).await?;
            let ended = end_sessions(name.clone()).await?;
            record("user.passwd", name.to_string(), String::new()).await?;
            println!("password of {name} changed; {ended} session(s) ended");
        }
        UserCommand::ResetSecondFactor { username } => {
            let name = Username::parse(&username)?;
            let user = users.get(&name).await?;
            let removed = second_factors.remove(user.id).await?;
            let ended = end_sessions(name.clone()).await?;
            let detail = if removed { "removed" } else { "there was none" };
            record("second_factor.reset", name.to_string(), detail.into()).await?;
            println!("second factor of {name} {detail}; {ended} session(s) ended");
        }
        UserCommand::Role { username, role } => {
            let name = Username::parse(&username)?;
            users.set_role(&name, role, now).await?;
            let ended = end_sessions(name.clone()).await?;
            record("user.role", name.to_string(), format!("to {role}")).await?;
            println!("{name} is now {role}; {ended} session(s) ended");
        }
        UserCommand::Disable { username } => {
            let name = Username::parse(&username)?;
            users.set_disabled(&name, true, now).await?;
            let ended = end_sessions(name.clone()).await?;
            record("user.disable", name.to_string(), String::new()).await?;
            println!("{name} disabled; {ended} session(s) ended");
        }
        UserCommand::Enable { username } => {
            let name = Username::parse(&username)?;
            users.set_disabled(&name, false, now).await?;
            record("user.enable", name.to_string(), String::new()).await?;
            println!("{name} enabled");
        }
        UserCommand::List => {
            for user in users.list().await? {
                println!(
                    "{:<32} {:<8} {}",
                    user.username,
                    user.role(),
                    if user.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCommand::BootstrapAdmin { username } => {
            if users.count().await? > 0 {
                println!("accounts exist already; none created");
                return Ok(());
            }
            let name = Username::parse(&username)?;
            let text = random_password();
            let hash = PasswordHasher::new()?
                .hash(&Password::parse(text.clone())?)
                .await?;
            users.create(&name, &hash, Role::Admin, now).await?;
            record("user.add", name.to_string(), "first admin".into()).await?;
            println!("created admin {name} with password {text}");
            println!("(shown once; change it with `ctguard-server user passwd {name}`)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_unambiguous() {
        let password = random_password();
        assert_eq!(password.len(), 20);
        assert!(password.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(password, random_password());
        assert!(Password::parse(password).is_ok());
    }
}
