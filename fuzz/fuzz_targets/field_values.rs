//! Any bytes, as a CSV cell or a JSON value, for every field type: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::schema::{FieldDef, FieldType, RawValue, value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    for ty in FieldType::ALL {
        let mut def = FieldDef::custom("f", *ty);
        def.values = vec!["gold".into(), "silver".into()];
        let _ = value::parse(&def, &RawValue::Text(text.into()));
        if let Some(j) = &json {
            if let Ok(Some(v)) = value::parse(&def, &RawValue::Json(j.clone())) {
                // What was accepted must serialize back.
                serde_json::to_string(&v).unwrap();
            }
        }
    }
});
