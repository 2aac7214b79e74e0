//! One flat JSON object per `--json` output line, keys in insertion order
//! (a builder over `serde_json`, which the collection commands use too).

use serde_json::{Map, Value};

/// Builds one JSON object with string, number and boolean values.
#[derive(Debug, Default)]
pub struct JsonObject {
    map: Map<String, Value>,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> JsonObject {
        JsonObject::default()
    }

    /// A float; non-finite values become `null`.
    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        let v = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        self.map.insert(k.to_string(), v);
        self
    }

    /// An unsigned integer.
    pub fn uint(&mut self, k: &str, v: u64) -> &mut Self {
        self.map.insert(k.to_string(), Value::from(v));
        self
    }

    /// A string.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.map.insert(k.to_string(), Value::from(v));
        self
    }

    /// A boolean.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.map.insert(k.to_string(), Value::from(v));
        self
    }

    /// The finished text.
    pub fn finish(&mut self) -> String {
        Value::Object(std::mem::take(&mut self.map)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let s = JsonObject::new()
            .uint("a", 1)
            .num("b", 0.5)
            .num("c", f64::NAN)
            .str("d", "x\"y\n\u{1}")
            .bool("e", true)
            .finish();
        assert_eq!(s, r#"{"a":1,"b":0.5,"c":null,"d":"x\"y\n\u0001","e":true}"#);
        assert_eq!(JsonObject::new().finish(), "{}");
    }
}
