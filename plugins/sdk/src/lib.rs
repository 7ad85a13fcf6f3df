//! Write Persona import plugins in Rust.
//!
//! This crate holds the bindings of the `persona:plugin@1.0.0` contract
//! (`plugins/wit/plugin.wit`) and small builders for the records a plugin returns. A
//! plugin implements [`Guest`] and names its type with [`export!`]:
//!
//! ```ignore
//! use persona_plugin::{export, Guest, Output, Payload, PluginError, Update};
//!
//! struct MyPlugin;
//!
//! impl Guest for MyPlugin {
//!     fn transform(input: Payload) -> Result<Output, PluginError> {
//!         let update = Update::find_by_email("jon@example.com").set_text("first_name", "Jon");
//!         Ok(Output { updates: vec![update], errors: vec![] })
//!     }
//! }
//!
//! export!(MyPlugin);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` file it writes
//! is a component, ready for `persona plugin check` and `PUT /v1/plugins/{name}`.

/// The generated bindings of the `importer` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "importer",
        pub_export_macro: true,
        default_bindings_module: "persona_plugin::bindings",
    });
}

pub use bindings::persona::plugin::host::{Level, log};
pub use bindings::persona::plugin::types::{
    Channel, Chunk, CustomEvent, Event, EventData, ExternalId, Field, FieldType, FieldValue,
    Header, Identifier, Receipt, ReceiptItem, RecordError, Source, Subscription, Update, Value,
};
pub use bindings::{Guest, Output, Payload, PluginError, export};

impl Update {
    /// An empty update of the profile with this customer id (created if absent).
    pub fn for_customer(customer_id: impl Into<String>) -> Self {
        Update {
            customer_id: Some(customer_id.into()),
            ..Update::empty()
        }
    }

    /// An empty update of the profile this email names (created if none does).
    pub fn find_by_email(email: impl Into<String>) -> Self {
        Update::empty().or_find_by(Identifier::Email(email.into()))
    }

    /// An empty update of the profile this external id names (created if none does).
    pub fn find_by_external(namespace: &str, value: impl Into<String>) -> Self {
        Update::empty().or_find_by(external(namespace, value))
    }

    /// An update that names no profile yet: add a customer id or identifiers to it.
    pub fn empty() -> Self {
        Update {
            record: None,
            customer_id: None,
            find_by: Vec::new(),
            set: Vec::new(),
            unset: Vec::new(),
            tags_add: Vec::new(),
            tags_remove: Vec::new(),
            identifiers: Vec::new(),
            subscriptions: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Says which record of the payload (0-based) this update came from, so that a
    /// refused update is reported against it.
    pub fn from_record(mut self, index: usize) -> Self {
        self.record = u32::try_from(index).ok();
        self
    }

    /// Also tries this identifier (after the ones already given) to find the profile.
    pub fn or_find_by(mut self, id: Identifier) -> Self {
        self.find_by.push(id);
        self
    }

    /// Sets a field from text, read by the field's type like a CSV cell.
    pub fn set_text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set.push(FieldValue {
            name: name.into(),
            value: Value::Text(value.into()),
        });
        self
    }

    /// Sets a field from text if there is text (a missing or blank value sets nothing).
    pub fn set_opt(self, name: &str, value: Option<&str>) -> Self {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => self.set_text(name, v),
            None => self,
        }
    }

    /// Sets a field to a typed value.
    pub fn set(mut self, name: &str, value: Value) -> Self {
        self.set.push(FieldValue {
            name: name.into(),
            value,
        });
        self
    }

    /// Attaches an external identifier such as `shopify:123`.
    pub fn identifier(mut self, namespace: &str, value: impl Into<String>) -> Self {
        self.identifiers.push(ExternalId {
            namespace: namespace.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags_add.push(tag.into());
        self
    }

    /// Records an event.
    pub fn event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }
}

/// An external identifier.
pub fn external(namespace: &str, value: impl Into<String>) -> Identifier {
    Identifier::External(ExternalId {
        namespace: namespace.into(),
        value: value.into(),
    })
}

impl RecordError {
    /// An error for the record at `index` with a plugin-defined code.
    pub fn new(index: usize, code: &str, message: impl Into<String>) -> Self {
        RecordError {
            record: u32::try_from(index).unwrap_or(u32::MAX),
            code: code.into(),
            message: message.into(),
        }
    }
}
