//! "Did you mean": the closest known name to a misspelt one, for errors that
//! name an unknown unit, service, user or account.

/// The closest of `candidates` to `name` (edit distance at most a third of
/// its length, at least 1; case-insensitive equality counts as distance 0).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= limit && *c != name)
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c.to_string())
}

/// Edit distance with adjacent transpositions (optimal string alignment):
/// `Medai` is one edit from `media`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// `unknown X "name"` plus the closest known name and the list of names.
pub fn unknown(kind: &str, name: &str, known: &[&str]) -> String {
    let mut m = format!("unknown {kind} {name:?}");
    if let Some(s) = did_you_mean(name, known.iter().copied()) {
        m.push_str(&format!("; did you mean {s:?}?"));
    }
    if known.is_empty() {
        m.push_str(&format!(" (there is no {kind})"));
    } else if known.len() <= 20 {
        m.push_str(&format!(" (known: {})", known.join(", ")));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        let names = ["media-svc", "billing-svc", "sys"];
        assert_eq!(did_you_mean("media-svx", names), Some("media-svc".into()));
        assert_eq!(did_you_mean("MEDIA-SVC", names), Some("media-svc".into()));
        assert_eq!(did_you_mean("sy", names), Some("sys".into()));
        assert_eq!(did_you_mean("payroll", names), None);
        assert_eq!(did_you_mean("sys", names), None, "an exact match is no suggestion");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("medai", "media"), 1);
    }

    #[test]
    fn unknown_lists_the_known_names() {
        assert_eq!(
            unknown("unit", "Meda", &["Media", "Core"]),
            "unknown unit \"Meda\"; did you mean \"Media\"? (known: Media, Core)"
        );
        assert_eq!(unknown("unit", "x", &[]), "unknown unit \"x\" (there is no unit)");
    }
}
