//! `switchboard schema`: the JSON Schema of the configuration files, printed or written
//! into a folder for editors.

use std::path::Path;

use super::Output;
use crate::schema::{self, Kind};

/// Prints one schema, the combined one, or writes the three into `out`.
pub fn run(kind: Option<Kind>, out: Option<&Path>) -> Output {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut output = Output::default();
    match (kind, out) {
        (_, Some(dir)) => {
            for kind in Kind::ALL {
                let path = dir.join(format!("{}.schema.json", kind.name()));
                if let Err(e) = std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(&path, pretty(&schema::schema(kind))))
                {
                    output.stderr = format!("error: cannot write {}: {e}\n", path.display());
                    output.code = 1;
                    return output;
                }
                output
                    .stdout
                    .push_str(&format!("wrote {}\n", path.display()));
            }
        }
        (Some(kind), None) => output.stdout = pretty(&schema::schema(kind)),
        (None, None) => output.stdout = pretty(&schema::combined()),
    }
    output
}
