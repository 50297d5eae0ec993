//! "Did you mean …?": the closest valid name to a misspelt one (a field, a resource named in
//! `dependsOn` or `fromResource`, a PatchSet), for error messages.
//!
//! Closeness is the Damerau–Levenshtein distance (a swap of two neighbours counts once), compared
//! case-insensitively; a candidate is offered only when it is close enough that the guess is
//! likely right (at most a third of the name's length, at least one edit).

/// The candidate closest to `name`, if one is close enough. Ties go to the earlier candidate.
pub fn closest<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted: Vec<char> = name.to_lowercase().chars().collect();
    let limit = (wanted.len() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let have: Vec<char> = candidate.to_lowercase().chars().collect();
        let d = distance(&wanted, &have);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` for a message, or nothing.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(name, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// The message of serde's unknown-field error with the closest expected field suggested:
/// "unknown field `dependOn`, expected one of `name`, … `dependsOn`" gains
/// "; did you mean `dependsOn`?". Other messages are returned unchanged.
pub fn unknown_field_message(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    format!("{message}{}", did_you_mean(field, candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_name_suggests_the_closest_valid_one() {
        let fields = ["name", "base", "patches", "dependsOn", "readinessChecks"];
        for (typo, want, reason) in [
            ("dependOn", Some("dependsOn"), "one letter missing"),
            ("dependsON", Some("dependsOn"), "case differs"),
            ("pacthes", Some("patches"), "two letters swapped"),
            (
                "readinesChecks",
                Some("readinessChecks"),
                "one letter missing",
            ),
            ("colour", None, "nothing close"),
            ("nmae", Some("name"), "a swap in a short name"),
        ] {
            assert_eq!(closest(typo, fields), want, "{reason}");
        }
    }

    #[test]
    fn an_unknown_field_message_gains_a_suggestion() {
        assert_eq!(
            unknown_field_message(
                "unknown field `fromResorce`, expected one of `type`, `fromFieldPath`, `fromResource`"
            ),
            "unknown field `fromResorce`, expected one of `type`, `fromFieldPath`, \
             `fromResource`; did you mean `fromResource`?"
        );
        assert_eq!(unknown_field_message("invalid type"), "invalid type");
    }
}
