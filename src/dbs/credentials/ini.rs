//! The tiny INI dialect of `~/.alibabacloud/credentials`: `[section]`, `key = value`,
//! `#`/`;` comments, optional quotes around values.

use std::collections::HashMap;

/// Keys and values of one section.
pub(super) type Section = HashMap<String, String>;

/// Sections by name, keys by name. Errors carry the 1-based line number and the rule
/// (never the line itself: it may hold a secret).
pub(super) fn parse(text: &str) -> Result<HashMap<String, Section>, (usize, &'static str)> {
    let mut sections: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or((i + 1, "section header must end with ']'"))?
                .trim();
            if name.is_empty() {
                return Err((i + 1, "section name must not be empty"));
            }
            sections.entry(name.to_string()).or_default();
            current = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or((i + 1, "expected `key = value`"))?;
        let section = current
            .as_ref()
            .ok_or((i + 1, "key outside of a [section]"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        sections
            .get_mut(section)
            .expect("section inserted above")
            .insert(key.trim().to_string(), value.to_string());
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_quotes_comments() {
        let s = parse("; c\n[a]\nk = v\nq = \"x y\"\n\n[b]\n# c\nk='z'\n").unwrap();
        assert_eq!(s["a"]["k"], "v");
        assert_eq!(s["a"]["q"], "x y");
        assert_eq!(s["b"]["k"], "z");
    }

    #[test]
    fn errors_name_the_line_not_the_content() {
        assert_eq!(
            parse("k = secret").unwrap_err(),
            (1, "key outside of a [section]")
        );
        assert_eq!(parse("[a]\nsecret").unwrap_err().0, 2);
        assert!(parse("[a").is_err());
    }
}
