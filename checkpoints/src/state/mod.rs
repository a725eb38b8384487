//! Kernel state as an object graph: the [`Stateify`] trait that
//! `#[derive(Stateify)]` implements, and the encoder/decoder that write a
//! whole graph to bytes and rebuild it.
//!
//! # Model
//!
//! A value is written field by field (postcard encoding for scalars). Every
//! `Arc<T>` (including `Arc<Mutex<T>>`, `Arc<RwLock<T>>`) points to an
//! *object*: objects get ids in the order they are first reached, their
//! bodies are written once, separately, and references to them are ids. So
//! an `Arc` reached twice comes back as one allocation (`Arc::ptr_eq`), and
//! a `Weak<T>` comes back pointing at the same object (a dangling `Weak`
//! comes back dangling). Identity during save is the allocation address; the
//! encoder holds a strong reference to every object it has seen so addresses
//! cannot be reused mid-save.
//!
//! # Loading, and cycles through `Weak`
//!
//! Safe Rust can only create an `Arc<T>` from a finished `T`, and a `Weak<T>`
//! to a not-yet-finished `T` only inside `Arc::new_cyclic`. So:
//!
//! 1. The saver records the references of each body (strong/weak) and
//!    computes a *completion order*: the strongly connected components of
//!    the reference graph in reverse topological order (so references that
//!    leave a cycle always point at finished objects), and within each
//!    component a depth-first post-order over strong references — each
//!    object after everything it holds strongly. A strong cycle cannot be
//!    rebuilt and is refused at save time ([`SaveError::StrongCycle`]).
//! 2. An object that is the target of a `Weak` in a body decoded no later
//!    than its own — only possible inside a cycle, e.g. a directory whose
//!    children point back at it — is a
//!    *forward* object: it is built in an `Arc::new_cyclic` *frame* that
//!    opens at the completion position of its first weak referrer and
//!    closes at its own. Frames must nest; where two would overlap, the
//!    later-closing one opens earlier, where the other opens
//!    (`state/plan.rs`). Nesting depth is then how deeply the weak
//!    cycles really nest: for a tree with parent pointers, the tree's depth;
//!    for a chain of objects pointing at each other only weakly, the chain's
//!    length. It is bounded by [`MAX_OPEN_FRAMES`] (save refuses more; load
//!    rejects more).
//! 3. The loader decodes bodies in completion order, opening frames at
//!    their positions; inside a frame the object's `Weak` is already
//!    available, and the frame decodes the object's body at its turn and
//!    returns, which turns those `Weak`s live. Strong references always find
//!    a finished object; weak ones a finished or open one. The loader does
//!    not trust the plan: any reference or frame it cannot satisfy is a
//!    [`LoadError`].
//! 4. After every object and then the root value are built, `after_load`
//!    hooks run (see below); then the loader drops its table of objects, so
//!    an object that only a `Weak` in the graph referred to (its owner was
//!    outside the graph) ends up dangling, as it would have without the
//!    checkpoint.
//!
//! # `after_load` hooks
//!
//! `#[state(after_load = "method")]` names `fn method(&self)`. Hooks take
//! `&self` because most kernel objects are shared (`Arc`) by the time the
//! graph is complete; a hook that rebuilds a `nosave` host resource puts it
//! behind interior mutability (`Mutex<Option<Sender<_>>>`, `OnceLock`), or
//! the type lives in an `Arc<Mutex<T>>`, whose walk holds the lock while
//! the hook runs. Hooks run after the whole graph is decoded, once per
//! value: objects in depth-first post-order over all references (strong and
//! weak, in field order) starting from objects in id order — so everything
//! an object owns or points to runs first; on a cycle the object reached
//! first (lowest id) runs last. Within an object (and for the root value,
//! which runs last), owned values run before their owner.
//!
//! # Schema
//!
//! See [`fingerprint`]. The saved state carries the root type name, the
//! whole-schema fingerprint and the per-type table; [`load`] compares it
//! with this build's and names the first type that differs
//! ([`LoadError::SchemaMismatch`]).
//!
//! # Byte layout (format version 1)
//!
//! `varint` is postcard's unsigned LEB128; `str` is `varint` length + UTF-8;
//! `u64le` is 8 little-endian bytes.
//!
//! ```text
//! magic        8 bytes  "SBXSTATE"
//! version      varint   FORMAT_VERSION (1)
//! root_type    str      Stateify::type_name of the root
//! root_fp      u64le    whole-schema fingerprint (Schema::root_fingerprint)
//! types        varint n, then n × (name: str, fingerprint: u64le)
//! obj_types    varint m, then m × name: str     (T of each Arc<T>/Weak<T>)
//! objects      varint k, then k × (obj_type: varint, body_len: varint)
//! frames       varint f, then f × (object: varint, open_at: varint)
//! completion   k × object: varint               (a permutation of 0..k)
//! root_len     varint, then the root value's bytes
//! bodies       the k object bodies, concatenated in id order (exactly to
//!              the end of the input)
//! ```
//!
//! Values: unsigned integers and `usize` as varints, signed ones (and
//! `isize`) zig-zag + varint, `u8`/`i8` one byte, floats little-endian,
//! `bool` one byte, `char`/`u128`/`i128` as postcard; strings, paths, OS
//! strings and byte buffers as length + raw bytes; other sequences, maps and
//! sets as length + elements; arrays and tuples as their elements;
//! `Option`/`Result` and enums as a varint tag (variant index in
//! declaration order) + fields; derived structs as their saved fields in
//! declaration order; `Arc<T>` as the object id; `Weak<T>` as 0 (dangling)
//! or object id + 1; `Mutex`/`RwLock`/`Box`/atomics as their contents.
//!
//! Stability: the layout of a *value* follows from the types (the schema
//! table guards it); the framing above changes only with `FORMAT_VERSION`.

