//! NATS subject syntax, as the server and nats-io/jwt check it.

/// Why a subject is invalid, or `None` when it is valid. `>` must be the last
/// token, `*` and `>` must stand alone in their token, tokens are non-empty and
/// nothing may be whitespace or a control character.
pub fn subject_problem(subject: &str) -> Option<String> {
    if subject.is_empty() {
        return Some("subject is empty".into());
    }
    if let Some(c) = subject.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("{subject:?} contains whitespace or a control character ({c:?})"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Some(format!("{subject:?} has an empty token"));
        }
        if t.contains('>') {
            if *t != ">" {
                return Some(format!("{subject:?}: '>' must be a whole token"));
            }
            if i != tokens.len() - 1 {
                return Some(format!("{subject:?}: '>' must be the last token"));
            }
        }
        if t.contains('*') && *t != "*" {
            return Some(format!("{subject:?}: '*' must be a whole token, not inside {t:?}"));
        }
    }
    None
}

/// A subscribe permission may carry a queue group: `"subject queue"`.
pub fn subscribe_problem(entry: &str) -> Option<String> {
    match entry.split_once(' ') {
        Some((subject, queue)) => {
            if let Some(p) = subject_problem(subject) {
                return Some(p);
            }
            if queue.is_empty()
                || queue.contains(['*', '>'])
                || queue.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Some(format!("{entry:?}: queue group {queue:?} must be one token without wildcards"));
            }
            None
        }
        None => subject_problem(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_subjects() {
        for s in ["a", "a.b", "a.*.c", "a.>", ">", "*", "_INBOX.>", "$SYS.REQ.ACCOUNT.*.*", "a-b_c.d"] {
            assert_eq!(subject_problem(s), None, "{s}");
        }
    }

    #[test]
    fn invalid_subjects_name_the_value() {
        let cases = [
            ("", "empty"),
            ("a..b", "empty token"),
            (".a", "empty token"),
            ("a.", "empty token"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a.>.b", "'>' must be the last token"),
            ("a.b>", "'>' must be a whole token"),
            ("a.b*", "'*' must be a whole token"),
            ("a.*b.c", "'*' must be a whole token"),
        ];
        for (s, want) in cases {
            let p = subject_problem(s).unwrap_or_else(|| panic!("{s:?} accepted"));
            assert!(p.contains(want), "{s:?}: {p}");
            if !s.is_empty() {
                assert!(p.contains(&format!("{s:?}")), "message must quote the value: {p}");
            }
        }
    }

    #[test]
    fn queue_groups() {
        assert_eq!(subscribe_problem("a.b workers"), None);
        assert!(subscribe_problem("a.b work ers").is_some());
        assert!(subscribe_problem("a.b *").is_some());
        assert!(subscribe_problem("a..b q").is_some());
    }
}
