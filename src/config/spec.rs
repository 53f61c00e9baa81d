//! What the user wrote: plain serde structs for the three kinds of YAML file.
//!
//! These only describe the files (unknown keys are rejected); they hold no runtime objects.
//! `engine::compile` turns them into the live engine. Doc comments here become the
//! descriptions in `switchboard schema`, which editors show while completing keys.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One value or a list of them (`to: phone` or `to: [phone, mobile]`).
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list of values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fail = |got: &Value| {
            serde::de::Error::custom(format!("expected a string or a list of strings, got {got}"))
        };
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(OneOrMany::One(s)),
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(fail(&other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(OneOrMany::Many),
            other => Err(fail(&other)),
        }
    }
}

/// Lenient scalars: values written as `${VAR}` arrive as strings, so `active: ${ON:-true}`
/// and `concurrency: ${N:-4}` must read as a boolean and a number.
pub mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn to_bool(value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// `true`, `false`, or a string saying one of them.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let value = Value::deserialize(d)?;
        to_bool(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("expected true or false, got {value}")))
    }

    /// An optional [`bool`].
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        bool(d).map(Some)
    }

    /// A whole number, or a string holding one.
    fn number<'de, D: Deserializer<'de>, N: TryFrom<u64>>(d: D, what: &str) -> Result<N, D::Error> {
        let value = Value::deserialize(d)?;
        let n = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        n.and_then(|n| N::try_from(n).ok())
            .ok_or_else(|| serde::de::Error::custom(format!("expected {what}, got {value}")))
    }

    /// A count (`limit.max`).
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        number(d, "a whole number")
    }

    /// An optional count (`concurrency`).
    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        number(d, "a whole number").map(Some)
    }

    /// An optional status code (`respond`).
    pub fn opt_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        number(d, "an HTTP status such as 200").map(Some)
    }
}

/// Any YAML scalar (`SALE`, `1`, `true`), kept as the text it was written as: for map keys
/// of lookup tables, and for values such as durations, where `10` must reach the parser
/// (which explains `10s`) instead of failing as "expected a string".
#[derive(Debug, Clone, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transparent)]
pub struct ScalarKey(pub String);

impl std::ops::Deref for ScalarKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ScalarKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(ScalarKey(s)),
            Value::Number(n) => Ok(ScalarKey(n.to_string())),
            Value::Bool(b) => Ok(ScalarKey(b.to_string())),
            Value::Null => Ok(ScalarKey(String::new())),
            other => Err(serde::de::Error::custom(format!(
                "a key must be a string, number or boolean, not {other}"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Adaptors

/// An adaptor: what gets sent. Maps event fields to the receiver's field names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdaptorSpec {
    /// Name used by endpoints and actions; defaults to the file name without extension.
    pub name: Option<String>,
    /// Free text for people reading the configuration.
    pub description: Option<String>,
    /// The mapped fields, in output order. Only mapped fields are sent.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Constant key-values added to every payload (after the fields); strings may be templates.
    #[serde(default)]
    pub extra_fields: IndexMap<String, Value>,
    /// true (default): an empty field with no default is left out; false: it is sent as ""
    /// (JSON: null when its type is not string).
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    #[schemars(with = "bool")]
    pub omit_empty: bool,
}

/// One output field of an adaptor.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Field reference(s) to read: `phone_number`, `lead.lead_phone`, `$.a['b c']`, `@id`.
    /// With a list, the first non-empty one is used.
    pub from: Option<OneOrMany<String>>,
    /// A minijinja template computing the value instead of `from`.
    pub template: Option<String>,
    /// Output key(s); dots nest (`properties.firstname`).
    pub to: OneOrMany<String>,
    /// Used when the field is empty (missing, null or "").
    pub default: Option<Value>,
    /// PHP date() pattern, strftime pattern (contains %), or preset
    /// (iso8601, rfc3339, rfc2822, timestamp, unix, unix_ms, age).
    pub date_format: Option<String>,
    /// Output time zone for date_format (default UTC).
    pub timezone: Option<String>,
    /// Zone of input dates that carry no offset (default UTC).
    pub input_timezone: Option<String>,
    /// Lookup table applied to the value; unmatched values pass through.
    pub values: Option<IndexMap<ScalarKey, Value>>,
    /// Coerce the value to this type.
    #[serde(rename = "type")]
    pub kind: Option<FieldType>,
    /// Overrides the adaptor's omit_empty for this field.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub omit_empty: Option<bool>,
}

/// The type a field value is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text.
    String,
    /// A JSON number (integer or decimal).
    Number,
    /// A whole number.
    Integer,
    /// true or false (also accepts yes/no, 1/0, on/off).
    Boolean,
    /// Parse a string as JSON.
    Json,
}

