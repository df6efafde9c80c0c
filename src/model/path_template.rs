//! The placeholder syntax of path templates (`{instance}/{date}/…`): checked when a
//! schedule or a sink is stored, rendered by the scheduler and the archiver. Pure, so the
//! config, the scheduler and the archive code share one set of rules without importing
//! each other.

use super::ValidationError;

/// Placeholders a path template may use.
pub const PLACEHOLDERS: &[&str] = &["instance", "region", "date", "fire_time", "schedule"];

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn parse<'a>(
    field: &str,
    template: &'a str,
    known: &[&str],
) -> Result<Vec<Piece<'a>>, ValidationError> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                out.push(Piece::Text(rest));
                break;
            }
            Some(i) if rest.as_bytes()[i] == b'}' => {
                return Err(ValidationError::new(
                    field,
                    format!("unmatched '}}' at byte {}", template.len() - rest.len() + i),
                ))
            }
            Some(i) => {
                if i > 0 {
                    out.push(Piece::Text(&rest[..i]));
                }
                let close = rest[i..].find('}').ok_or_else(|| {
                    ValidationError::new(field, "unmatched '{' (placeholders look like {instance})")
                })?;
                let name = &rest[i + 1..i + close];
                if !known.contains(&name) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "unknown placeholder {{{name}}}; known: {}",
                            known
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                out.push(Piece::Var(name));
                rest = &rest[i + close + 1..];
            }
        }
    }
    Ok(out)
}

/// Check a path template without rendering it.
pub fn check_path(field: &str, template: &str) -> Result<(), ValidationError> {
    check_template(field, template, PLACEHOLDERS)
}

/// [`check_path`] with another set of placeholders (the archive object names reuse the
/// same syntax and rules).
pub fn check_template(field: &str, template: &str, known: &[&str]) -> Result<(), ValidationError> {
    parse(field, template, known)?;
    if template.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(ValidationError::new(
            field,
            "must not contain '.' or '..' segments (the path must stay under its prefix)",
        ));
    }
    if template.starts_with('/') {
        return Err(ValidationError::new(
            field,
            "must be relative to the bucket (no leading '/')",
        ));
    }
    Ok(())
}

/// Render a template checked with [`check_template`]: `value` expands each placeholder.
pub fn render_template(
    field: &str,
    template: &str,
    known: &[&str],
    value: impl Fn(&str) -> String,
) -> Result<String, ValidationError> {
    let mut out = String::with_capacity(template.len() + 32);
    for piece in parse(field, template, known)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => out.push_str(&value(name)),
        }
    }
    Ok(out)
}
