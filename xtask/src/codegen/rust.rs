//! The Rust side of code generation: protocol types with typify, and the
//! method table from `x-methods`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Context, Result, anyhow, bail};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::Value;
use syn::visit_mut::VisitMut;
use typify::{TypeSpace, TypeSpaceSettings};

use super::schema::{Direction, Method, MethodKind, Schema};

/// Defs replaced by hand-written types in `exec-protocol` rather than generated.
const REPLACEMENTS: &[(&str, &str)] = &[("Base64Bytes", "crate::Base64Bytes")];

/// The generated Rust sources, formatted, without the header line.
pub struct RustOutput {
    /// `schema/src/types.rs`: one type per def.
    pub types: String,
    /// `schema/src/methods.rs`: the method table.
    pub methods: String,
}

/// Generates the protocol types and the method table.
pub fn generate(schema: &Schema) -> Result<RustOutput> {
    let type_names = schema.defs.keys().cloned().collect::<Vec<_>>();
    let mut types = syn::parse2::<syn::File>(typify_defs(&schema.defs)?)
        .context("typify produced Rust that does not parse")?;
    MarkOptionalFields.visit_file_mut(&mut types);
    for (name, def) in &schema.defs {
        if is_empty_object(def) {
            replace_with_empty_struct(&mut types, name, def)?;
        }
    }
    let export = typescript_export_fn(&type_names);
    types.items.extend(syn::parse2::<syn::File>(export)?.items);

    let methods = syn::parse2::<syn::File>(method_table(schema)?)
        .context("the method table does not parse")?;
    Ok(RustOutput {
        types: prettyplease::unparse(&types),
        methods: prettyplease::unparse(&methods),
    })
}

fn settings() -> TypeSpaceSettings {
    let mut settings = TypeSpaceSettings::default();
    settings
        .with_struct_builder(false)
        .with_map_type("::std::collections::BTreeMap")
        .with_derive("PartialEq".to_owned())
        .with_attr("#[cfg_attr(feature = \"ts\", derive(::ts_rs::TS))]".to_owned());
    for (def, rust_type) in REPLACEMENTS {
        settings.with_replacement(*def, *rust_type, std::iter::empty());
    }
    settings
}

/// Runs typify over all defs. On failure it finds the first def that fails on
/// its own (with the defs it refers to), so the error names it.
fn typify_defs(defs: &BTreeMap<String, Value>) -> Result<TokenStream> {
    match typify_some(defs, defs.keys()) {
        Ok(tokens) => Ok(tokens),
        Err(error) => {
            for name in defs.keys() {
                let closure = super::schema::closure(name, defs);
                if let Err(def_error) = typify_some(defs, closure.iter()) {
                    return Err(def_error.context(format!("typify cannot convert def `{name}`")));
                }
            }
            Err(error.context("typify cannot convert the schema"))
        }
    }
}

fn typify_some<'a>(
    defs: &BTreeMap<String, Value>,
    names: impl Iterator<Item = &'a String>,
) -> Result<TokenStream> {
    let mut converted = Vec::new();
    for name in names {
        let def = &defs[name];
        let schema: schemars::schema::Schema = serde_json::from_value(def.clone())
            .with_context(|| format!("def `{name}` is not a JSON Schema typify can read"))?;
        converted.push((name.clone(), schema));
    }
    // typify panics on some malformed input instead of returning an error;
    // turn that into an error so the caller can name the def.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut space = TypeSpace::new(&settings());
        space.add_ref_types(converted).map(|()| space.to_stream())
    }));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(result) => result.map_err(|error| anyhow!("{error}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            bail!("typify panicked: {message}")
        }
    }
}

/// Whether a def is an object with no properties (an empty params or result).
fn is_empty_object(def: &Value) -> bool {
    def.get("type").and_then(Value::as_str) == Some("object")
        && def
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.is_empty())
        && def.get("additionalProperties").is_none()
}

