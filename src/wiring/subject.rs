//! Subject algebra for wiring: overlap, containment and the smallest pattern
//! covering two overlapping patterns. Patterns are valid NATS subjects
//! (`*` one token, `>` one or more trailing tokens).

fn tokens(s: &str) -> Vec<&str> {
    s.split('.').collect()
}

/// The subjects matched by both `a` and `b`, as a pattern, or `None` if none are.
pub fn intersect(a: &str, b: &str) -> Option<String> {
    let (ta, tb) = (tokens(a), tokens(b));
    let mut out: Vec<&str> = Vec::new();
    let mut i = 0;
    loop {
        match (ta.get(i), tb.get(i)) {
            (None, None) => break,
            (Some(&">"), Some(&">")) => {
                out.push(">");
                break;
            }
            // `>` matches one or more tokens: whatever the other side still has.
            (Some(&">"), Some(_)) => {
                out.extend(&tb[i..]);
                break;
            }
            (Some(_), Some(&">")) => {
                out.extend(&ta[i..]);
                break;
            }
            (Some(x), Some(y)) => {
                if x == y || *y == "*" {
                    out.push(x);
                } else if *x == "*" {
                    out.push(y);
                } else {
                    return None;
                }
            }
            _ => return None,
        }
        i += 1;
    }
    Some(out.join("."))
}

pub fn overlaps(a: &str, b: &str) -> bool {
    intersect(a, b).is_some()
}

/// True when every subject matched by `inner` is matched by `outer`.
pub fn contains(outer: &str, inner: &str) -> bool {
    let (to, ti) = (tokens(outer), tokens(inner));
    for (i, o) in to.iter().enumerate() {
        if *o == ">" {
            return ti.len() > i;
        }
        match ti.get(i) {
            None => return false,
            Some(&">") => return false,
            Some(&"*") if *o != "*" => return false,
            Some(t) if *o != "*" && o != t => return false,
            _ => {}
        }
    }
    to.len() == ti.len()
}

/// The narrowest pattern (token by token) that contains both `a` and `b`.
pub fn cover(a: &str, b: &str) -> String {
    let (ta, tb) = (tokens(a), tokens(b));
    let mut out: Vec<&str> = Vec::new();
    for i in 0..ta.len().max(tb.len()) {
        match (ta.get(i), tb.get(i)) {
            (Some(x), Some(y)) if x == y && *x != ">" => out.push(x),
            // One ended: `>` from the last common position covers both.
            (None, _) | (_, None) => {
                out.pop();
                out.push(">");
                break;
            }
            (Some(&">"), _) | (_, Some(&">")) => {
                out.push(">");
                break;
            }
            _ => out.push("*"),
        }
    }
    out.join(".")
}

/// Reply plumbing, never a flow: `_INBOX…` (any custom inbox prefix starting
/// with `_INBOX`), `_R_` (the server's mapped replies) and `$SYS`.
pub fn is_plumbing(s: &str) -> bool {
    let first = s.split('.').next().unwrap_or_default();
    first.starts_with("_INBOX") || first == "_R_" || first == "$SYS"
}

/// Merge overlapping patterns into covers until none overlap. Sorted output.
pub fn merge(subjects: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in subjects {
        let mut s = s;
        while let Some(i) = out.iter().position(|o| overlaps(o, &s)) {
            let o = out.swap_remove(i);
            s = if contains(&o, &s) { o } else { cover(&o, &s) };
        }
        out.push(s);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersections() {
        let cases = [
            ("a.>", "a.b.>", Some("a.b.>")),
            ("a.>", "a.b", Some("a.b")),
            ("a.>", "a", None),
            ("a.*", "a.b", Some("a.b")),
            ("a.*.c", "a.b.*", Some("a.b.c")),
            ("a.b", "a.c", None),
            (">", "x.y", Some("x.y")),
            ("a.*", "a.b.c", None),
            ("*.>", "a", None),
            ("*.>", "a.b", Some("a.b")),
        ];
        for (a, b, want) in cases {
            assert_eq!(intersect(a, b).as_deref(), want, "{a} & {b}");
            assert_eq!(intersect(b, a).as_deref(), want, "{b} & {a}");
        }
    }

    #[test]
    fn containment() {
        assert!(contains("a.>", "a.b.>"));
        assert!(contains("a.>", "a.*"));
        assert!(!contains("a.*", "a.>"), "'>' is more than one token");
        assert!(contains("a.*", "a.b"));
        assert!(!contains("a.b", "a.*"));
        assert!(!contains("a.>", "a"));
        assert!(contains("x", "x"));
        assert!(!contains("a.*.c", "a.b.*"));
    }

    #[test]
    fn covers_contain_both() {
        for (a, b) in [("a.*.c", "a.b.*"), ("a.b.>", "a.c"), ("a.b", "a.b.>"), ("x.y.z", "x.q.z"), ("a", "b.c")] {
            let c = cover(a, b);
            assert!(contains(&c, a) && contains(&c, b), "{c} covers {a} and {b}");
        }
        assert_eq!(cover("a.*.c", "a.b.*"), "a.*.*");
        assert_eq!(merge(["a.b.>".into(), "a.>".into(), "c".into(), "a.x".into()]), ["a.>", "c"]);
    }

    #[test]
    fn plumbing() {
        for s in ["_INBOX.>", "_INBOX_person-service.>", "_R_.abc", "$SYS.REQ.>"] {
            assert!(is_plumbing(s), "{s}");
        }
        assert!(!is_plumbing("thecowboyai.org.person.>"));
    }
}
