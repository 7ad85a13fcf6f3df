//! The sandbox: one wasmtime engine, components compiled once, and each call in a fresh
//! store with a memory cap, a time budget and a WASI that has nothing behind it.
//!
//! A plugin built for `wasm32-wasip2` with Rust's std imports WASI (stdio, clocks,
//! random, filesystem...), so the host links it, but empty: no preopened directory, no
//! environment or arguments, no sockets, clocks fixed at the Unix epoch, stdout dropped
//! and stderr kept (a few KiB) only to explain a panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::PluginError;

/// The contract's types and bindings, generated from `plugins/wit`.
// Generated: the WIT file documents each item (enum cases that name themselves go
// without).
#[allow(missing_docs)]
mod wit {
    wasmtime::component::bindgen!({
        path: "plugins/wit",
        world: "importer",
        additional_derives: [serde::Serialize],
    });
}

use wit::persona::plugin::host::{Host as LogHost, Level};
pub use wit::persona::plugin::types::{
    Channel, Chunk, CustomEvent, Event, EventData, ExternalId, Field, FieldType, FieldValue,
    Header, Identifier, Output, Payload, PluginError as Refusal, Receipt, ReceiptItem, RecordError,
    Source, Subscription, Update, Value,
};
use wit::{Importer, ImporterPre};

/// How often the epoch ticks: the time budget's resolution.
const TICK: Duration = Duration::from_millis(10);
/// The most a plugin's memory may be set to (the pool reserves address space for it).
pub const MAX_MEMORY_MIB: u32 = 1024;
/// Calls that may run at once; the pool holds this many instances, and further calls
/// wait for a slot (they run on blocking threads, never on HTTP workers).
pub const POOL_SLOTS: u32 = 64;
/// Log lines a call may write; the rest are dropped (and counted).
const LOG_LINES: u32 = 100;
/// Longest log line kept, in bytes.
const LOG_LINE_BYTES: usize = 1024;
/// What is kept of a plugin's stderr, to explain a panic.
const STDERR_BYTES: usize = 4096;

/// Limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Linear memory cap, in bytes.
    pub memory: usize,
    /// Most updates (and most record errors) a call may return.
    pub max_updates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(100),
            memory: 64 << 20,
            max_updates: 100_000,
        }
    }
}

/// The engine and linker every plugin shares.
pub struct Sandbox {
    slots: Slots,
    engine: Engine,
    linker: Linker<CallState>,
    // Stops the epoch ticker when the sandbox goes.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sandbox")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A plugin compiled and checked against the contract, ready to instantiate.
#[derive(Clone)]
pub struct Compiled {
    pre: ImporterPre<CallState>,
    /// The component's exports, by name.
    pub exports: Vec<String>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("exports", &self.exports)
            .finish()
    }
}

/// What a store holds for one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_cap: usize,
    memory_refused: bool,
    plugin: Arc<str>,
    log_left: u32,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refused growth makes `memory.grow` return -1; Rust's allocator then aborts,
        // and this flag tells that trap from any other.
        let ok = desired <= self.memory_cap;
        self.memory_refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

// The types interface has no functions; its host side is empty.
impl wit::persona::plugin::types::Host for CallState {}