/// typify renders an object without properties as a newtype around a JSON
/// map; an empty struct says what the wire carries (`{}`), still accepts
/// unknown members, and renders in TypeScript as `Record<string, never>`.
fn replace_with_empty_struct(file: &mut syn::File, name: &str, def: &Value) -> Result<()> {
    let mentions = |ty: &syn::Type| -> bool {
        matches!(ty, syn::Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == name))
    };
    file.items.retain(|item| match item {
        syn::Item::Struct(item) => item.ident != name,
        syn::Item::Impl(item) => {
            let in_trait = item.trait_.as_ref().is_some_and(|(path, _)| {
                path.segments
                    .iter()
                    .any(|segment| match &segment.arguments {
                        syn::PathArguments::AngleBracketed(args) => args.args.iter().any(
                            |arg| matches!(arg, syn::GenericArgument::Type(ty) if mentions(ty)),
                        ),
                        _ => false,
                    })
            });
            !mentions(&item.self_ty) && !in_trait
        }
        _ => true,
    });
    let ident = format_ident!("{name}");
    let doc = def
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let item: syn::Item = syn::parse2(quote! {
        #[doc = #doc]
        #[cfg_attr(feature = "ts", derive(::ts_rs::TS))]
        #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct #ident {}
    })
    .with_context(|| format!("building the empty struct for def `{name}`"))?;
    file.items.push(item);
    Ok(())
}

/// Adds `ts(optional)` to every field serde skips when `None`, so the
/// TypeScript type says `field?: T` for the fields the wire may omit.
///
/// A nullable field with a schema `default` (typify: an `Option` with
/// `serde(default = "defaults::…")`) tells absent (the default) from `null`
/// (`None`), as `fs/remove.recursive` does for Codex. It is also skipped
/// when `None`, so a Rust caller leaving it unset gets the default rather
/// than sending `null`, and is `field?: T | null` in TypeScript, where a
/// caller can send either.
struct MarkOptionalFields;

