//! Parsing and evaluating an ACL policy (default deny, `*` wildcards).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::AclError;

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Append records.
    Produce,
    /// Read records and the log's bounds and servers.
    Consume,
    /// Change cluster membership (admin API).
    Admin,
    /// Node-to-node traffic: Raft RPCs and produces forwarded to the leader.
    Replicate,
}

impl Action {
    /// The action's name in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Produce => "produce",
            Action::Consume => "consume",
            Action::Admin => "admin",
            Action::Replicate => "replicate",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "produce" => Ok(Action::Produce),
            "consume" => Ok(Action::Consume),
            "admin" => Ok(Action::Admin),
            "replicate" => Ok(Action::Replicate),
            other => Err(format!(
                "unknown action {other:?} (expected produce, consume, admin, replicate or *)"
            )),
        }
    }
}

/// One allow rule; `None` in a position is the `*` wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The identity allowed (a client certificate's Common Name).
    pub subject: Option<String>,
    /// What it may act on (the log's name, e.g. `log`).
    pub object: Option<String>,
    /// What it may do.
    pub action: Option<Action>,
}

impl Rule {
    fn matches(&self, subject: &str, object: &str, action: Action) -> bool {
        self.subject.as_deref().is_none_or(|s| s == subject)
            && self.object.as_deref().is_none_or(|o| o == object)
            && self.action.is_none_or(|a| a == action)
    }
}

/// A set of allow rules; anything not allowed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// A policy from explicit rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Reads and parses a policy file.
    pub fn from_file(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| AclError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    /// Parses policy text; an error carries the 1-based line number and the reason.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() == 4 && fields[0] == "p" {
                fields.remove(0);
            }
            let [subject, object, action] = fields[..] else {
                return Err((
                    index + 1,
                    format!("expected `subject, object, action`, found {line:?}"),
                ));
            };
            if subject.is_empty() || object.is_empty() || action.is_empty() {
                return Err((index + 1, format!("empty field in {line:?}")));
            }
            let wildcard = |s: &str| (s != "*").then(|| s.to_owned());
            let action = match action {
                "*" => None,
                name => Some(name.parse::<Action>().map_err(|e| (index + 1, e))?),
            };
            rules.push(Rule {
                subject: wildcard(subject),
                object: wildcard(object),
                action,
            });
        }
        Ok(Self { rules })
    }

    /// Whether some rule allows `subject` to perform `action` on `object`.
    pub fn is_allowed(&self, subject: &str, object: &str, action: Action) -> bool {
        self.rules
            .iter()
            .any(|r| r.matches(subject, object, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_book_and_plain_formats_with_comments() {
        let policy = Policy::parse(
            "# dev policy\np, root, *, produce\nroot, *, consume # inline\n\nnobody, log, *\n",
        )
        .unwrap();
        assert!(policy.is_allowed("root", "log", Action::Produce));
        assert!(policy.is_allowed("root", "anything", Action::Consume));
        assert!(!policy.is_allowed("root", "log", Action::Admin));
        assert!(policy.is_allowed("nobody", "log", Action::Admin));
        assert!(!policy.is_allowed("nobody", "cluster", Action::Admin));
    }

    #[test]
    fn denies_by_default() {
        let policy = Policy::parse("").unwrap();
        assert!(!policy.is_allowed("root", "log", Action::Produce));
    }

    #[test]
    fn wildcard_subject_matches_everyone() {
        let policy = Policy::parse("*, *, consume").unwrap();
        assert!(policy.is_allowed("anyone", "log", Action::Consume));
        assert!(!policy.is_allowed("anyone", "log", Action::Produce));
    }

    #[test]
    fn rejects_bad_lines_with_line_numbers() {
        assert_eq!(Policy::parse("root, *, produce\nroot, *").unwrap_err().0, 2);
        let (line, reason) = Policy::parse("root, *, fly").unwrap_err();
        assert_eq!(line, 1);
        assert!(reason.contains("unknown action \"fly\""), "{reason}");
        assert!(Policy::parse("root, , produce").is_err());
    }
}
