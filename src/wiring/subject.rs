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

/// Patterns indexed by token, to find those that may overlap a pattern
/// without comparing it with all of them: wiring a 10,000-user organization
/// compares every publish permission with every subscribe permission, which
/// pairwise is 10^8 comparisons; through the index it is one walk per pattern.
pub struct Index<T> {
    root: Node<T>,
}

struct Node<T> {
    literal: std::collections::HashMap<String, Node<T>>,
    star: Option<Box<Node<T>>>,
    /// Patterns ending in `>` here, each with its values (a pattern many
    /// users share is compared once).
    rest: Entries<T>,
    /// Patterns ending here.
    here: Entries<T>,
}

type Entries<T> = std::collections::BTreeMap<String, Vec<T>>;

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node { literal: Default::default(), star: None, rest: Entries::new(), here: Entries::new() }
    }
}

impl<T> Node<T> {
    fn all<'a>(&'a self, out: &mut Vec<(&'a String, &'a Vec<T>)>) {
        out.extend(&self.rest);
        out.extend(&self.here);
        for c in self.literal.values().chain(self.star.as_deref()) {
            c.all(out);
        }
    }

    fn find<'a>(&'a self, t: &[&str], out: &mut Vec<(&'a String, &'a Vec<T>)>) {
        let Some((first, more)) = t.split_first() else {
            out.extend(&self.here);
            return;
        };
        if *first == ">" {
            // One or more tokens: everything below, but not what ends here.
            out.extend(&self.rest);
            for c in self.literal.values().chain(self.star.as_deref()) {
                c.all(out);
            }
            return;
        }
        out.extend(&self.rest);
        if *first == "*" {
            for c in self.literal.values() {
                c.find(more, out);
            }
        } else if let Some(c) = self.literal.get(*first) {
            c.find(more, out);
        }
        if let Some(c) = &self.star {
            c.find(more, out);
        }
    }
}

impl<T> Node<T> {
    /// Whether [`Node::find`] would find anything, stopping at the first.
    fn any(&self, t: &[&str]) -> bool {
        let Some((first, more)) = t.split_first() else { return !self.here.is_empty() };
        if !self.rest.is_empty() {
            return true;
        }
        if *first == ">" {
            return self.literal.values().chain(self.star.as_deref()).any(|c| c.nonempty());
        }
        let literal = if *first == "*" {
            self.literal.values().any(|c| c.any(more))
        } else {
            self.literal.get(*first).is_some_and(|c| c.any(more))
        };
        literal || self.star.as_ref().is_some_and(|c| c.any(more))
    }

    fn nonempty(&self) -> bool {
        !self.rest.is_empty()
            || !self.here.is_empty()
            || self.literal.values().chain(self.star.as_deref()).any(|c| c.nonempty())
    }
}

impl<T> Index<T> {
    /// Whether any pattern overlaps `pattern`.
    pub fn overlaps_any(&self, pattern: &str) -> bool {
        self.root.any(&tokens(pattern))
    }

    pub fn new() -> Self {
        Index { root: Node::default() }
    }

    pub fn insert(&mut self, pattern: &str, value: T) {
        let mut n = &mut self.root;
        for t in tokens(pattern) {
            match t {
                ">" => {
                    n.rest.entry(pattern.to_string()).or_default().push(value);
                    return;
                }
                "*" => n = n.star.get_or_insert_with(Default::default),
                lit => n = n.literal.entry(lit.to_string()).or_default(),
            }
        }
        n.here.entry(pattern.to_string()).or_default().push(value);
    }

    /// Every pattern that overlaps `pattern`, with each of its values.
    pub fn overlapping<'a>(&'a self, pattern: &str) -> impl Iterator<Item = (&'a String, &'a T)> + 'a {
        // The walk is exact: every pattern it reaches overlaps (the test below
        // holds it to the pairwise `overlaps`).
        let mut out = Vec::new();
        self.root.find(&tokens(pattern), &mut out);
        out.into_iter().flat_map(|(q, vs)| vs.iter().map(move |v| (q, v)))
    }
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index::new()
    }
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
    #[test]
    fn the_index_finds_exactly_the_overlapping_patterns() {
        let patterns = [
            "a", "a.b", "a.*", "a.>", "*", "*.b", "*.*.c", ">", "a.b.c", "a.*.c", "b.>", "a.b.>", "*.>", "x.y.z", "a.c",
        ];
        let mut index = Index::new();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p, i);
        }
        for q in patterns.iter().chain(&["a.b.c.d", "z", "*.*", "a.*.>", "q.>"]) {
            let mut got: Vec<usize> = index.overlapping(q).map(|(_, i)| *i).collect();
            got.sort();
            let want: Vec<usize> = (0..patterns.len()).filter(|&i| overlaps(q, patterns[i])).collect();
            assert_eq!(got, want, "patterns overlapping {q}");
            assert_eq!(index.overlaps_any(q), !want.is_empty(), "any pattern overlapping {q}");
        }
    }

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