// ---------------------------------------------------------------------------------------
// Endpoints

/// An endpoint: where it goes (outbound) or where events come in (inbound).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Name used by workflow actions; defaults to the file name without extension.
    pub name: Option<String>,
    /// Free text for people reading the configuration.
    pub description: Option<String>,
    /// outbound (default): switchboard sends to `url`; inbound: others send to `path`.
    #[serde(default)]
    pub direction: Direction,
    /// Inactive endpoints are skipped (logged as skipped).
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    #[schemars(with = "bool")]
    pub active: bool,

    /// Outbound: the URL, a template; rendered values are percent-encoded.
    pub url: Option<String>,
    /// Outbound: HTTP method (default POST).
    pub method: Option<Method>,
    /// The adaptor that builds the payload (outbound) or maps incoming data (inbound).
    pub adaptor: Option<String>,
    /// Outbound body format: json (default), form, xml, or query (default for GET and DELETE).
    pub format: Option<Format>,
    /// Root element for xml (default "payload").
    pub xml_root: Option<String>,
    /// Joins list values in form, query and xml (default ","); json keeps arrays.
    pub delimiter: Option<String>,
    /// The whole body as a template, instead of an adaptor.
    pub body_template: Option<String>,
    /// Overrides the format's Content-Type.
    pub content_type: Option<String>,
    /// Extra headers: a map (values may be templates) or "Name: value|Name: value".
    pub headers: Option<Headers>,
    /// Credentials: sent by outbound endpoints, required by inbound ones.
    pub auth: Option<AuthSpec>,
    /// Outbound: Standard Webhooks signing.
    pub signing: Option<SigningSpec>,
    /// Outbound: statuses that mean success (default 200-299). Items: 201, "200-299", "2xx".
    pub success_codes: Option<Vec<CodeSpec>>,
    /// Outbound: checks on, and values captured from, the response body.
    pub response: Option<ResponseSpec>,
    /// Outbound: time allowed for one attempt (default 10s).
    pub timeout: Option<ScalarKey>,
    /// Outbound: retry schedule and which statuses retry.
    pub retry: Option<RetrySpec>,
    /// Outbound: maximum requests in flight to this endpoint (default 8).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<u32>,
    /// Outbound: at most N requests per second, minute or hour: "20/s", "100/m", "1000/h".
    pub rate_limit: Option<ScalarKey>,
    /// Outbound: deliveries with the same value of this field reference (or template) are
    /// sent one at a time, in acceptance order, retries included; other values go in
    /// parallel. E.g. `lead_id`.
    pub order_by: Option<String>,

    /// Inbound: the path on switchboard's server; must start with /hooks/, without `.` or
    /// `..` parts; repeated and trailing slashes are dropped.
    pub path: Option<String>,
    /// Inbound: accepted methods, GET (query parameters) and/or POST (JSON or form body).
    pub methods: Option<Vec<Method>>,
    /// Inbound: the event type, a template or a constant.
    pub event_type: Option<String>,
    /// Inbound: the event id, a template; repeats of an id are acknowledged, not re-run.
    pub event_id: Option<String>,
    /// Inbound: CIDR allow-list; other clients get 403.
    pub allow_from: Option<Vec<String>>,
    /// Inbound: status answered on success (default 202).
    #[serde(default, deserialize_with = "lenient::opt_u16")]
    #[schemars(with = "Option<u16>")]
    pub respond: Option<u16>,
}

fn yes() -> bool {
    true
}

/// Which way an endpoint carries events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// switchboard sends requests to the endpoint's url.
    #[default]
    Outbound,
    /// Other systems send events to the endpoint's path.
    Inbound,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// POST, PUT and PATCH carry a body.
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch)
    }
}

/// How an outbound payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A JSON object; dotted keys nest.
    Json,
    /// application/x-www-form-urlencoded; nested keys as a[b].
    Form,
    /// `<root><key>value</key>…</root>`.
    Xml,
    /// Appended to the URL's query string.
    Query,
}

/// Extra headers, as a map or as one "Name: value|Name: value" string.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Headers {
    /// Header name → value (a template).
    Map(IndexMap<String, String>),
    /// "Name: value|Name: value".
    Line(String),
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fail = |got: &Value| {
            serde::de::Error::custom(format!(
                "expected a map of header names to values, or one \"Name: value|Name: value\" string, got {got}"
            ))
        };
        match Value::deserialize(deserializer)? {
            Value::String(line) => Ok(Headers::Line(line)),
            Value::Object(map) => map
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(s) => Ok((name, s)),
                    Value::Number(n) => Ok((name, n.to_string())),
                    Value::Bool(b) => Ok((name, b.to_string())),
                    other => Err(fail(&other)),
                })
                .collect::<Result<IndexMap<_, _>, _>>()
                .map(Headers::Map),
            other => Err(fail(&other)),
        }
    }
}

