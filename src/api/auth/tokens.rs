//! Bearer tokens: who is calling the secure API.
//!
//! Either the Kubernetes API server's `--token-auth-file` (static CSV
//! `token,user,uid,"group1,group2"`) or, without one, a single random token
//! that podvisor makes once, keeps at `<root_dir>/token`, and maps to the
//! `podvisor-admin` user in `system:masters`.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{read_optional, read_required, write_atomic, AuthError};

/// An authenticated user, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    /// The user of podvisor's own token: `podvisor-admin` in `system:masters`.
    pub fn admin() -> User {
        User {
            name: "podvisor-admin".into(),
            uid: "podvisor-admin".into(),
            groups: vec!["system:masters".into()],
        }
    }
}

/// Why a request was not authenticated, for the log. The HTTP answer is the
/// same 401 in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    /// A well-formed bearer token that is not one of ours.
    #[error("unknown bearer token")]
    UnknownToken,
}

/// The tokens the API accepts, each mapped to its user.
///
/// Only SHA-256 digests of the tokens are kept; a presented token is hashed
/// and compared with every digest in constant time, without stopping at a
/// match, so neither the position nor the content of a token leaks through
/// timing.
pub struct Tokens {
    entries: Vec<(Vec<u8>, User)>,
}

impl fmt::Debug for Tokens {
    /// Users only: tokens are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(_, u)| &u.name))
            .finish()
    }
}

const TOKEN_FILE: &str = "--token-auth-file";

impl Tokens {
    /// One token for one user: podvisor's own token, with [`User::admin`].
    pub fn single(token: String, user: User) -> Tokens {
        Tokens {
            entries: vec![(digest(&token), user)],
        }
    }

    /// Reads a `--token-auth-file`, as the Kubernetes API server does: one
    /// `token,user,uid[,"group1,group2"]` per line.
    ///
    /// Fields are CSV: a field may be quoted to hold commas, with `""` for a
    /// quote inside quotes; spaces before a field are dropped (Go's
    /// `TrimLeadingSpace`); a quoted field ends on its line. Blank lines and
    /// lines starting with `#` are skipped; columns after the fourth are
    /// ignored. Groups are split on `,`, trimmed, and empty ones dropped.
    ///
    /// Stricter than the API server, which only warns: an empty token or user
    /// and a repeated token are errors naming the line, and so is a file
    /// without any token.
    pub fn from_csv_file(path: &Path) -> Result<Tokens, AuthError> {
        let text = read_required(path, TOKEN_FILE)?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Tokens, AuthError> {
        let mut entries: Vec<(Vec<u8>, User)> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason: String| AuthError::TokenLine {
                path: path.to_path_buf(),
                line: line_no,
                reason,
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = split_csv_line(line).map_err(|r| err(r.to_string()))?;
            if fields.len() < 3 {
                return Err(err(format!(
                    "{} column(s), want at least 3: token,user,uid[,\"group1,group2\"]",
                    fields.len()
                )));
            }
            if fields[0].is_empty() {
                return Err(err("empty token".into()));
            }
            if fields[1].is_empty() {
                return Err(err("empty user".into()));
            }
            let d = digest(&fields[0]);
            if let Some(pos) = entries.iter().position(|(e, _)| *e == d) {
                return Err(err(format!("the token of line {} again", lines_of[pos])));
            }
            let groups = fields.get(3).map_or_else(Vec::new, |g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            });
            let user = User {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
            };
            entries.push((d, user));
            lines_of.push(line_no);
        }
        if entries.is_empty() {
            return Err(AuthError::Invalid {
                what: TOKEN_FILE,
                path: path.to_path_buf(),
                reason: "no token in it".into(),
            });
        }
        Ok(Tokens { entries })
    }

