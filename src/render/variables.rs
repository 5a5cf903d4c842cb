//! `${NAME}` substitution in manifest strings.

use std::collections::BTreeMap;

use serde_json::Value;

/// Replaces every `${NAME}` in `input` with its value; `$${` stands for a literal `${`.
/// Returns the name of the first unknown variable as the error.
pub fn substitute(input: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                // An unclosed `${` is left alone: it cannot be a reference.
                out.push_str("${");
                rest = tail;
                continue;
            };
            let name = &tail[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(name.to_string()),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes in every string value (not in keys) of a JSON tree.
pub(crate) fn substitute_value(value: &mut Value, vars: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains('$') => *s = substitute(s, vars)?,
        Value::Array(items) => {
            for item in items {
                substitute_value(item, vars)?;
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                substitute_value(v, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_table() {
        let vars = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("LONG_NAME".to_string(), "x y".to_string()),
        ]);
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${A}", Ok("1")),
            ("a-${A}-b-${LONG_NAME}", Ok("a-1-b-x y")),
            ("$${A}", Ok("${A}")),
            ("cost $5", Ok("cost $5")),
            ("trailing $", Ok("trailing $")),
            ("$(K8S_REF)", Ok("$(K8S_REF)")),
            ("${unclosed", Ok("${unclosed")),
            ("${B}", Err("B")),
            ("${}", Err("")),
        ];
        for (input, want) in cases {
            let got = substitute(input, &vars);
            assert_eq!(got.as_deref().map_err(String::as_str), *want, "input {input:?}");
        }
    }
}