mod decoder;
mod encoder;
mod error;
pub mod fingerprint;
mod graph_load;
mod hooks;
mod impls;
mod plan;
mod schema;
mod traits;
mod varint;

pub use decoder::Decoder;
pub use encoder::{Encoder, MAX_DEPTH, MAX_ZERO_SIZED_LEN};
pub use error::{LoadError, SaveError};
pub use graph_load::MAX_OPEN_FRAMES;
pub use hooks::AfterLoad;
pub use impls::sync::LOCK_TIMEOUT;
pub use schema::{schema_of, Schema, TypeFingerprint, TypeVisitor};
pub use traits::Stateify;

/// Magic at the start of the state bytes.
pub const MAGIC: [u8; 8] = *b"SBXSTATE";
/// Version of the state byte layout (independent of the crate version).
pub const FORMAT_VERSION: u64 = 1;

/// A saved state graph.
#[derive(Debug, Clone)]
pub struct SavedState {
    /// The self-describing state bytes (they embed the schema below).
    pub bytes: Vec<u8>,
    /// Root type name.
    pub root_type: String,
    /// Whole-schema fingerprint (root type and every derived type reached).
    pub root_fingerprint: u64,
    /// Per-type fingerprint table, in schema walk order.
    pub types: Vec<TypeFingerprint>,
    /// Number of shared objects written.
    pub objects: usize,
}

impl AsRef<[u8]> for SavedState {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// What a load did, for logs and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    /// Shared objects rebuilt.
    pub objects: usize,
    /// `after_load` hooks run.
    pub hooks_run: usize,
}

