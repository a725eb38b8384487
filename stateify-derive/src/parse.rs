//! Parse and check: `DeriveInput` → [`Container`], every misuse reported
//! with a precise span, all errors combined.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Member, Path, Type};

/// How a field is saved.
pub(crate) enum Mode {
    /// Through its `Stateify` impl.
    Save,
    /// Not saved; rebuilt by `init()` or `Default::default()`.
    NoSave { init: Option<Path> },
    /// Through a custom module.
    With(Path),
}

pub(crate) struct Field {
    pub(crate) member: Member,
    /// Name in the schema fingerprint (`"name"` or `"0"`).
    pub(crate) name: String,
    pub(crate) ty: Type,
    pub(crate) mode: Mode,
}

pub(crate) struct Variant {
    pub(crate) ident: Ident,
    pub(crate) fields: Vec<Field>,
}

pub(crate) enum Body {
    Struct(Vec<Field>),
    Enum(Vec<Variant>),
}

pub(crate) struct Container {
    pub(crate) ident: Ident,
    pub(crate) generics: syn::Generics,
    pub(crate) body: Body,
    /// `after_load` method (spanned at its literal).
    pub(crate) after_load: Option<Ident>,
    /// `name = "…"`: stable schema name replacing `module_path::Ident`.
    pub(crate) name: Option<LitStr>,
}

/// Accumulates errors.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }
}

const FIELD_KEYS: &str = "expected `nosave`, `init = \"path\"` or `with = \"module\"`";
const TYPE_KEYS: &str = "expected `after_load = \"method\"` or `name = \"stable.Name\"`";

/// One parsed key of a `#[state(...)]` list.
struct Key {
    name: String,
    span: Span,
    value: Option<LitStr>,
}

/// Parses every `#[state(...)]` attribute into keys; malformed syntax is
/// reported and skipped.
fn keys(attrs: &[Attribute], errors: &mut Errors) -> Vec<Key> {
    let mut out = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("state")) {
        let result = attr.parse_nested_meta(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_else(|| {
                    meta.path
                        .segments
                        .iter()
                        .map(|s| s.ident.to_string())
                        .collect::<Vec<_>>()
                        .join("::")
                });
            let span = meta.path.span();
            let value = if meta.input.peek(syn::Token![=]) {
                let expr: syn::Expr = meta.value()?.parse()?;
                match expr {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s),
                    other => {
                        errors.at(other.span(), format!("`{name}` takes a string literal"));
                        None
                    }
                }
            } else {
                None
            };
            out.push(Key { name, span, value });
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

fn parse_lit<T: syn::parse::Parse>(lit: &LitStr, what: &str, errors: &mut Errors) -> Option<T> {
    match lit.parse::<T>() {
        Ok(v) => Some(v),
        Err(_) => {
            errors.at(
                lit.span(),
                format!("`{}` is not a valid {what}", lit.value()),
            );
            None
        }
    }
}

/// Marks `key` seen; reports a duplicate.
fn first(seen: &mut Vec<String>, key: &Key, errors: &mut Errors) -> bool {
    if seen.contains(&key.name) {
        errors.at(key.span, format!("duplicate `{}`", key.name));
        return false;
    }
    seen.push(key.name.clone());
    true
}

fn field_mode(field: &syn::Field, errors: &mut Errors) -> Mode {
    let mut seen = Vec::new();
    let mut nosave: Option<Span> = None;
    let mut init: Option<(Path, Span)> = None;
    let mut with: Option<(Path, Span)> = None;
    for key in keys(&field.attrs, errors) {
        if !first(&mut seen, &key, errors) {
            continue;
        }
        match (key.name.as_str(), &key.value) {
            ("nosave", None) => nosave = Some(key.span),
            ("init", Some(lit)) => {
                init = parse_lit::<Path>(lit, "function path", errors).map(|p| (p, key.span))
            }
            ("with", Some(lit)) => {
                with = parse_lit::<Path>(lit, "module path", errors).map(|p| (p, key.span))
            }
            ("nosave", Some(_)) => errors.at(key.span, "`nosave` takes no value"),
            ("init" | "with", None) => {
                errors.at(key.span, format!("`{}` needs a value: `{} = \"path\"`", key.name, key.name))
            }
            ("after_load", _) => errors.at(
                key.span,
                "`after_load` is a type attribute: put `#[state(after_load = \"method\")]` on the struct or enum",
            ),
            (other, _) => errors.at(key.span, format!("unknown state attribute `{other}`; {FIELD_KEYS}")),
        }
    }
    if let (Some(_), Some((_, span))) = (nosave, &with) {
        errors.at(
            *span,
            "`with` and `nosave` cannot be combined: a `nosave` field is not written at all",
        );
    }
    if let (None, Some((_, span))) = (nosave, &init) {
        errors.at(
            *span,
            "`init` only applies to `nosave` fields: add `nosave`",
        );
    }
    match (nosave, init, with) {
        (Some(_), init, _) => Mode::NoSave {
            init: init.map(|(p, _)| p),
        },
        (None, _, Some((path, _))) => Mode::With(path),
        (None, _, None) => Mode::Save,
    }
}

fn fields(fields: &Fields, errors: &mut Errors) -> Vec<Field> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (member, name) = match &f.ident {
                Some(id) => (Member::Named(id.clone()), id.to_string()),
                None => (
                    Member::Unnamed(syn::Index {
                        index: i as u32,
                        span: f.ty.span(),
                    }),
                    i.to_string(),
                ),
            };
            Field {
                member,
                name,
                ty: f.ty.clone(),
                mode: field_mode(f, errors),
            }
        })
        .collect()
}