impl VisitMut for MarkOptionalFields {
    fn visit_field_mut(&mut self, field: &mut syn::Field) {
        let serde_attribute_contains = |needle: &str| {
            field.attrs.iter().any(|attr| {
                attr.path().is_ident("serde") && quote!(#attr).to_string().contains(needle)
            })
        };
        let skipped_when_none = serde_attribute_contains("Option::is_none");
        let defaulted = serde_attribute_contains("\"defaults::");
        let is_option = quote!(#field).to_string().contains("Option <");
        if skipped_when_none {
            field
                .attrs
                .push(syn::parse_quote!(#[cfg_attr(feature = "ts", ts(optional))]));
        } else if defaulted && is_option {
            field.attrs.push(syn::parse_quote!(
                #[serde(skip_serializing_if = "::std::option::Option::is_none")]
            ));
            field.attrs.push(syn::parse_quote!(
                #[cfg_attr(feature = "ts", ts(optional = nullable))]
            ));
        }
    }
}

/// The function the `export-ts` binary calls to render every type with ts-rs.
fn typescript_export_fn(type_names: &[String]) -> TokenStream {
    let idents = type_names.iter().map(|name| format_ident!("{name}"));
    quote! {
        /// Every protocol type rendered as TypeScript by ts-rs: pairs of the
        /// file name (relative to the output directory) and its contents.
        ///
        /// # Errors
        /// Returns ts-rs's error when a type cannot be rendered.
        #[cfg(feature = "ts")]
        pub fn typescript_declarations(
            config: &::ts_rs::Config,
        ) -> ::std::result::Result<::std::vec::Vec<(::std::path::PathBuf, ::std::string::String)>, ::ts_rs::ExportError> {
            let mut files = ::std::vec::Vec::new();
            #(
                if let ::std::option::Option::Some(path) = <crate::#idents as ::ts_rs::TS>::output_path() {
                    files.push((path, <crate::#idents as ::ts_rs::TS>::export_to_string(config)?));
                }
            )*
            ::std::result::Result::Ok(files)
        }
    }
}

/// Converts a wire name (`process/closeStdin`) to its Rust names: a marker
/// type (`ProcessCloseStdin`), a constant (`PROCESS_CLOSE_STDIN_METHOD`) and a
/// snake-case identifier (`process_close_stdin`).
struct MethodNames {
    marker: syn::Ident,
    constant: syn::Ident,
    snake: syn::Ident,
}

fn method_names(wire: &str) -> MethodNames {
    let mut words: Vec<String> = Vec::new();
    for segment in wire.split('/') {
        let mut word = String::new();
        for ch in segment.chars() {
            if ch.is_ascii_uppercase() && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.push(ch.to_ascii_lowercase());
        }
        words.push(word);
    }
    let pascal: String = words
        .iter()
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect();
    MethodNames {
        marker: format_ident!("{pascal}"),
        constant: format_ident!("{}_METHOD", words.join("_").to_ascii_uppercase()),
        snake: format_ident!("{}", words.join("_")),
    }
}

fn method_table(schema: &Schema) -> Result<TokenStream> {
    let mut constants = Vec::new();
    let mut infos = Vec::new();
    let mut markers = Vec::new();
    let mut request_rows = Vec::new();
    let mut notification_rows = Vec::new();
    for method in &schema.methods {
        let Method {
            name,
            kind,
            direction,
            params,
            result,
        } = method;
        let names = method_names(name);
        if schema.defs.contains_key(&names.marker.to_string()) {
            bail!(
                "method `{name}`: its marker type `{}` clashes with a def of that name",
                names.marker
            );
        }
        let MethodNames {
            marker,
            constant,
            snake,
        } = names;
        let params_ident = format_ident!("{params}");
        let direction_tokens = match direction {
            Direction::ClientToServer => quote!(ClientToServer),
            Direction::ServerToClient => quote!(ServerToClient),
        };
        let doc_constant = format!("Wire name of the `{name}` {}.", kind_word(*kind));
        constants.push(quote! {
            #[doc = #doc_constant]
            pub const #constant: &str = #name;
        });
        let result_str = match result {
            Some(result) => quote!(::std::option::Option::Some(#result)),
            None => quote!(::std::option::Option::None),
        };
        let kind_tokens = match kind {
            MethodKind::Request => quote!(Request),
            MethodKind::Notification => quote!(Notification),
        };
        infos.push(quote! {
            MethodInfo {
                name: #constant,
                kind: MethodKind::#kind_tokens,
                direction: Direction::#direction_tokens,
                params: #params,
                result: #result_str,
            }
        });
        let doc_marker = format!("The `{name}` {}, as a type.", kind_word(*kind));
        match result {
            Some(result) => {
                let result_ident = format_ident!("{result}");
                markers.push(quote! {
                    #[doc = #doc_marker]
                    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
                    pub struct #marker;
                    impl Request for #marker {
                        const METHOD: &'static str = #constant;
                        const DIRECTION: Direction = Direction::#direction_tokens;
                        type Params = #params_ident;
                        type Response = #result_ident;
                    }
                });
                request_rows.push(quote! {
                    ($crate::#marker, #snake, #name, $crate::#params_ident, $crate::#result_ident, #direction_tokens)
                });
            }
            None => {
                markers.push(quote! {
                    #[doc = #doc_marker]
                    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
                    pub struct #marker;
                    impl Notification for #marker {
                        const METHOD: &'static str = #constant;
                        const DIRECTION: Direction = Direction::#direction_tokens;
                        type Params = #params_ident;
                    }
                });
                notification_rows.push(quote! {
                    ($crate::#marker, #snake, #name, $crate::#params_ident, #direction_tokens)
                });
            }
        }
    }
    let error_ident = format_ident!("{}", schema.error_def);
    let protocol_version = &schema.protocol_version;
    Ok(quote! {
        use crate::*;
        use crate::{Direction, MethodInfo, MethodKind, Notification, Request};

        /// The protocol version this crate speaks, as `initialize` reports it
        /// (the schema's `x-protocolVersion`).
        pub const PROTOCOL_VERSION: &str = #protocol_version;

        #(#constants)*

        /// Every method and notification of the protocol, in schema order.
        pub const METHODS: &[MethodInfo] = &[#(#infos),*];

        /// The JSON-RPC error object type (the schema's `x-error`).
        pub type WireError = #error_ident;

        #(#markers)*

        /// Calls `$callback!` with one `(Marker, snake_name, "wire/name", Params, Response, Direction)`
        /// tuple per request, so a consumer can handle every request and cannot miss one.
        #[macro_export]
        macro_rules! for_each_request {
            ($callback:ident) => {
                $callback! { #(#request_rows),* }
            };
        }

        /// Calls `$callback!` with one `(Marker, snake_name, "wire/name", Params, Direction)`
        /// tuple per notification.
        #[macro_export]
        macro_rules! for_each_notification {
            ($callback:ident) => {
                $callback! { #(#notification_rows),* }
            };
        }
    })
}

fn kind_word(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Request => "request",
        MethodKind::Notification => "notification",
    }
}