impl LogHost for CallState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_left == 0 {
            return;
        }
        self.log_left -= 1;
        let mut end = message.len().min(LOG_LINE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let (plugin, message) = (&*self.plugin, &message[..end]);
        match level {
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Clocks that say the Unix epoch, always: a plugin's output depends on its input alone.
struct Epoch;

impl HostWallClock for Epoch {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Epoch {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl Sandbox {
    /// The engine (pooled instances, epoch interruption) and its ticker thread.
    pub fn new() -> Result<Sandbox, PluginError> {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 4)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 4)
            .total_stacks(POOL_SLOTS)
            .max_memory_size(MAX_MEMORY_MIB as usize * (1 << 20))
            // A call dirties a few dozen pages. Returning them with madvise made every
            // call fault them in again and flush TLBs on every core: half of a 1 KB
            // webhook's time was the kernel's. The pages a call touched (found with
            // PAGEMAP_SCAN on Linux 6.7+) are reset with memset and stay resident.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(pool)
            .max_wasm_stack(512 << 10);
        let engine = Engine::new(&config).map_err(|e| PluginError::Host(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Host(e.to_string()))?;
        Importer::add_to_linker::<_, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Host(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, flag) = (engine.clone(), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Sandbox {
            slots: Slots::default(),
            engine,
            linker,
            stop,
        })
    }

    /// Compiles a component to this engine's machine code (60-110 ms): done once, at
    /// upload, and kept on disk.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>, PluginError> {
        match kind_of(wasm) {
            Kind::Component => {}
            Kind::CoreModule => {
                return Err(PluginError::Invalid(
                    "this is a core WebAssembly module, not a component: build the plugin for \
                     the wasm32-wasip2 target (see plugins/README.md)"
                        .into(),
                ));
            }
            Kind::NotWasm => {
                return Err(PluginError::Invalid(
                    "this is not WebAssembly (it does not start with `\\0asm`)".into(),
                ));
            }
        }
        self.engine
            .precompile_component(wasm)
            .map_err(|e| PluginError::Invalid(format!("the component does not compile: {e:#}")))
    }

    /// Loads machine code made by [`Self::precompile`] and checks it against the
    /// contract: its imports are ones the host offers, and it exports `transform` with
    /// the contract's type.
    pub fn load(&self, compiled: &[u8]) -> Result<Compiled, PluginError> {
        // SAFETY: `compiled` is what `precompile` returned, read back from the server's
        // own data directory; wasmtime also checks that it was made by this engine
        // version and configuration and refuses it otherwise.
        let component = unsafe { Component::deserialize(&self.engine, compiled) }
            .map_err(|e| PluginError::Host(format!("cannot load compiled plugin: {e:#}")))?;
        let exports = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Invalid(contract_miss(&e)))?;
        let pre = ImporterPre::new(pre).map_err(|e| PluginError::Invalid(contract_miss(&e)))?;
        Ok(Compiled { pre, exports })
    }

    /// Runs one payload through a plugin, in a fresh store.
    pub fn call(
        &self,
        plugin: &Compiled,
        name: &Arc<str>,
        payload: &Payload,
        limits: Limits,
    ) -> Result<Output, PluginError> {
        let _slot = self.slots.take();
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(Epoch)
            .monotonic_clock(Epoch)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                wasi,
                table: ResourceTable::new(),
                memory_cap: limits.memory,
                memory_refused: false,
                plugin: Arc::clone(name),
                log_left: LOG_LINES,
            },
        );
        store.limiter(|s| s);
        let ticks = limits.timeout.as_millis().div_ceil(TICK.as_millis()) as u64;
        // One more tick: the first may come at once.
        store.set_epoch_deadline(ticks + 1);
        store.epoch_deadline_trap();
        let started = Instant::now();
        let result = plugin
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_transform(&mut store, payload));
        match result {
            Ok(Ok(output)) => {
                let n = output.updates.len().max(output.errors.len());
                if n > limits.max_updates {
                    return Err(PluginError::OutputTooLarge(format!(
                        "the plugin returned {} updates and {} record errors; the cap is {} a payload",
                        output.updates.len(),
                        output.errors.len(),
                        limits.max_updates
                    )));
                }
                Ok(output)
            }
            Ok(Err(refusal)) => Err(PluginError::Refused(match refusal {
                Refusal::Unsupported(m) => format!("unsupported payload: {m}"),
                Refusal::Invalid(m) => format!("invalid payload: {m}"),
            })),
            Err(e) => Err(trap(&e, &store, &stderr, started.elapsed(), limits)),
        }
    }
}

/// Counts calls in the pool: one more than it holds would fail to instantiate.
#[derive(Default)]
struct Slots {
    busy: std::sync::Mutex<u32>,
    freed: std::sync::Condvar,
}

/// A slot held for one call.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Slot<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= POOL_SLOTS {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// Names what failed in a call that did not return.
fn trap(
    e: &wasmtime::Error,
    store: &Store<CallState>,
    stderr: &MemoryOutputPipe,
    took: Duration,
    limits: Limits,
) -> PluginError {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return PluginError::Timeout(format!(
            "the plugin ran for {} ms; its budget is {} ms a payload",
            took.as_millis(),
            limits.timeout.as_millis()
        ));
    }
    if store.data().memory_refused {
        return PluginError::MemoryExceeded(format!(
            "the plugin asked for more than its {} MiB of memory",
            limits.memory >> 20
        ));
    }
    // Wasmtime's own bound on what one call may copy out (128 MiB): a private error
    // type, known by its message.
    if format!("{e:#}").contains("fuel allocated for hostcalls") {
        return PluginError::OutputTooLarge(format!(
            "the plugin returned more than the host copies out of one call (128 MiB), or more than {} updates",
            limits.max_updates
        ));
    }
    let said = String::from_utf8_lossy(&stderr.contents())
        .trim()
        .to_owned();
    let cause = match e.downcast_ref::<Trap>() {
        Some(t) => t.to_string(),
        None => format!("{e:#}"),
    };
    PluginError::Trap(if said.is_empty() {
        cause
    } else {
        format!("{cause}; it wrote: {said}")
    })
}

/// Why a component does not fit the contract, in a partner's words.
fn contract_miss(e: &wasmtime::Error) -> String {
    format!(
        "the component does not implement persona:plugin/importer@1.0.0 \
         (an import the host does not offer, or no `transform` export of the contract's \
         type): {e:#}"
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Component,
    CoreModule,
    NotWasm,
}

/// Reads the header: `\0asm`, then a version word whose layer half says module or
/// component (the binary format's own tell; no parser needed for eight bytes).
fn kind_of(wasm: &[u8]) -> Kind {
    match wasm {
        [0, b'a', b's', b'm', _, _, 0, 0, ..] => Kind::CoreModule,
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => Kind::Component,
        _ => Kind::NotWasm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_modules_components_and_other_bytes_apart() {
        assert_eq!(kind_of(b"\0asm\x01\0\0\0"), Kind::CoreModule);
        assert_eq!(kind_of(b"\0asm\x0d\0\x01\0"), Kind::Component);
        assert_eq!(kind_of(b"PK\x03\x04"), Kind::NotWasm);
        assert_eq!(kind_of(b""), Kind::NotWasm);
    }

    #[test]
    fn garbage_and_modules_are_refused_with_a_reason() {
        let sandbox = Sandbox::new().unwrap();
        let err = sandbox.precompile(b"not wasm").unwrap_err();
        assert!(matches!(err, PluginError::Invalid(m) if m.contains("not WebAssembly")));
        let err = sandbox.precompile(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(matches!(err, PluginError::Invalid(m) if m.contains("core WebAssembly module")));
    }
}