/// Writes the graph reachable from `root`.
///
/// Preconditions: nothing mutates the graph during the save (the kernel is
/// paused), and the caller holds none of the graph's locks: the encoder
/// takes each `Mutex`/`RwLock` it passes through, one at a time (object
/// bodies are written one after another, never nested), and gives up with
/// [`SaveError::LockBusy`] after [`LOCK_TIMEOUT`].
pub fn save<T: Stateify>(root: &T) -> Result<SavedState, SaveError> {
    let schema = schema::visit::<T>()
        .map_err(|name| SaveError::DuplicateTypeName { name })?
        .into_schema(T::type_name());
    let mut enc = Encoder::new();
    root.save(&mut enc)?;
    let root_bytes = std::mem::take(&mut enc.buf);
    let mut body_lens = Vec::new();
    let mut next = 0usize;
    while let Some(obj) = enc.graph.queue.get(next).cloned() {
        // `next` < queue length, which object_id keeps within u32.
        enc.graph.current = Some(next as u32);
        let start = enc.buf.len();
        obj.save_body(&mut enc)?;
        body_lens.push(enc.buf.len() - start);
        next += 1;
    }
    let n = body_lens.len();
    let graph = &enc.graph;
    let plan = plan::compute(n, &graph.edges, |id| {
        graph.type_names[graph.obj_type[id as usize] as usize].clone()
    })?;

    let mut out = Vec::with_capacity(enc.buf.len() + root_bytes.len() + 64 + n * 4);
    out.extend_from_slice(&MAGIC);
    varint::write(&mut out, FORMAT_VERSION);
    write_str(&mut out, &schema.root_type);
    out.extend_from_slice(&schema.root_fingerprint.to_le_bytes());
    varint::write(&mut out, schema.types.len() as u64);
    for t in &schema.types {
        write_str(&mut out, &t.name);
        out.extend_from_slice(&t.fingerprint.to_le_bytes());
    }
    varint::write(&mut out, graph.type_names.len() as u64);
    for name in &graph.type_names {
        write_str(&mut out, name);
    }
    varint::write(&mut out, n as u64);
    for (ty, len) in graph.obj_type.iter().zip(&body_lens) {
        varint::write(&mut out, u64::from(*ty));
        varint::write(&mut out, *len as u64);
    }
    varint::write(&mut out, plan.frames.len() as u64);
    for f in &plan.frames {
        varint::write(&mut out, u64::from(f.id));
        varint::write(&mut out, f.open_at as u64);
    }
    for id in &plan.completion {
        varint::write(&mut out, u64::from(*id));
    }
    varint::write(&mut out, root_bytes.len() as u64);
    out.extend_from_slice(&root_bytes);
    out.extend_from_slice(&enc.buf);
    Ok(SavedState {
        bytes: out,
        root_type: schema.root_type,
        root_fingerprint: schema.root_fingerprint,
        types: schema.types,
        objects: n,
    })
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    varint::write(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Rebuilds a `T` from bytes written by [`save`] (or a [`SavedState`]).
pub fn load<T: Stateify>(input: &(impl AsRef<[u8]> + ?Sized)) -> Result<T, LoadError> {
    load_with_report(input).map(|(value, _)| value)
}

/// [`load`], also reporting what was rebuilt.
pub fn load_with_report<T: Stateify>(
    input: &(impl AsRef<[u8]> + ?Sized),
) -> Result<(T, LoadReport), LoadError> {
    let input = input.as_ref();
    let visitor = schema::visit::<T>().map_err(|name| LoadError::DuplicateTypeName { name })?;
    let (schema, vtables, any_hooks) = visitor.split(T::type_name());

    let mut dec = Decoder::new(input);
    if dec.read_array::<8>()? != MAGIC {
        return Err(LoadError::BadMagic);
    }
    let version = dec.read_varint()?;
    if version != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion { found: version });
    }
    check_schema(&mut dec, &schema)?;
    read_objects(&mut dec, vtables, any_hooks)?;
    let root_len = dec.read_len(1)?;
    let root_start = dec.position();
    let blob_start = root_start + root_len;
    assign_bodies(&mut dec, blob_start, input.len())?;

    graph_load::run_plan(&mut dec)?;
    let prev = dec.set_window(root_start, root_len);
    let root = T::load(&mut dec)?;
    dec.expect_end()?;
    dec.restore_window(prev);

    let mut hooks = AfterLoad::default();
    if dec.graph.record_edges {
        graph_load::run_object_hooks(&mut dec, &mut hooks);
    }
    if any_hooks && T::HAS_HOOKS {
        root.after_load_walk(&mut hooks);
    }
    let report = LoadReport {
        objects: dec.graph.count,
        hooks_run: hooks.hooks_run(),
    };
    Ok((root, report))
}

/// Reads the saved schema and compares it with this build's.
fn check_schema(dec: &mut Decoder<'_>, expected: &Schema) -> Result<(), LoadError> {
    let root_type = dec.read_str()?;
    let root_fp = u64::from_le_bytes(dec.read_array::<8>()?);
    let count = dec.read_len(9)?;
    let mut saved = Vec::with_capacity(count);
    for _ in 0..count {
        let name = dec.read_str()?;
        let fp = u64::from_le_bytes(dec.read_array::<8>()?);
        saved.push((name, fp));
    }
    if root_type != expected.root_type {
        return Err(LoadError::RootTypeMismatch {
            expected: expected.root_type.clone(),
            found: root_type.to_owned(),
        });
    }
    if root_fp == expected.root_fingerprint && saved.len() == expected.types.len() {
        let same = saved
            .iter()
            .zip(&expected.types)
            .all(|(&(name, fp), t)| name == t.name && fp == t.fingerprint);
        if same {
            return Ok(());
        }
    }
    let ours: std::collections::HashMap<&str, u64> = expected
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.fingerprint))
        .collect();
    for &(name, fp) in &saved {
        let mine = ours.get(name).copied();
        if mine != Some(fp) {
            return Err(LoadError::SchemaMismatch {
                type_name: name.to_owned(),
                expected: mine,
                found: Some(fp),
            });
        }
    }
    let theirs: std::collections::HashSet<&str> = saved.iter().map(|&(n, _)| n).collect();
    for t in &expected.types {
        if !theirs.contains(t.name.as_str()) {
            return Err(LoadError::SchemaMismatch {
                type_name: t.name.clone(),
                expected: Some(t.fingerprint),
                found: None,
            });
        }
    }
    // Same table, different root hash: the root fingerprint itself is corrupt.
    Err(LoadError::SchemaMismatch {
        type_name: expected.root_type.clone(),
        expected: Some(expected.root_fingerprint),
        found: Some(root_fp),
    })
}

