//! Static users from a token file in kube-apiserver's `--token-auth-file` format: one CSV record
//! per line, `token,user,uid[,"group1,group2"]`.
//!
//! Read once at start-up: a bad line stops the server with one error naming the file and line,
//! so a typo never silently locks a user out (or in). The CSV dialect is Go's `encoding/csv`
//! as kube-apiserver reads it — fields separated by commas, optionally in double quotes with `""`
//! for a quote inside, leading spaces trimmed, blank lines skipped, columns past the fourth
//! ignored. Stricter than kube-apiserver, which only warns: an empty token, an empty user name
//! and a token listed twice are errors. There are no comment lines (kube-apiserver has none).
//! Hand-written: a record is a dozen lines of code, no CSV crate is in the build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::auth::UserInfo;

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("token file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token file {}:{line}: {reason}", .path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The users of a token file, by token.
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a token file; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TokenFileError> {
        let mut users: HashMap<String, UserInfo> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        // A byte-order mark some editors write would otherwise become part of the first token.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let bad = |reason: String| TokenFileError::Line {
                path: path.to_owned(),
                line,
                reason,
            };
            if raw.trim().is_empty() {
                continue;
            }
            let record = parse_record(raw).map_err(|r| bad(r.to_owned()))?;
            if record.len() < 3 {
                return Err(bad(format!(
                    "must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                )));
            }
            let token = record[0].trim();
            if token.is_empty() {
                return Err(bad("the token (column 1) is empty".into()));
            }
            let name = record[1].trim();
            if name.is_empty() {
                return Err(bad("the user name (column 2) is empty".into()));
            }
            if let Some(earlier) = first_line.get(token) {
                return Err(bad(format!("the token of line {earlier} is listed again")));
            }
            let groups = record
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            first_line.insert(token.to_owned(), line);
            users.insert(
                token.to_owned(),
                UserInfo {
                    name: name.to_owned(),
                    uid: record[2].trim().to_owned(),
                    groups,
                    extra: Default::default(),
                }
                .authenticated(),
            );
        }
        Ok(TokenFile { users })
    }

    /// The user `token` belongs to.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Splits one CSV line into fields (Go `encoding/csv` with `TrimLeadingSpace`).
fn parse_record(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text follows the closing quote of a field"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TokenFile, TokenFileError> {
        TokenFile::parse(Path::new("users.csv"), text)
    }

    #[test]
    fn kube_apiserver_format_gives_users_with_their_groups_and_system_authenticated() {
        let file = parse(
            "t-alice,alice,1001,\"dev,team-a\"\n\n  t-bob, bob ,1002\nt-carol,carol,,ops,ignored\n",
        )
        .unwrap();
        assert_eq!(file.len(), 3);
        let alice = file.user("t-alice").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["dev", "team-a", "system:authenticated"]);
        let bob = file.user("t-bob").unwrap();
        assert_eq!(bob.name, "bob", "spaces around a field are trimmed");
        assert_eq!(bob.groups, ["system:authenticated"]);
        let carol = file.user("t-carol").unwrap();
        assert_eq!(carol.uid, "");
        assert_eq!(
            carol.groups,
            ["ops", "system:authenticated"],
            "an unquoted fourth column is one group; later columns are ignored"
        );
        assert!(file.user("t-dave").is_none());
    }

    #[test]
    fn quotes_inside_quoted_fields_are_doubled() {
        let file = parse("\"to\"\"ken\",\"x,y\",7\n").unwrap();
        assert_eq!(file.user("to\"ken").unwrap().name, "x,y");
    }

    #[test]
    fn windows_line_ends_and_a_byte_order_mark_are_not_part_of_the_fields() {
        let file = parse("\u{feff}t1,alice,1,dev\r\nt2,bob,2\r\n").unwrap();
        assert_eq!(
            file.user("t1").unwrap().groups,
            ["dev", "system:authenticated"]
        );
        assert_eq!(file.user("t2").unwrap().uid, "2");
    }

    #[test]
    fn every_bad_line_is_one_error_naming_the_file_and_line() {
        // (text, the line named, a part of the reason, why)
        let cases = [
            (
                "t1,alice,1\nt2,bob\n",
                2,
                "at least 3 columns",
                "a missing uid column",
            ),
            (",alice,1\n", 1, "token (column 1) is empty", "no token"),
            ("t1, ,1\n", 1, "user name (column 2) is empty", "no user"),
            (
                "t1,alice,1\nt1,bob,2\n",
                2,
                "token of line 1 is listed again",
                "a token for two users",
            ),
            (
                "t1,alice,1,\"dev\n",
                1,
                "quoted field is not closed",
                "an open quote",
            ),
            (
                "t1,al\"ice,1\n",
                1,
                "quote inside an unquoted field",
                "a stray quote",
            ),
        ];
        for (text, line, reason, why) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("token file users.csv:{line}: ")) && err.contains(reason),
                "{why}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = TokenFile::load(Path::new("/nonexistent/users.csv")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("token file /nonexistent/users.csv: "),
            "{err}"
        );
    }
}
