//! The constants of `x-binaryFrames` in both languages: the negotiation's
//! field names, and per frame kind its code, its notification, its header
//! length, the offset of every fixed field, the longest `utf8` field its
//! length field allows, and the codes of its enum fields. The hand-written
//! codecs (`schema/src/binary_frame.rs`, `sdk-ts/src/binaryFrame.ts`) read
//! and write frames with these alone.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::binary_frames::{BinaryFrames, Field, FrameKind, WireType};

/// `SCREAMING_SNAKE` of a camelCase name (`processIdLength` is `PROCESS_ID_LENGTH`).
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (index, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_uppercase());
        } else {
            out.push('_');
        }
    }
    out
}

/// The Rust variant of an enum value, as typify names it (`timedOut` is `TimedOut`).
fn variant(value: &str) -> String {
    value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
        .collect()
}

/// The constant name prefix of a frame kind: `PROCESS_OUTPUT_FRAME`.
fn prefix(frame: &FrameKind) -> String {
    format!("{}_FRAME", screaming(&frame.name))
}

/// The largest value of the length field of a `utf8` field.
fn max_length(frame: &FrameKind, length: &str) -> Option<u64> {
    frame
        .fields
        .iter()
        .find(|field| field.name == length)
        .and_then(|field| field.wire.max())
}

/// The Rust module (without the header line): `schema/src/frame_layout.rs`.
pub fn rust(frames: Option<&BinaryFrames>) -> Result<String> {
    let mut items = Vec::new();
    if let Some(frames) = frames {
        let params_field = &frames.params_field;
        let result_field = &frames.result_field;
        items.push(quote! {
            /// The `initialize` params field that asks for binary frames.
            pub const BINARY_OUTPUT_PARAMS_FIELD: &str = #params_field;
            /// The `initialize` result field that says whether they were granted.
            pub const BINARY_OUTPUT_RESULT_FIELD: &str = #result_field;
        });
        for frame in &frames.frames {
            items.push(rust_frame(frame));
        }
    }
    let file = syn::parse2::<syn::File>(quote! {
        //! The layout of binary WebSocket frames (the schema's
        //! `x-binaryFrames`) as constants: frame kind codes, header lengths,
        //! field offsets (bytes from the frame's start; integers are
        //! big-endian) and enum codes.
        #(#items)*
    })
    .context("the frame constants do not parse")?;
    Ok(prettyplease::unparse(&file))
}

