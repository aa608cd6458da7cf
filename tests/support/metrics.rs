//! Reading `/metrics` as Prometheus does: the text is parsed by the Python
//! `prometheus_client` library's OpenMetrics parser (a real, strict one),
//! and tests look samples up by name and labels.

use std::io::Write;
use std::process::{Command, Stdio};

/// Parses OpenMetrics text into `[name, {labels}, value]` lines of JSON.
const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
"#;

/// One sample.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample(pub String, pub std::collections::HashMap<String, String>, pub f64);

/// The samples of one scrape.
#[derive(Debug, Clone)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Parses exposition text, panicking (with the parser's message) when it is not valid.
    pub fn parse(text: &str) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", PARSER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs: install it (apt-get install python3)");
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("No module named"), "install the parser: pip install prometheus_client ({stderr})");
        assert!(out.status.success(), "/metrics is not valid OpenMetrics text: {stderr}\n{text}");
        Scrape(String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }

    /// The value of the sample `name` whose labels include `labels`, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.iter().find(|s| s.0 == name && labels.iter().all(|(k, v)| s.1.get(*k).map(String::as_str) == Some(*v))).map(|s| s.2)
    }

    /// Like [`Scrape::value`], 0 when there is no such sample yet.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}
