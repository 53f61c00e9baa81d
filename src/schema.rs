//! `switchboard schema`: JSON Schemas of the three configuration kinds, generated from
//! the same serde structs that read the files, so they cannot drift apart. Editors' YAML
//! plugins use them for completion and inline errors.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use crate::config::spec::{AdaptorSpec, EndpointSpec, WorkflowSpec};

/// A configuration kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// adaptors/*.yaml
    Adaptor,
    /// endpoints/*.yaml
    Endpoint,
    /// workflows/*.yaml
    Workflow,
}

impl Kind {
    /// All kinds, in folder order.
    pub const ALL: [Kind; 3] = [Kind::Adaptor, Kind::Endpoint, Kind::Workflow];

    /// `adaptor`, `endpoint` or `workflow`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Adaptor => "adaptor",
            Kind::Endpoint => "endpoint",
            Kind::Workflow => "workflow",
        }
    }
}

fn one<T: JsonSchema>(title: &str, folder: &str) -> Value {
    let schema: Schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(map) = value.as_object_mut() {
        map.insert("title".into(), json!(title));
        map.insert(
            "description".into(),
            json!(format!(
                "A switchboard {title}: one per file in {folder}/ (see the README)"
            )),
        );
    }
    value
}

/// The schema of one kind.
pub fn schema(kind: Kind) -> Value {
    match kind {
        Kind::Adaptor => one::<AdaptorSpec>("adaptor", "adaptors"),
        Kind::Endpoint => one::<EndpointSpec>("endpoint", "endpoints"),
        Kind::Workflow => one::<WorkflowSpec>("workflow", "workflows"),
    }
}

/// One document accepting any of the three kinds (each kind's schema under `$defs`).
pub fn combined() -> Value {
    let mut defs = serde_json::Map::new();
    let mut any_of = Vec::new();
    for kind in Kind::ALL {
        let mut schema = schema(kind);
        // Hoist each kind's own definitions so that every $ref resolves from the root.
        if let Some(Value::Object(inner)) = schema.as_object_mut().and_then(|m| m.remove("$defs")) {
            defs.extend(inner);
        }
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
        defs.insert(kind.name().into(), schema);
        any_of.push(json!({"$ref": format!("#/$defs/{}", kind.name())}));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "switchboard configuration",
        "description": "An adaptor, endpoint or workflow file of a switchboard configuration",
        "anyOf": any_of,
        "$defs": defs,
    })
}
