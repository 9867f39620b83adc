//! The module paths a file names: every `use` and every path in code that
//! starts with `crate`, `super` or `self`, with the module it appears in.
//! Items under `#[cfg(test)]` are left out: tests may import freely.

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{ImplItem, Item, UseTree};

use super::modules::{ModulePath, is_cfg_test};

/// A path as written, resolved later against the module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NamedPath {
    /// The module the path appears in (an inline module counts).
    pub(super) module: ModulePath,
    /// Its segments, starting with `crate`, `super` or `self`.
    pub(super) segments: Vec<String>,
}

impl NamedPath {
    /// The path as Rust text, `crate::a::B`.
    pub(super) fn text(&self) -> String {
        self.segments.join("::")
    }
}

/// The crate-relative paths of `file`, which holds `module`.
pub(super) fn named_paths(file: &syn::File, module: &ModulePath) -> Vec<NamedPath> {
    let mut collector = Collector {
        module: module.clone(),
        found: Vec::new(),
    };
    for item in &file.items {
        collector.visit_item(item);
    }
    collector.found
}

/// Walks a file, keeping track of the inline module it is in.
struct Collector {
    module: ModulePath,
    found: Vec<NamedPath>,
}

impl Collector {
    fn record(&mut self, segments: Vec<String>) {
        let relative = segments
            .first()
            .is_some_and(|first| matches!(first.as_str(), "crate" | "super" | "self"));
        if relative {
            self.found.push(NamedPath {
                module: self.module.clone(),
                segments,
            });
        }
    }

    /// Records each path of a `use` tree, `prefix` being the segments above it.
    fn record_use(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.record_use(&path.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(name) => {
                let mut segments = prefix.clone();
                // `use crate::a::{self}` names `crate::a`.
                if name.ident != "self" {
                    segments.push(name.ident.to_string());
                }
                self.record(segments);
            }
            UseTree::Rename(rename) => {
                let mut segments = prefix.clone();
                if rename.ident != "self" {
                    segments.push(rename.ident.to_string());
                }
                self.record(segments);
            }
            UseTree::Glob(_) => self.record(prefix.clone()),
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.record_use(tree, prefix);
                }
            }
        }
    }

    /// Records the paths in a macro's tokens, which syn leaves unparsed:
    /// `crate`, `super` or `self` followed by `::` and names. `$crate` paths
    /// belong to whoever expands the macro and are skipped.
    fn record_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while index < tokens.len() {
            match &tokens[index] {
                TokenTree::Group(group) => self.record_tokens(group.stream()),
                TokenTree::Ident(ident)
                    if matches!(ident.to_string().as_str(), "crate" | "super" | "self")
                        && !follows_dollar(&tokens, index) =>
                {
                    let mut segments = vec![ident.to_string()];
                    let mut next = index + 1;
                    while let (Some(TokenTree::Punct(first)), Some(TokenTree::Punct(second))) =
                        (tokens.get(next), tokens.get(next + 1))
                    {
                        let Some(TokenTree::Ident(name)) = tokens.get(next + 2) else {
                            break;
                        };
                        if first.as_char() != ':' || second.as_char() != ':' {
                            break;
                        }
                        segments.push(name.to_string());
                        next += 3;
                    }
                    if segments.len() > 1 {
                        self.record(segments);
                    }
                    index = next;
                    continue;
                }
                _ => {}
            }
            index += 1;
        }
    }
}

/// The token before `index` is a `$`.
fn follows_dollar(tokens: &[TokenTree], index: usize) -> bool {
    index > 0 && matches!(&tokens[index - 1], TokenTree::Punct(punct) if punct.as_char() == '$')
}

/// The attributes of an item, for the `#[cfg(test)]` check.
fn item_attributes(item: &Item) -> &[syn::Attribute] {
    match item {
        Item::Const(item) => &item.attrs,
        Item::Enum(item) => &item.attrs,
        Item::ExternCrate(item) => &item.attrs,
        Item::Fn(item) => &item.attrs,
        Item::ForeignMod(item) => &item.attrs,
        Item::Impl(item) => &item.attrs,
        Item::Macro(item) => &item.attrs,
        Item::Mod(item) => &item.attrs,
        Item::Static(item) => &item.attrs,
        Item::Struct(item) => &item.attrs,
        Item::Trait(item) => &item.attrs,
        Item::TraitAlias(item) => &item.attrs,
        Item::Type(item) => &item.attrs,
        Item::Union(item) => &item.attrs,
        Item::Use(item) => &item.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast Item) {
        if is_cfg_test(item_attributes(item)) {
            return;
        }
        match item {
            // A declaration `mod name;` is the parent owning its child, not
            // a use of it; an inline module's items are in that module.
            Item::Mod(module) => {
                if let Some((_, items)) = &module.content {
                    self.module.push(module.ident.to_string());
                    for item in items {
                        self.visit_item(item);
                    }
                    self.module.pop();
                }
            }
            Item::Use(item) => self.record_use(&item.tree, &mut Vec::new()),
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attributes = match item {
            ImplItem::Const(item) => &item.attrs,
            ImplItem::Fn(item) => &item.attrs,
            ImplItem::Type(item) => &item.attrs,
            ImplItem::Macro(item) => &item.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_cfg_test(attributes) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments = path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect();
            self.record(segments);
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.record_tokens(mac.tokens.clone());
    }

    // `pub(crate)`, `pub(super)` and `pub(in path)` say who may see an item,
    // not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(source: &str, module: &[&str]) -> Vec<(String, String)> {
        let file = syn::parse_file(source).expect("the example parses");
        let module: ModulePath = module.iter().map(|name| (*name).to_owned()).collect();
        named_paths(&file, &module)
            .into_iter()
            .map(|path| (path.module.join("::"), path.text()))
            .collect()
    }

    #[test]
    fn uses_code_paths_and_macro_bodies_are_collected() {
        let source = r#"
            use std::fmt;
            use crate::{a::{self, B as Bee}, c::*};
            use super::sibling::Thing;
            pub(crate) fn f(x: crate::types::X) -> self::child::Y {
                let _ = self.field;
                println!("{}", crate::names::NAME);
                macro_rules! m { () => { $crate::hidden::Z } }
                super::g()
            }
            mod inline { use super::super::up::U; }
        "#;
        assert_eq!(
            texts(source, &["top"]),
            [
                ("top", "crate::a"),
                ("top", "crate::a::B"),
                ("top", "crate::c"),
                ("top", "super::sibling::Thing"),
                ("top", "crate::types::X"),
                ("top", "self::child::Y"),
                ("top", "self"),
                ("top", "crate::names::NAME"),
                ("top", "super::g"),
                ("top::inline", "super::super::up::U"),
            ]
            .map(|(module, path)| (module.to_owned(), path.to_owned()))
        );
    }

    #[test]
    fn test_only_items_are_skipped() {
        let source = r#"
            #[cfg(test)]
            use crate::only_for_tests::Helper;
            struct S;
            impl S {
                #[cfg(test)]
                fn helper() { crate::fixtures::make(); }
            }
            #[cfg(test)]
            mod tests { use crate::anything::At; }
        "#;
        assert_eq!(texts(source, &[]), []);
    }
}
