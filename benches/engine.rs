//! Engine throughput: a realistic Convoso disposition event through a reference
//! configuration of 50 workflows (20+ field adaptors with dates, lookups and templates),
//! beside a bare serde_json parse + serialize of the same event, measured in the same run.
//!
//! Run: `cargo bench --bench engine`. Figures go to BENCHMARKS.md as ratios.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard::engine::event::parse_events;

/// A Convoso call disposition with Convoso's call-log, lead and extra fields.
const EVENT: &str = r#"{"type": "call.disposition", "id": "cvs-812-99120", "data": {
  "call_log_id": "99120", "lead_id": "812", "list_id": "3001", "list_name": "Refi leads",
  "campaign_id": "1042", "campaign_name": "Mortgage Refi Q1", "user_id": "1007",
  "originating_agent_id": "1007", "queue_id": "12", "queue_name": "Sales", "queue_seconds": "4",
  "queue_position": "1", "first_name": "John", "last_name": "Doe", "email": "john.doe@example.com",
  "phone_number": "5551234567", "phone_code": "1", "alt_phone_1": "5559876543",
  "address1": "1428 Elm Street", "address2": "Apt 2", "city": "Springwood", "state": "OH",
  "postal_code": "50035", "country": "US", "date_of_birth": "1984-06-02", "gender": "M",
  "status": "SALE", "length_in_sec": "95", "call_date": "2024-03-15 14:30:00",
  "agent_comment": "Wants the 15 year fixed rate", "call_type": "OUTBOUND", "term_reason": "AGENT",
  "recording": "https://recordings.example.com/99120.mp3", "caller_id": "5550001000",
  "inbound_number": "", "agent_full_name": "James Smith", "agent_email": "james@example.com",
  "created_at": "2024-03-01 09:12:44", "modified_at": "2024-03-15 14:31:02",
  "custom_field_1": "refi", "custom_field_2": "720", "custom_field_3": "350000"}}"#;

const TYPES: [&str; 10] = [
    "call.disposition",
    "call.status",
    "call.term_reason",
    "lead.created",
    "lead.updated",
    "callback.scheduled",
    "start_call",
    "end_call",
    "call_begin",
    "call_end",
];

/// Writes a configuration of `workflows` workflows: the first five listen for
/// call.disposition (three of them match the sample event), all others for other event
/// types, so that every size does the same matching work and only the index is tested.
fn write_config(dir: &Path, workflows: usize) {
    for sub in ["adaptors", "endpoints", "workflows"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    let mut adaptor = String::from("fields:\n");
    let fields = [
        ("lead_id", "properties.convoso_lead_id", ""),
        ("call_log_id", "properties.convoso_call_log_id", ""),
        (
            "first_name",
            "properties.firstname",
            "    default: Unknown\n",
        ),
        ("last_name", "properties.lastname", ""),
        ("email", "properties.email", ""),
        ("address1", "properties.address", ""),
        ("city", "properties.city", ""),
        ("state", "properties.state", ""),
        ("postal_code", "properties.zip", ""),
        ("country", "properties.country", "    default: US\n"),
        (
            "status",
            "properties.hs_lead_status",
            "    values: { SALE: CONNECTED, APPT: IN_PROGRESS, NI: UNQUALIFIED }\n",
        ),
        (
            "length_in_sec",
            "properties.talk_seconds",
            "    type: integer\n",
        ),
        (
            "call_date",
            "properties.last_call_date",
            "    date_format: Y-m-d\n    input_timezone: America/New_York\n",
        ),
        (
            "call_date",
            "properties.last_call_at",
            "    date_format: \"D M j G:i:s T Y\"\n    timezone: America/Los_Angeles\n    input_timezone: America/New_York\n",
        ),
        (
            "created_at",
            "properties.created",
            "    date_format: iso8601\n",
        ),
        ("date_of_birth", "properties.age", "    date_format: age\n"),
        ("campaign_name", "properties.campaign", ""),
        ("agent_full_name", "properties.agent", ""),
        ("recording", "properties.recording_url", ""),
        (
            "custom_field_2",
            "properties.credit_score",
            "    type: number\n",
        ),
        ("lead.missing", "properties.missing", "    default: none\n"),
    ];
    for (from, to, extra) in fields {
        let _ = write!(adaptor, "  - from: {from}\n    to: {to}\n{extra}");
    }
    adaptor.push_str("  - to: properties.phone\n    template: \"{{ phone_number|e164 }}\"\n");
    adaptor.push_str("  - to: properties.summary\n    template: \"{{ status }} by {{ agent_full_name }} after {{ length_in_sec }}s\"\n");
    adaptor.push_str("extra_fields:\n  properties.source: switchboard\n");
    // Three receivers, each with its own adaptor (same shape, other key names), so that the
    // three matching workflows do three deliveries' worth of distinct work.
    for n in 0..3 {
        let own = adaptor.replace("properties.", &format!("crm{n}."));
        std::fs::write(dir.join(format!("adaptors/contact{n}.yaml")), own).expect("write");
        std::fs::write(
            dir.join(format!("endpoints/crm{n}.yaml")),
            format!("url: https://crm{n}.example.com/contacts/{{{{ lead_id }}}}\nadaptor: contact{n}\nauth:\n  type: bearer\n  token: ${{BENCH_TOKEN:-bench-token}}\nheaders:\n  X-Campaign: \"{{{{ campaign_id }}}}\"\n"),
        )
        .expect("write");
    }
    for i in 0..workflows {
        let kind = if i < 5 {
            TYPES[0]
        } else {
            TYPES[1 + i % (TYPES.len() - 1)]
        };
        let status = if i % 2 == 0 {
            "[SALE, APPT]"
        } else {
            "[APPT, CALLBK]"
        };
        let text = format!(
            "when:\n  - event: {kind}\n  - field: status\n    in: {status}\n  - field: length_in_sec\n    gte: 30\n  - field: campaign_id\n    in: [\"1042\", \"1043\"]\nactions:\n  - endpoint: crm{}\n",
            (i / 2) % 3
        );
        std::fs::write(dir.join(format!("workflows/w{i:04}.yaml")), text).expect("write");
    }
}

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().expect("time");
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));

    group.bench_function("baseline: serde_json parse + serialize", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_str(black_box(EVENT)).expect("json");
            black_box(serde_json::to_string(&value).expect("json"))
        })
    });

    for workflows in [10, 50, 100, 1000] {
        let dir = tempfile::tempdir().expect("tmp");
        write_config(dir.path(), workflows);
        let engine = switchboard::load(dir.path())
            .expect("reference configuration loads")
            .engine;
        let event = parse_events(EVENT, None, now).expect("event").remove(0);
        let planned = engine.process(&event, now);
        assert_eq!(
            planned.len(),
            3,
            "the reference event matches three workflows"
        );
        group.bench_with_input(
            BenchmarkId::new("process (event → requests)", workflows),
            &engine,
            |b, engine| b.iter(|| black_box(engine.process(black_box(&event), now))),
        );
        if workflows == 50 {
            group.bench_function("parse + process, 50 workflows", |b| {
                b.iter(|| {
                    let event = parse_events(black_box(EVENT), None, now)
                        .expect("event")
                        .remove(0);
                    black_box(engine.process(&event, now))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