/// Type-level attributes: `after_load` and `name`.
fn container_attrs(attrs: &[Attribute], errors: &mut Errors) -> (Option<Ident>, Option<LitStr>) {
    let mut seen = Vec::new();
    let mut after_load = None;
    let mut name = None;
    for key in keys(attrs, errors) {
        if !first(&mut seen, &key, errors) {
            continue;
        }
        match (key.name.as_str(), &key.value) {
            ("after_load", Some(lit)) => {
                after_load = parse_lit::<Ident>(lit, "method name", errors)
            }
            ("after_load", None) => errors.at(
                key.span,
                "`after_load` needs a value: `after_load = \"method\"`",
            ),
            ("name", Some(lit)) if lit.value().is_empty() => {
                errors.at(lit.span(), "`name` must not be empty")
            }
            ("name", Some(lit)) => name = Some(lit.clone()),
            ("name", None) => errors.at(key.span, "`name` needs a value: `name = \"stable.Name\"`"),
            ("nosave" | "init" | "with", _) => errors.at(
                key.span,
                format!("`{}` is a field attribute, not a type attribute", key.name),
            ),
            (other, _) => errors.at(
                key.span,
                format!("unknown state attribute `{other}`; {TYPE_KEYS}"),
            ),
        }
    }
    (after_load, name)
}

impl Container {
    pub(crate) fn from_input(input: &DeriveInput) -> Result<Self, syn::Error> {
        let mut errors = Errors::default();
        let (after_load, name) = container_attrs(&input.attrs, &mut errors);
        let body = match &input.data {
            Data::Struct(s) => Body::Struct(fields(&s.fields, &mut errors)),
            Data::Enum(e) => Body::Enum(
                e.variants
                    .iter()
                    .map(|v| {
                        if let Some(attr) = v.attrs.iter().find(|a| a.path().is_ident("state")) {
                            errors.at(
                                attr.path().span(),
                                "state attributes are not supported on enum variants",
                            );
                        }
                        Variant {
                            ident: v.ident.clone(),
                            fields: fields(&v.fields, &mut errors),
                        }
                    })
                    .collect(),
            ),
            Data::Union(u) => {
                errors.at(
                    u.union_token.span,
                    "Stateify cannot be derived for unions: which field is live is not known",
                );
                Body::Struct(Vec::new())
            }
        };
        if let Some(lt) = input.generics.lifetimes().next() {
            errors.at(
                lt.span(),
                "Stateify types hold no borrowed data: lifetime parameters are not supported",
            );
        }
        match errors.0 {
            Some(e) => Err(e),
            None => Ok(Container {
                ident: input.ident.clone(),
                generics: input.generics.clone(),
                body,
                after_load,
                name,
            }),
        }
    }
}
