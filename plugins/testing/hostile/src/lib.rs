//! A plugin that misbehaves on request: the payload's first word says how. The host's
//! tests upload it and check that each misdeed gets its own clear error and hurts
//! nothing else.
//!
//! - `loop`: never returns.
//! - `alloc`: allocates without end.
//! - `trap`: executes `unreachable`.
//! - `panic`: panics.
//! - `flood N`: returns N updates.
//! - `mixed`: one good update, one for an unknown field, one with a wrong type.
//! - `refuse`: returns a plugin error.
//! - `nameless`: one update that names no profile, one with JSON text that does not
//!   parse, and one good one.
//! - `log`: writes many log lines, then one update.
//! - `events`: one update with a good custom event and a `bonus` given as one, one with
//!   a negative bonus, one with a time that is not a time.
//! - anything else: one update per line, `customer_id,first_name`.

use persona_plugin::{
    CustomEvent, Event, EventData, Guest, Level, Output, Payload, PluginError, RecordError, Update,
    Value, export, log,
};

/// A custom event of the contract, at `time` (none: when the host applies it).
fn custom(name: &str, properties: &str, time: Option<&str>) -> Event {
    Event {
        time: time.map(str::to_owned),
        data: EventData::Custom(CustomEvent {
            name: name.into(),
            properties: properties.into(),
        }),
    }
}

struct Hostile;

impl Guest for Hostile {
    fn transform(input: Payload) -> Result<Output, PluginError> {
        let text = String::from_utf8_lossy(&input.body).into_owned();
        let mut words = text.split_whitespace();
        let updates = match words.next().unwrap_or("") {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("the hostile plugin panics on purpose"),
            "flood" => {
                let n: usize = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(1_000_000);
                (0..n)
                    .map(|i| Update::for_customer(format!("f{i}")))
                    .collect()
            }
            "mixed" => vec![
                Update::for_customer("good").set_text("first_name", "Ada"),
                Update::for_customer("unknown").set_text("no_such_field", "x"),
                Update::for_customer("wrong").set("first_name", Value::Integer(7)),
            ],
            "nameless" => vec![
                Update::empty().set_text("first_name", "Nobody"),
                Update::for_customer("badjson").set("first_name", Value::Json("{".into())),
                Update::for_customer("named").set_text("first_name", "Nora"),
            ],
            "events" => vec![
                Update::for_customer("ev1")
                    .event(custom("app.opened", r#"{"screen":"home"}"#, None))
                    .event(custom("bonus", r#"{"amount":50,"status":"active"}"#, None)),
                Update::for_customer("ev2").event(custom(
                    "bonus",
                    r#"{"amount":-1,"status":"active"}"#,
                    None,
                )),
                Update::for_customer("ev3").event(custom("app.opened", "{}", Some("soon"))),
            ],
            "refuse" => return Err(PluginError::Unsupported("refuse was asked for".into())),
            "log" => {
                for i in 0..10_000 {
                    log(Level::Info, &format!("log line {i}"));
                }
                vec![Update::for_customer("logger").set_text("first_name", "Log")]
            }
            _ => {
                let mut updates = Vec::new();
                let mut errors = Vec::new();
                for (i, line) in text.lines().enumerate() {
                    match line.split_once(',') {
                        Some((id, name)) => {
                            updates.push(Update::for_customer(id).set_text("first_name", name))
                        }
                        None => errors.push(RecordError::new(i, "no_comma", "expected id,name")),
                    }
                }
                return Ok(Output { updates, errors });
            }
        };
        Ok(Output {
            updates,
            errors: Vec::new(),
        })
    }
}

export!(Hostile);
