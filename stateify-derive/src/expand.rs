//! Code generation for a checked [`Container`].

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse::{Body, Container, Field, Mode, Variant};

/// Binding name of a field in generated patterns.
fn binding(i: usize) -> syn::Ident {
    format_ident!("__field{}", i)
}

/// Fingerprint contribution of fields: name then shape (or the `with`
/// module's declared fingerprint), `nosave` fields excluded.
fn fingerprint_fields(fields: &[Field]) -> TokenStream {
    let steps = fields.iter().filter_map(|f| {
        let name = &f.name;
        let ty = &f.ty;
        match &f.mode {
            Mode::NoSave { .. } => None,
            Mode::Save => Some(quote_spanned! {ty.span()=>
                let __h = ::checkpoints::state::fingerprint::combine_str(__h, #name);
                let __h = ::checkpoints::state::fingerprint::combine(__h, <#ty as ::checkpoints::Stateify>::SHAPE);
            }),
            Mode::With(path) => Some(quote_spanned! {path.span()=>
                let __h = ::checkpoints::state::fingerprint::combine_str(__h, #name);
                let __h = ::checkpoints::state::fingerprint::combine_str(__h, "with");
                let __h = ::checkpoints::state::fingerprint::combine(__h, #path::FINGERPRINT);
            }),
        }
    });
    quote! { #(#steps)* }
}

fn min_size(fields: &[Field]) -> TokenStream {
    let terms = fields.iter().filter_map(|f| match f.mode {
        Mode::Save => {
            let ty = &f.ty;
            Some(quote_spanned! {ty.span()=> + <#ty as ::checkpoints::Stateify>::MIN_SIZE })
        }
        _ => None,
    });
    quote! { 0usize #(#terms)* }
}

fn visit_fields(fields: &[Field]) -> TokenStream {
    let calls = fields
        .iter()
        .filter(|f| matches!(f.mode, Mode::Save))
        .map(|f| {
            let ty = &f.ty;
            quote_spanned! {ty.span()=> <#ty as ::checkpoints::Stateify>::visit_types(visitor); }
        });
    quote! { #(#calls)* }
}

/// `{ member: binding, .. }` for the fields `keep` selects.
fn pattern(fields: &[Field], keep: impl Fn(&Field) -> bool) -> TokenStream {
    let parts = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| keep(f))
        .map(|(i, f)| {
            let member = &f.member;
            let b = binding(i);
            quote! { #member: ref #b }
        });
    quote! { { #(#parts,)* .. } }
}

fn save_fields(fields: &[Field]) -> TokenStream {
    let stmts = fields.iter().enumerate().filter_map(|(i, f)| {
        let b = binding(i);
        match &f.mode {
            Mode::Save => {
                let ty = &f.ty;
                Some(
                    quote_spanned! {ty.span()=> <#ty as ::checkpoints::Stateify>::save(#b, enc)?; },
                )
            }
            Mode::With(path) => Some(quote_spanned! {path.span()=> #path::save(#b, enc)?; }),
            Mode::NoSave { .. } => None,
        }
    });
    quote! { #(#stmts)* }
}

/// Reads the saved fields (declaration order), rebuilds the others, and
/// constructs `ctor { .. }`.
fn load_fields(ctor: TokenStream, fields: &[Field]) -> TokenStream {
    let stmts = fields.iter().enumerate().map(|(i, f)| {
        let b = binding(i);
        let ty = &f.ty;
        match &f.mode {
            Mode::Save => quote_spanned! {ty.span()=>
                let #b = <#ty as ::checkpoints::Stateify>::load(dec)?;
            },
            Mode::With(path) => quote_spanned! {path.span()=>
                let #b: #ty = #path::load(dec)?;
            },
            Mode::NoSave { init: Some(init) } => quote_spanned! {init.span()=>
                let #b: #ty = #init();
            },
            // Spanned at the field's type so a missing `Default` points there.
            Mode::NoSave { init: None } => quote_spanned! {ty.span()=>
                let #b: #ty = <#ty as ::core::default::Default>::default();
            },
        }
    });
    let inits = fields.iter().enumerate().map(|(i, f)| {
        let member = &f.member;
        let b = binding(i);
        quote! { #member: #b }
    });
    quote! {
        #(#stmts)*
        #ctor { #(#inits,)* }
    }
}

fn walk_fields(fields: &[Field]) -> TokenStream {
    let calls = fields.iter().enumerate().filter(|(_, f)| matches!(f.mode, Mode::Save)).map(|(i, f)| {
        let b = binding(i);
        let ty = &f.ty;
        quote_spanned! {ty.span()=> <#ty as ::checkpoints::Stateify>::after_load_walk(#b, hooks); }
    });
    quote! { #(#calls)* }
}

fn is_saved(f: &Field) -> bool {
    !matches!(f.mode, Mode::NoSave { .. })
}

fn is_walked(f: &Field) -> bool {
    matches!(f.mode, Mode::Save)
}

struct Parts {
    fingerprint: TokenStream,
    min_size: TokenStream,
    visit: TokenStream,
    save: TokenStream,
    load: TokenStream,
    walk: TokenStream,
}

fn struct_parts(fields: &[Field]) -> Parts {
    let fp = fingerprint_fields(fields);
    let save_pat = pattern(fields, is_saved);
    let save = save_fields(fields);
    let walk_pat = pattern(fields, is_walked);
    let walk = walk_fields(fields);
    Parts {
        fingerprint: quote! {
            let __h = ::checkpoints::state::fingerprint::hash_str("struct");
            #fp
            __h
        },
        min_size: min_size(fields),
        visit: visit_fields(fields),
        save: quote! {
            let Self #save_pat = *self;
            #save
        },
        load: load_fields(quote!(Self), fields),
        walk: quote! {
            let Self #walk_pat = *self;
            #walk
        },
    }
}

fn enum_parts(name: &TokenStream, variants: &[Variant]) -> Parts {
    let fps = variants.iter().map(|v| {
        let vname = v.ident.to_string();
        let n = v.fields.iter().filter(|f| is_saved(f)).count() as u64;
        let fp = fingerprint_fields(&v.fields);
        quote! {
            let __h = ::checkpoints::state::fingerprint::combine_str(__h, #vname);
            let __h = ::checkpoints::state::fingerprint::combine(__h, #n);
            #fp
        }
    });
    let visits = variants.iter().map(|v| visit_fields(&v.fields));
    let save_arms = variants.iter().enumerate().map(|(i, v)| {
        let ident = &v.ident;
        let tag = Literal::u64_unsuffixed(i as u64);
        let pat = pattern(&v.fields, is_saved);
        let save = save_fields(&v.fields);
        quote! {
            Self::#ident #pat => {
                enc.write_varint(#tag);
                #save
            }
        }
    });
    let load_arms = variants.iter().enumerate().map(|(i, v)| {
        let ident = &v.ident;
        let tag = Literal::u64_unsuffixed(i as u64);
        let body = load_fields(quote!(Self::#ident), &v.fields);
        quote! { #tag => { #body } }
    });
    let walk_arms = variants.iter().map(|v| {
        let ident = &v.ident;
        let pat = pattern(&v.fields, is_walked);
        let walk = walk_fields(&v.fields);
        quote! { Self::#ident #pat => { #walk } }
    });
    Parts {
        fingerprint: quote! {
            let __h = ::checkpoints::state::fingerprint::hash_str("enum");
            #(#fps)*
            __h
        },
        min_size: quote!(1usize),
        visit: quote! { #(#visits)* },
        save: quote! {
            match *self {
                #(#save_arms)*
            }
        },
        load: quote! {
            match ::checkpoints::state::Decoder::read_varint(dec)? {
                #(#load_arms)*
                __tag => {
                    return ::core::result::Result::Err(::checkpoints::state::LoadError::BadTag {
                        type_name: #name,
                        tag: __tag,
                    });
                }
            }
        },
        walk: quote! {
            match *self {
                #(#walk_arms)*
            }
        },
    }
}

/// The type's schema name: `name = "…"` or `module_path!()::Ident`.
fn base_name(c: &Container) -> TokenStream {
    let ident = c.ident.to_string();
    match &c.name {
        Some(lit) => quote! { #lit },
        None => quote! { ::core::concat!(::core::module_path!(), "::", #ident) },
    }
}

/// Generates the impl.
pub(crate) fn expand(c: &Container) -> TokenStream {
    let ident = &c.ident;
    let parts = match &c.body {
        Body::Struct(fields) => struct_parts(fields),
        Body::Enum(variants) => enum_parts(&base_name(c), variants),
    };
    let Parts {
        fingerprint,
        min_size,
        visit,
        save,
        load,
        walk,
    } = parts;

    let mut generics = c.generics.clone();
    let type_params: Vec<syn::Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
    let const_params: Vec<syn::Ident> = generics.const_params().map(|p| p.ident.clone()).collect();
    {
        let where_clause = generics.make_where_clause();
        for p in &type_params {
            where_clause
                .predicates
                .push(syn::parse_quote!(#p: ::checkpoints::Stateify));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let base = base_name(c);
    let type_name = if type_params.is_empty() && const_params.is_empty() {
        quote! { ::std::string::String::from(#base) }
    } else {
        quote! {
            let __args: ::std::vec::Vec<::std::string::String> = ::std::vec![
                #(<#type_params as ::checkpoints::Stateify>::type_name(),)*
                #(::std::string::ToString::to_string(&#const_params),)*
            ];
            ::std::format!("{}<{}>", #base, __args.join(", "))
        }
    };
    let has_hook = c.after_load.is_some();
    let hook = c.after_load.as_ref().map(|method| {
        quote_spanned! {method.span()=>
            Self::#method(self);
            hooks.ran();
        }
    });

    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_variables, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::checkpoints::Stateify for #ident #ty_generics #where_clause {
                const SHAPE: u64 = {
                    let __h = ::checkpoints::state::fingerprint::hash_str(#base);
                    #(let __h = ::checkpoints::state::fingerprint::combine(__h, <#type_params as ::checkpoints::Stateify>::SHAPE);)*
                    __h
                };
                const FINGERPRINT: u64 = { #fingerprint };
                const MIN_SIZE: usize = #min_size;

                fn type_name() -> ::std::string::String {
                    #type_name
                }

                fn visit_types(visitor: &mut ::checkpoints::state::TypeVisitor) {
                    if visitor.enter_type(
                        <Self as ::checkpoints::Stateify>::type_name(),
                        <Self as ::checkpoints::Stateify>::FINGERPRINT,
                        #has_hook,
                    ) {
                        #visit
                    }
                }

                fn save(
                    &self,
                    enc: &mut ::checkpoints::state::Encoder,
                ) -> ::core::result::Result<(), ::checkpoints::state::SaveError> {
                    enc.enter()?;
                    #save
                    enc.leave();
                    ::core::result::Result::Ok(())
                }

                fn load(
                    dec: &mut ::checkpoints::state::Decoder<'_>,
                ) -> ::core::result::Result<Self, ::checkpoints::state::LoadError> {
                    dec.enter()?;
                    let __value = { #load };
                    dec.leave();
                    ::core::result::Result::Ok(__value)
                }

                fn after_load_walk(&self, hooks: &mut ::checkpoints::state::AfterLoad) {
                    #walk
                    #hook
                }
            }
        };
    }
}
