//! Inbound endpoints (docs/configuration.md): URLs on switchboard's own server where other systems send
//! events. Compiled here with the rest of the configuration; served by `server`.

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::RenderScope;
use super::adaptor::Adaptor;
use super::event::{Event, EventId};
use super::request::{Auth, Text};
use super::template::Templates;
use crate::config::spec::Method;

/// A compiled inbound endpoint.
#[derive(Debug)]
pub struct InboundEndpoint {
    /// Its name: the `source` of the events it receives.
    pub name: String,
    /// Inactive endpoints answer 404.
    pub active: bool,
    /// The path, starting with /hooks/.
    pub path: String,
    /// Accepted methods.
    pub methods: Vec<Method>,
    /// The event type: a template or a constant.
    pub event_type: Text,
    /// The event id template, when the sender's ids are to be deduplicated.
    pub event_id: Option<Text>,
    /// Adaptor index mapping the payload to the event data.
    pub adaptor: Option<usize>,
    /// Credentials the sender must present.
    pub auth: Option<Auth>,
    /// Clients allowed to send (empty: anyone).
    pub allow_from: Vec<IpNet>,
    /// Status answered on success.
    pub respond: u16,
}

impl InboundEndpoint {
    /// Builds the event for a received payload: type and id from their templates (rendered
    /// against the payload as sent), data through the adaptor when there is one.
    pub fn event(
        &self,
        payload: Map<String, Value>,
        templates: &Templates,
        adaptors: &[Adaptor],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Event, Vec<String>), String> {
        let payload = Value::Object(payload);
        super::event::check_depth(&payload).map_err(|e| e.0)?;
        let mut event = Event::new("", payload);
        event.source = self.name.clone();
        event.received_at = now;
        let scope = RenderScope::new(&event, templates, now);
        let kind = self
            .event_type
            .render(&scope)
            .map_err(|e| format!("event_type: {e}"))?;
        let kind = kind.trim().to_string();
        if kind.is_empty() {
            return Err("event_type rendered empty: the payload lacks the field it names".into());
        }
        let id = match &self.event_id {
            Some(text) => {
                let id = text.render(&scope).map_err(|e| format!("event_id: {e}"))?;
                let id = id.trim().to_string();
                // An id made of the template's own text only (`-` from "{{ a }}-{{ b }}")
                // names no event: every such payload would be a duplicate of the first.
                // The same id from a payload that has a field the template reads is that
                // field's value (`0` from `{{ seq | default(0) }}` with `seq: 0`); a
                // template that reads no field at all (a constant, a date) is meant.
                let empty = Event::new("", Value::Object(Map::new()));
                let blank = text
                    .render(&RenderScope::new(&empty, templates, now))
                    .map(|b| b.trim().to_string());
                let as_if_empty = blank.is_ok_and(|b| b == id)
                    && lacks_every_field(text, templates, &scope.event.data);
                if id.is_empty() || as_if_empty {
                    return Err(format!(
                        "event_id rendered {id:?}: the payload lacks the fields it names"
                    ));
                }
                Some(id)
            }
            None => None,
        };
        let mut warnings = Vec::new();
        let data = match self.adaptor {
            Some(i) => std::sync::Arc::new(Value::Object(
                adaptors[i].build(&scope, now, &mut warnings).into_map(),
            )),
            None => scope.event.data.clone(),
        };
        drop(scope);
        // The adaptor may nest what it maps deeper than the payload was.
        super::event::check_depth(&data).map_err(|e| e.0)?;
        event.kind = kind;
        event.data = data;
        if let Some(id) = id {
            event.id = EventId::new(id);
        }
        Ok((event, warnings))
    }

    /// Whether a client address may send here.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.allow_from.is_empty() || self.allow_from.iter().any(|net| net.contains(&ip))
    }
}

/// Whether `text` reads payload fields and the payload has none of them (each missing,
/// null or empty text). A text that reads no payload field does not lack any.
fn lacks_every_field(text: &Text, templates: &Templates, payload: &Value) -> bool {
    let Text::Template(id) = text else {
        return false;
    };
    let reads = templates.reads(*id);
    let fields: Vec<Vec<&str>> = reads
        .iter()
        .map(|name| name.split('.').collect::<Vec<_>>())
        .filter(|path| path[0] != "event")
        .map(|mut path| {
            if path[0] == "data" {
                path.remove(0);
            }
            path
        })
        .collect();
    !fields.is_empty()
        && fields.iter().all(|path| {
            match path.iter().try_fold(payload, |node, key| node.get(*key)) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            }
        })
}