/// Reads the object-type table, the object table and the plan.
fn read_objects(
    dec: &mut Decoder<'_>,
    vtables: Vec<schema::ObjectVTable>,
    any_hooks: bool,
) -> Result<(), LoadError> {
    let by_name: std::collections::HashMap<&str, usize> = vtables
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.as_str(), i))
        .collect();
    let type_count = dec.read_len(1)?;
    let mut type_map = Vec::with_capacity(type_count);
    for _ in 0..type_count {
        let name = dec.read_str()?;
        let vt = by_name
            .get(name)
            .copied()
            .ok_or_else(|| LoadError::UnknownObjectType {
                name: name.to_owned(),
            })?;
        type_map.push(vt);
    }
    // Each object takes at least 3 bytes: type, body length, completion id.
    let n = dec.read_len(3)?;
    if n > u32::MAX as usize {
        return Err(LoadError::BadPlan {
            reason: "too many objects",
        });
    }
    let g = &mut dec.graph;
    g.obj_vtable = Vec::with_capacity(n);
    g.bodies = Vec::with_capacity(n);
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        let ty = dec.read_varint()?;
        let vt = *type_map
            .get(usize::try_from(ty).unwrap_or(usize::MAX))
            .ok_or(LoadError::BadTag {
                type_name: "object type index",
                tag: ty,
            })?;
        let len = dec.read_len(1)?;
        dec.graph.obj_vtable.push(vt);
        lens.push(len);
    }
    // Frames: (id, opening position), read now, checked against the
    // completion order below.
    let frame_count = dec.read_len(2)?;
    let mut raw_frames = Vec::with_capacity(frame_count);
    for _ in 0..frame_count {
        let id = read_id(dec, n)?;
        let open_at = dec.read_varint()?;
        raw_frames.push((id, open_at));
    }
    let mut pos = vec![usize::MAX; n];
    let mut completion = Vec::with_capacity(n);
    for p in 0..n {
        let id = read_id(dec, n)?;
        if pos[id as usize] != usize::MAX {
            return Err(LoadError::BadPlan {
                reason: "object listed twice in completion order",
            });
        }
        pos[id as usize] = p;
        completion.push(id);
    }
    let mut is_forward = vec![false; n];
    let mut frames = Vec::with_capacity(frame_count);
    let mut prev: Option<(usize, usize)> = None;
    for (id, open_at) in raw_frames {
        let close = pos[id as usize];
        if open_at > close as u64 {
            return Err(LoadError::BadPlan {
                reason: "frame opens after its object is built",
            });
        }
        // open_at ≤ close < n.
        let open_at = open_at as usize;
        if prev.is_some_and(|(o, c)| o > open_at || (o == open_at && c <= close)) {
            return Err(LoadError::BadPlan {
                reason: "frames out of order",
            });
        }
        prev = Some((open_at, close));
        if std::mem::replace(&mut is_forward[id as usize], true) {
            return Err(LoadError::BadPlan {
                reason: "frame listed twice",
            });
        }
        frames.push(plan::Frame { id, open_at });
    }
    drop(by_name);
    let any_hooks = any_hooks && vtables.iter().any(|v| v.has_hooks);
    let g = &mut dec.graph;
    g.vtables = vtables;
    g.record_edges = any_hooks;
    g.frames = frames;
    g.is_forward = is_forward;
    g.completion = completion;
    // Per-type slot tables: each object's index among objects of its type.
    let mut per_type = vec![0u32; g.vtables.len()];
    g.local = g
        .obj_vtable
        .iter()
        .map(|&vt| {
            let local = per_type[vt];
            per_type[vt] += 1;
            local
        })
        .collect();
    g.slots = g
        .vtables
        .iter()
        .zip(&per_type)
        .map(|(v, &count)| (v.new_slots)(count as usize))
        .collect();
    g.count = n;
    // Offsets are assigned once the blob start is known.
    g.bodies = lens.into_iter().map(|len| (0, len)).collect();
    Ok(())
}

fn read_id(dec: &mut Decoder<'_>, n: usize) -> Result<u32, LoadError> {
    let raw = dec.read_varint()?;
    if raw >= n as u64 {
        return Err(LoadError::BadObjectRef { id: raw, count: n });
    }
    Ok(raw as u32)
}

/// Turns body lengths into offsets; the bodies must fill the input exactly.
fn assign_bodies(dec: &mut Decoder<'_>, blob_start: usize, end: usize) -> Result<(), LoadError> {
    let mut offset = blob_start;
    for body in dec.graph.bodies.iter_mut() {
        body.0 = offset;
        offset = offset.checked_add(body.1).ok_or(LoadError::Truncated)?;
    }
    match offset.cmp(&end) {
        std::cmp::Ordering::Greater => Err(LoadError::Truncated),
        std::cmp::Ordering::Less => Err(LoadError::TrailingBytes {
            count: end - offset,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