/// Credentials. Values should come from the environment: `${TOKEN}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP Basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An API key in a header.
    Header {
        /// Header name, e.g. X-Api-Key.
        name: String,
        /// Header value.
        value: String,
    },
    /// Credentials as query parameters (Convoso style).
    Query {
        /// Parameter name → value.
        params: IndexMap<String, String>,
    },
    /// Inbound only: verify a Standard Webhooks signature.
    Signature {
        /// The signing secret, "whsec_<base64>".
        secret: String,
    },
    /// Outbound only: an OAuth2 access token, fetched from `token_url` on first use,
    /// cached per endpoint and renewed before it expires or when the endpoint answers 401.
    Oauth2 {
        /// The token endpoint, e.g. https://login.salesforce.com/services/oauth2/token.
        token_url: String,
        /// How the token is obtained.
        grant: OAuth2Grant,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
        /// Required for `grant: refresh_token`.
        #[serde(default)]
        refresh_token: Option<String>,
        /// The scope requested, if any.
        #[serde(default)]
        scope: Option<String>,
        /// Extra form parameters of the token request.
        #[serde(default)]
        params: Option<IndexMap<String, String>>,
        /// Where the client credentials go (default `body`).
        #[serde(default)]
        client_auth: Option<ClientAuth>,
    },
}

/// An OAuth2 grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuth2Grant {
    /// The client's own credentials.
    ClientCredentials,
    /// A long-lived refresh token.
    RefreshToken,
}

/// Where the client credentials of a token request go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form.
    #[default]
    Body,
    /// HTTP Basic.
    Basic,
}

/// Standard Webhooks signing of outbound requests.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningSpec {
    /// The signing secret, "whsec_<base64>".
    pub secret: String,
}

/// A status code (201) or a range of them ("200-299", "2xx").
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum CodeSpec {
    /// One status code.
    Code(i64),
    /// "200-299" or "2xx" or "201".
    Text(String),
}

impl<'de> Deserialize<'de> for CodeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) if n.as_i64().is_some() => {
                Ok(CodeSpec::Code(n.as_i64().unwrap_or_default()))
            }
            Value::String(s) => Ok(CodeSpec::Text(s)),
            other => Err(serde::de::Error::custom(format!(
                "expected a status code (201), a range (\"200-299\") or a class (\"2xx\"), got {other}"
            ))),
        }
    }
}

/// Checks on, and values captured from, the response body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// How to parse the body (default: from Content-Type).
    pub format: Option<ResponseFormat>,
    /// The delivery succeeds only if this field of the response is present.
    pub success_key: Option<String>,
    /// ... and equals this value.
    pub success_value: Option<Value>,
    /// Values stored with the connect log entry: name → field reference or JSONPath.
    #[serde(default)]
    pub capture: IndexMap<String, String>,
}

/// How a response body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// JSON.
    Json,
    /// XML (elements become keys).
    Xml,
    /// Plain text.
    Text,
}

/// When and on what to retry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Delay before each retry, with ±20% jitter (default 5s, 5m, 30m, 2h, 5h, 10h, 10h);
    /// at most 100 delays, each from 1s to 7d.
    pub schedule: Option<Vec<ScalarKey>>,
    /// Statuses that retry (default 408, 429, 5xx); network errors and timeouts always retry.
    pub retry_on: Option<Vec<CodeSpec>>,
}

// ---------------------------------------------------------------------------------------
// Workflows

/// A workflow: when it fires. Every active trigger must match (AND).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Name shown in the connect log; defaults to the file name without extension.
    pub name: Option<String>,
    /// Free text for people reading the configuration.
    pub description: Option<String>,
    /// An inactive workflow never fires.
    #[serde(default = "yes", deserialize_with = "lenient::bool")]
    #[schemars(with = "bool")]
    pub active: bool,
    /// Triggers; every active one must match.
    pub when: Vec<TriggerSpec>,
    /// What to do when the workflow fires.
    pub actions: Vec<ActionSpec>,
    /// Fire for this share of the matching events only: a percentage from 0% to 100%
    /// with at most two decimals (`25%`, `12.5%`). Which events are chosen depends only on
    /// the workflow's name and the value of `sample_by`, so it is the same on every run.
    pub sample: Option<ScalarKey>,
    /// The field reference whose value chooses the sampled events (default `@id`, the
    /// event id): events with the same value are all sampled or all not. An event without
    /// it is chosen by its id.
    pub sample_by: Option<String>,
    /// At most `max` firings per value of `per` within any `within`; a further event is
    /// not delivered and is logged once as skipped (error kind `limit`). Counted durably
    /// by the store, across restarts and nodes.
    pub limit: Option<LimitSpec>,
}

