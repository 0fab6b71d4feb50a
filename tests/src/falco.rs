//! The Falco output contract (`../shared/reference/falco-output-contract.md`) as a check over
//! one JSON alert as it was sent, byte for byte.

use serde_json::Value;

const PRIORITIES: [&str; 8] = [
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
];

/// Checks one alert line; returns it parsed, or what is wrong with it.
pub fn check_alert(raw: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}: {raw}"))?;
    let obj = v.as_object().ok_or("not an object")?;
    let internal = v["source"] == "internal";
    let expected: &[&str] = if internal {
        &[
            "hostname",
            "output",
            "output_fields",
            "priority",
            "rule",
            "source",
            "time",
        ]
    } else {
        &[
            "hostname",
            "output",
            "output_fields",
            "priority",
            "rule",
            "source",
            "tags",
            "time",
        ]
    };
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    if keys != expected {
        return Err(format!("keys {keys:?}, expected {expected:?}"));
    }
    // Falco writes the keys sorted; a parser would not notice another order, a diff would.
    let positions: Vec<usize> = expected
        .iter()
        .map(|k| raw.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
        .collect();
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("keys not in sorted order: {raw}"));
    }
    if !internal && v["source"] != "syscall" {
        return Err(format!("source {}", v["source"]));
    }
    // What falcosidekick needs to accept it.
    let priority = v["priority"].as_str().unwrap_or("");
    if !PRIORITIES.contains(&priority) {
        return Err(format!("priority `{priority}`"));
    }
    if v["rule"].as_str().is_none_or(str::is_empty) {
        return Err("empty rule".into());
    }
    let time = v["time"].as_str().unwrap_or("");
    let b = time.as_bytes();
    let rfc3339 = time.len() == 30
        && time.ends_with('Z')
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && time[20..29].bytes().all(|c| c.is_ascii_digit());
    if !rfc3339 {
        return Err(format!("time `{time}` is not RFC 3339 with 9 digits"));
    }
    let fields = v["output_fields"].as_object().ok_or("output_fields")?;
    if fields.is_empty() {
        return Err("empty output_fields".into());
    }
    if !internal {
        if !fields.get("evt.time").is_some_and(Value::is_u64) {
            return Err("evt.time is not an integer".into());
        }
        let tags = v["tags"].as_array().ok_or("tags")?;
        let names: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if names != sorted {
            return Err(format!("tags not sorted and unique: {names:?}"));
        }
    }
    let output = v["output"].as_str().unwrap_or("");
    if !internal && !output.contains(&format!(": {priority} ")) {
        return Err(format!(
            "output lacks the time and priority prefix: {output}"
        ));
    }
    Ok(v)
}