    /// The user of the `Authorization` header's bearer token.
    ///
    /// `Bearer` is matched case-insensitively; the token is what follows one
    /// or more spaces, up to the end (surrounding whitespace dropped). A value
    /// with anything after the token is [`AuthFailure::Malformed`].
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&User, AuthFailure> {
        let value = authorization.ok_or(AuthFailure::Missing)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer")
            || token.is_empty()
            || token.contains(char::is_whitespace)
        {
            return Err(AuthFailure::Malformed);
        }
        let presented = digest(token);
        let mut found = None;
        for (d, user) in &self.entries {
            if constant_time_eq(d, &presented) {
                found = Some(user);
            }
        }
        found.ok_or(AuthFailure::UnknownToken)
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Equal slices, in a time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits one CSV line into its fields (see [`Tokens::from_csv_file`]).
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed"),
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text after the closing quote of a field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// Returns podvisor's own API token, making it the first time: 32 random
/// bytes from the system's generator, as 64 lowercase hex digits, kept at
/// `<root_dir>/token` (mode 0600, with a final newline). An empty file is
/// replaced. Blocking.
pub fn ensure_token(root_dir: &Path) -> Result<String, AuthError> {
    const WHAT: &str = "the API token";
    let path = root_dir.join("token");
    if let Some(existing) = read_optional(&path, WHAT)? {
        let token = existing.trim();
        if !token.is_empty() {
            return Ok(token.to_string());
        }
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        AuthError::Generate {
            what: WHAT,
            reason: "the system's random number generator failed".into(),
        }
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(root_dir).map_err(|source| AuthError::Write {
        what: WHAT,
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, format!("{token}\n").as_bytes(), 0o600, WHAT)?;
    tracing::info!(file = %path.display(), "made the API token");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn parse(text: &str) -> Result<Tokens, String> {
        Tokens::parse(text, Path::new("/etc/tokens.csv")).map_err(|e| e.to_string())
    }

    fn user(name: &str, uid: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: uid.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn csv_fields_split_on_commas_outside_quotes() {
        assert_eq!(split_csv_line("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_csv_line(r#"a,b,c,"g1,g2""#).unwrap(),
            ["a", "b", "c", "g1,g2"]
        );
        assert_eq!(
            split_csv_line(r#""say ""hi""",x"#).unwrap(),
            [r#"say "hi""#, "x"]
        );
        assert_eq!(
            split_csv_line(r#"a, "b,c" ,d"#).unwrap_err(),
            "text after the closing quote of a field"
        );
        assert_eq!(split_csv_line(r#"a,  "b,c",d"#).unwrap(), ["a", "b,c", "d"]);
        assert_eq!(split_csv_line("a,,c,").unwrap(), ["a", "", "c", ""]);
        assert_eq!(split_csv_line(r#""""#).unwrap(), [""]);
        assert_eq!(
            split_csv_line(r#"a,"b"#).unwrap_err(),
            "a quoted field is not closed"
        );
        assert_eq!(
            split_csv_line(r#"a,b"c"#).unwrap_err(),
            "a quote inside an unquoted field"
        );
    }

    #[test]
    fn a_token_file_maps_each_token_to_its_user() {
        let t = parse(concat!(
            "# the admins\n",
            "\n",
            "t1,alice,u1,\"system:masters,devs\"\n",
            "  t2 , bob,u2\r\n",
            "t3,carol,u3,\"\",extra\n",
            "t4,dave,u4,\" a , ,b \"\n",
        ))
        .unwrap();
        let auth = |tok: &str| t.authenticate(Some(&format!("Bearer {tok}"))).cloned();
        assert_eq!(
            auth("t1"),
            Ok(user("alice", "u1", &["system:masters", "devs"]))
        );
        assert_eq!(
            auth("t2"),
            Err(AuthFailure::UnknownToken),
            "only leading spaces are dropped"
        );
        assert_eq!(auth("t3"), Ok(user("carol", "u3", &[])));
        assert_eq!(auth("t4"), Ok(user("dave", "u4", &["a", "b"])));
        assert_eq!(auth("t5"), Err(AuthFailure::UnknownToken));
    }

    #[test]
    fn token_file_errors_name_the_file_and_the_line() {
        assert_eq!(
            parse("ok,a,1\n\n,bob,2\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv line 3: empty token"
        );
        assert_eq!(
            parse("t,,1\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv line 1: empty user"
        );
        assert_eq!(
            parse("# c\nt,a\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv line 2: 2 column(s), want at least 3: token,user,uid[,\"group1,group2\"]"
        );
        assert_eq!(
            parse("t,a,1\nu,b,2\nt,c,3\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv line 3: the token of line 1 again"
        );
        assert_eq!(
            parse("t,a,\"1\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv line 1: a quoted field is not closed"
        );
        assert_eq!(
            parse("# nothing\n\n").unwrap_err(),
            "--token-auth-file /etc/tokens.csv: no token in it"
        );
    }

    #[test]
    fn from_csv_file_reads_the_file_and_names_it_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        let e = Tokens::from_csv_file(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot read --token-auth-file {}: No such file or directory",
                path.display()
            )
        );
        fs::write(&path, "secret,alice,u1\n").unwrap();
        let t = Tokens::from_csv_file(&path).unwrap();
        assert_eq!(t.authenticate(Some("Bearer secret")).unwrap().name, "alice");
    }

    #[test]
    fn authenticate_reads_a_bearer_header() {
        let t = Tokens::single("abc".into(), User::admin());
        assert_eq!(t.authenticate(Some("Bearer abc")), Ok(&User::admin()));
        assert_eq!(t.authenticate(Some("bearer abc")), Ok(&User::admin()));
        assert_eq!(t.authenticate(Some("  BEARER   abc  ")), Ok(&User::admin()));
        assert_eq!(t.authenticate(None), Err(AuthFailure::Missing));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "abc",
            "Bearer abc def",
            "Bearerabc",
        ] {
            assert_eq!(
                t.authenticate(Some(bad)),
                Err(AuthFailure::Malformed),
                "{bad:?}"
            );
        }
        for unknown in ["Bearer abd", "Bearer ab", "Bearer abcd", "Bearer ABC"] {
            assert_eq!(
                t.authenticate(Some(unknown)),
                Err(AuthFailure::UnknownToken),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn the_admin_user_is_in_system_masters() {
        let u = User::admin();
        assert_eq!(
            (u.name.as_str(), u.uid.as_str()),
            ("podvisor-admin", "podvisor-admin")
        );
        assert_eq!(u.groups, ["system:masters"]);
    }

    #[test]
    fn debug_shows_users_not_tokens() {
        let t = Tokens::single("SECRET".into(), User::admin());
        assert_eq!(format!("{t:?}"), r#"["podvisor-admin"]"#);
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn ensure_token_makes_a_random_token_once_and_keeps_it_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let first = ensure_token(&dir).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(ensure_token(&dir).unwrap(), first);
        let path = dir.join("token");
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{first}\n"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let other = tempfile::tempdir().unwrap();
        assert_ne!(ensure_token(other.path()).unwrap(), first);
    }

    #[test]
    fn an_empty_token_file_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("token"), "\n").unwrap();
        let token = ensure_token(root.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(ensure_token(root.path()).unwrap(), token);
    }
}