/// `limit: {max: 9, per: lead_id, within: 3m}` on a workflow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Firings allowed within the period, 1 to 1000.
    #[serde(deserialize_with = "lenient::u32")]
    #[schemars(with = "u32")]
    pub max: u32,
    /// The field reference counted by: each value has its own count (default: one count
    /// for the whole workflow). Events without it share the count of the empty value.
    pub per: Option<String>,
    /// The sliding period: 30s, 3m, 1h, 1d (1 second to 31 days).
    pub within: ScalarKey,
}

/// One trigger: `event:` (type match) or `field:` with exactly one operator.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Event type(s); a trailing * matches a prefix.
    pub event: Option<OneOrMany<String>>,
    /// Field reference the operator tests.
    pub field: Option<String>,
    /// A trigger can be switched off on its own.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub active: Option<bool>,
    /// String operators ignore case.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub ignore_case: Option<bool>,

    /// Equal (numbers compare as numbers).
    pub equals: Option<Value>,
    /// Not equal.
    pub not_equals: Option<Value>,
    /// Equal to one of these.
    #[serde(rename = "in")]
    pub in_: Option<Vec<Value>>,
    /// Equal to none of these.
    pub not_in: Option<Vec<Value>>,
    /// Greater than.
    pub gt: Option<Value>,
    /// Greater than or equal.
    pub gte: Option<Value>,
    /// Less than.
    pub lt: Option<Value>,
    /// Less than or equal.
    pub lte: Option<Value>,
    /// Between low and high, inclusive.
    pub between: Option<Vec<Value>>,
    /// Contains this text (or, for a list field, this item).
    pub contains: Option<Value>,
    /// Does not contain.
    pub not_contains: Option<Value>,
    /// Starts with.
    pub starts_with: Option<Value>,
    /// Ends with.
    pub ends_with: Option<Value>,
    /// Matches this regular expression.
    pub matches: Option<String>,
    /// true: the field is empty or whitespace; false: it has a value.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub is_blank: Option<bool>,
    /// true: the field is a number or numeric string.
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub is_numeric: Option<bool>,
    /// true: the field is present in the event (even if null or "").
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub exists: Option<bool>,
    /// A date field no older than this duration: 30m, 24h, 7d.
    pub within: Option<ScalarKey>,
}

/// An action: send to an endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The outbound endpoint to send to.
    pub endpoint: String,
    /// Another adaptor for this action.
    pub adaptor: Option<String>,
    /// Send no earlier than this after the event: 30s, 5m.
    pub delay: Option<ScalarKey>,
    /// Names this action within its workflow, for `after` and `@steps.STEP.NAME`
    /// (default: its endpoint's name).
    pub step: Option<String>,
    /// Runs only once this earlier step of the same workflow is delivered (if that step
    /// fails, or `when` does not match, this action is logged once as skipped).
    pub after: Option<String>,
    /// Triggers over the event and the earlier steps' values (`@steps.STEP.NAME`), all of
    /// which must match when the action's turn comes; otherwise it is logged as skipped.
    #[serde(default)]
    pub when: Vec<TriggerSpec>,
    /// Send only inside this window of days and hours; deliveries outside it wait for its
    /// next opening.
    pub window: Option<WindowSpec>,
}

/// When an action may send: on these days, from this time to that one, in a time zone.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// The days it opens on: mon, tue, wed, thu, fri, sat, sun (default: every day).
    pub days: Option<Vec<String>>,
    /// When it opens, local time "HH:MM" (default "00:00").
    pub from: Option<ScalarKey>,
    /// When it closes, local time "HH:MM" ("24:00": midnight; default "24:00"); earlier
    /// than `from`: it closes the next day (an overnight window).
    pub to: Option<ScalarKey>,
    /// A time zone name (America/New_York) or a template over the event
    /// ("{{ lead.timezone }}"); default UTC.
    pub timezone: Option<String>,
}

/// `switchboard.yaml` at the configuration folder's root: settings of the whole
/// configuration. Optional; every key has a default.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsSpec {
    /// The fields recorded with every connect log entry and searchable (`logs --search`,
    /// `/api/logs?search=`): field references (`phone`, `lead.lead_phone`,
    /// `$.contact.email`). Replaces the default list (`phone_number`, `lead_id`,
    /// `call_log_id`, `call_id`, `lead.lead_phone`, `called_lead_phone`, `ani`).
    #[serde(default)]
    pub audit_keys: Option<Vec<String>>,
}