fn rust_frame(frame: &FrameKind) -> TokenStream {
    let prefix = prefix(frame);
    let name = &frame.name;
    let code = Literal::u8_unsuffixed(frame.code);
    let method = &frame.method;
    let header_length = Literal::usize_unsuffixed(frame.header_length);
    let kind_ident = format_ident!("{prefix}_KIND");
    let method_ident = format_ident!("{prefix}_METHOD");
    let header_ident = format_ident!("{prefix}_HEADER_LENGTH");
    let kind_doc = format!("The code of a `{name}` frame (`{method}`), its first byte.");
    let method_doc = format!("The notification a `{name}` frame stands for.");
    let header_doc = format!(
        "Bytes of a `{name}` frame before its first variable-length field: the shortest frame."
    );
    let mut items = vec![quote! {
        #[doc = #kind_doc]
        pub const #kind_ident: u8 = #code;
        #[doc = #method_doc]
        pub const #method_ident: &str = #method;
        #[doc = #header_doc]
        pub const #header_ident: usize = #header_length;
    }];
    for field in &frame.fields {
        items.push(rust_field(frame, &prefix, field));
    }
    quote!(#(#items)*)
}

fn rust_field(frame: &FrameKind, prefix: &str, field: &Field) -> TokenStream {
    let field_name = screaming(&field.name);
    let mut items = Vec::new();
    if let Some(offset) = field.offset {
        let offset = Literal::usize_unsuffixed(offset);
        let ident = format_ident!("{prefix}_{field_name}_OFFSET");
        let doc = format!(
            "Where field `{}` of a `{}` frame starts, in bytes.",
            field.name, frame.name
        );
        items.push(quote! {
            #[doc = #doc]
            pub const #ident: usize = #offset;
        });
    }
    if let WireType::Utf8 { length } = &field.wire
        && let Some(max) = max_length(frame, length)
    {
        let ident = format_ident!("{prefix}_{field_name}_MAX_LENGTH");
        let max = Literal::u64_unsuffixed(max);
        let doc = format!(
            "The longest field `{}` of a `{}` frame, in bytes (what `{length}` can hold); a longer one goes as text.",
            field.name, frame.name
        );
        items.push(quote! {
            #[doc = #doc]
            pub const #ident: usize = #max;
        });
    }
    if let Some(enum_def) = &field.enum_def {
        let enum_type = format_ident!("{enum_def}");
        let mut constants = Vec::new();
        let mut to_code = Vec::new();
        let mut from_code = Vec::new();
        for (value, code) in &field.codes {
            let ident = format_ident!("{prefix}_{field_name}_{}", screaming(value));
            let variant = format_ident!("{}", variant(value));
            let doc = format!("The code of `{value}` in field `{}`.", field.name);
            let code = Literal::u8_unsuffixed(*code);
            constants.push(quote! {
                #[doc = #doc]
                pub const #ident: u8 = #code;
            });
            to_code.push(quote!(crate::#enum_type::#variant => #ident));
            from_code
                .push(quote!(#ident => ::std::option::Option::Some(crate::#enum_type::#variant)));
        }
        let snake = format!("{}_{}", prefix, field_name).to_ascii_lowercase();
        let to_ident = format_ident!("{snake}_code");
        let from_ident = format_ident!("{snake}_from_code");
        let to_doc = format!(
            "The code of a `{enum_def}` in field `{}` of a `{}` frame.",
            field.name, frame.name
        );
        let from_doc = format!(
            "The `{enum_def}` of a code in field `{}` of a `{}` frame; `None` for a code the schema does not define.",
            field.name, frame.name
        );
        items.push(quote! {
            #(#constants)*
            #[doc = #to_doc]
            pub const fn #to_ident(value: crate::#enum_type) -> u8 {
                match value { #(#to_code),* }
            }
            #[doc = #from_doc]
            pub const fn #from_ident(code: u8) -> ::std::option::Option<crate::#enum_type> {
                match code {
                    #(#from_code,)*
                    _ => ::std::option::Option::None,
                }
            }
        });
    }
    quote!(#(#items)*)
}

/// The TypeScript module (without the header line): `binaryFrames.ts`.
pub fn typescript(frames: Option<&BinaryFrames>) -> String {
    let mut out = String::new();
    let Some(frames) = frames else {
        out.push_str("export {};\n");
        return out;
    };
    let mut imports: Vec<&str> = frames
        .frames
        .iter()
        .flat_map(|frame| frame.fields.iter())
        .filter_map(|field| field.enum_def.as_deref())
        .collect();
    imports.sort_unstable();
    imports.dedup();
    for name in imports {
        let _ = writeln!(out, "import type {{ {name} }} from \"./{name}.js\";");
    }
    let _ = write!(
        out,
        "
/** The `initialize` params field that asks for binary frames (the schema's `x-binaryFrames`). */
export const BINARY_OUTPUT_PARAMS_FIELD = {params};
/** The `initialize` result field that says whether they were granted. */
export const BINARY_OUTPUT_RESULT_FIELD = {result};
",
        params = serde_json::Value::from(frames.params_field.as_str()),
        result = serde_json::Value::from(frames.result_field.as_str()),
    );
    for frame in &frames.frames {
        typescript_frame(&mut out, frame);
    }
    out
}

fn typescript_frame(out: &mut String, frame: &FrameKind) {
    let prefix = prefix(frame);
    let name = &frame.name;
    let _ = write!(
        out,
        "
/** The code of a `{name}` frame (`{method}`), its first byte. */
export const {prefix}_KIND = {code};
/** The notification a `{name}` frame stands for. */
export const {prefix}_METHOD = \"{method}\";
/** Bytes of a `{name}` frame before its first variable-length field: the shortest frame. */
export const {prefix}_HEADER_LENGTH = {header};
",
        method = frame.method,
        code = frame.code,
        header = frame.header_length,
    );
    for field in &frame.fields {
        let field_name = screaming(&field.name);
        if let Some(offset) = field.offset {
            let _ = writeln!(
                out,
                "/** Where field `{}` of a `{name}` frame starts, in bytes (integers are big-endian). */\nexport const {prefix}_{field_name}_OFFSET = {offset};",
                field.name
            );
        }
        if let WireType::Utf8 { length } = &field.wire
            && let Some(max) = max_length(frame, length)
        {
            let _ = writeln!(
                out,
                "/** The longest field `{}` of a `{name}` frame, in bytes (what `{length}` can hold). */\nexport const {prefix}_{field_name}_MAX_LENGTH = {max};",
                field.name
            );
        }
        if let Some(enum_def) = &field.enum_def {
            let codes: Vec<String> = field
                .codes
                .iter()
                .map(|(value, code)| {
                    format!("  {}: {code},\n", serde_json::Value::from(value.as_str()))
                })
                .collect();
            let values: Vec<String> = field
                .codes
                .iter()
                .map(|(value, code)| {
                    format!("  {code}: {},\n", serde_json::Value::from(value.as_str()))
                })
                .collect();
            let _ = write!(
                out,
                "/** The code of each `{enum_def}` in field `{field}` of a `{name}` frame. */
export const {prefix}_{field_name}_CODES = {{
{codes}}} as const satisfies Readonly<Record<{enum_def}, number>>;
/** The `{enum_def}` of each code in field `{field}` of a `{name}` frame; a code not here is a protocol error. */
export const {prefix}_{field_name}_VALUES: Readonly<Partial<Record<number, {enum_def}>>> = {{
{values}}};
",
                field = field.name,
                codes = codes.concat(),
                values = values.concat(),
            );
        }
    }
}
