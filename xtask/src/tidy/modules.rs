//! The module tree of one crate: which file holds which module, found by
//! following `mod` declarations from the crate root the way rustc does, and
//! which files only exist for tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::{Attribute, Item, Meta};

use super::workspace::Sources;

/// A module's path from the crate root: `["validator", "report"]` for
/// `crate::validator::report`; empty for the root.
pub(super) type ModulePath = Vec<String>;

/// One source file reached from a crate root.
pub(super) struct ModuleFile {
    /// The module the file holds.
    pub(super) module: ModulePath,
    /// The file is compiled only for tests: it is declared under
    /// `#[cfg(test)]` (or inside a module that is), or it starts with
    /// `#![cfg(test)]`.
    pub(super) test_only: bool,
    /// The parsed file.
    pub(super) syntax: syn::File,
}

/// The modules of one crate.
#[derive(Default)]
pub(super) struct ModuleTree {
    /// Every file reached from the root, by path.
    pub(super) files: BTreeMap<PathBuf, ModuleFile>,
    /// Every module, inline ones included, with the file that holds it.
    pub(super) modules: BTreeMap<ModulePath, PathBuf>,
    /// Files that do not parse and `mod` declarations without a file: either
    /// means the tree is incomplete, so the checks must not pass quietly.
    pub(super) problems: Vec<String>,
}

impl ModuleTree {
    /// Follows the `mod` declarations from `root`, looking files up in `sources`.
    pub(super) fn build(sources: &Sources, root: &Path) -> Self {
        let mut tree = Self::default();
        tree.add_file(sources, root.to_path_buf(), Vec::new(), false, true);
        tree
    }

    /// Adds the file at `path`, holding `module`, and the modules it declares.
    /// `owns_directory` is true for crate roots and `mod.rs` files, whose
    /// child modules live beside them rather than in a directory named
    /// after them.
    fn add_file(
        &mut self,
        sources: &Sources,
        path: PathBuf,
        module: ModulePath,
        test_only: bool,
        owns_directory: bool,
    ) {
        let Some(text) = sources.get(&path) else {
            self.problems.push(format!(
                "module `{}` has no file {}",
                module.join("::"),
                path.display()
            ));
            return;
        };
        let syntax = match syn::parse_file(text) {
            Ok(syntax) => syntax,
            Err(error) => {
                self.problems
                    .push(format!("{} does not parse: {error}", path.display()));
                return;
            }
        };
        let test_only = test_only || is_cfg_test(&syntax.attrs);
        let file_directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let children_directory = if owns_directory || path.ends_with("mod.rs") {
            file_directory.clone()
        } else {
            let stem = path.file_stem().unwrap_or_default();
            file_directory.join(stem)
        };
        self.modules.insert(module.clone(), path.clone());
        let items = syntax.items.clone();
        self.files.insert(
            path.clone(),
            ModuleFile {
                module: module.clone(),
                test_only,
                syntax,
            },
        );
        let place = Place {
            file: &path,
            file_directory: &file_directory,
            directory: children_directory,
            module,
            inline: false,
            test_only,
        };
        self.add_items(sources, &items, &place);
    }

    /// Adds the modules declared by `items`, which sit at `place`.
    fn add_items(&mut self, sources: &Sources, items: &[Item], place: &Place<'_>) {
        for item in items {
            let Item::Mod(declaration) = item else {
                continue;
            };
            let name = declaration.ident.to_string();
            let mut module = place.module.clone();
            module.push(name.clone());
            let test_only = place.test_only || is_cfg_test(&declaration.attrs);
            let path_attribute = path_attribute(&declaration.attrs);
            match &declaration.content {
                Some((_, inner)) => {
                    self.modules
                        .insert(module.clone(), place.file.to_path_buf());
                    let directory = match &path_attribute {
                        Some(path) => place.directory.join(path),
                        None => place.directory.join(&name),
                    };
                    let inner_place = Place {
                        file: place.file,
                        file_directory: place.file_directory,
                        directory,
                        module,
                        inline: true,
                        test_only,
                    };
                    self.add_items(sources, inner, &inner_place);
                }
                None => {
                    let (path, owns_directory) = match &path_attribute {
                        // A `#[path]` at the top of a file is relative to
                        // the file's directory, inside an inline module to
                        // that module's directory.
                        Some(path) if place.inline => (place.directory.join(path), true),
                        Some(path) => (place.file_directory.join(path), true),
                        None => {
                            let flat = place.directory.join(format!("{name}.rs"));
                            let nested = place.directory.join(&name).join("mod.rs");
                            if sources.contains_key(&flat) || !sources.contains_key(&nested) {
                                (flat, false)
                            } else {
                                (nested, true)
                            }
                        }
                    };
                    self.add_file(sources, path, module, test_only, owns_directory);
                }
            }
        }
    }
}

/// Where a list of items sits: its file, and the module and directory of the
/// (possibly inline) module that holds it.
struct Place<'a> {
    file: &'a Path,
    file_directory: &'a Path,
    /// The directory in which the module's children have their files.
    directory: PathBuf,
    module: ModulePath,
    /// The items are inside an inline `mod name { ... }`.
    inline: bool,
    test_only: bool,
}

/// The attributes include `#[cfg(test)]` (or `#![cfg(test)]`).
pub(super) fn is_cfg_test(attributes: &[Attribute]) -> bool {
    attributes.iter().any(|attribute| match &attribute.meta {
        Meta::List(list) => list.path.is_ident("cfg") && list.tokens.to_string() == "test",
        _ => false,
    })
}

/// The value of a `#[path = "..."]` attribute.
fn path_attribute(attributes: &[Attribute]) -> Option<String> {
    attributes
        .iter()
        .find_map(|attribute| match &attribute.meta {
            Meta::NameValue(pair) if pair.path.is_ident("path") => match &pair.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                }) => Some(text.value()),
                _ => None,
            },
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidy::workspace::in_memory as sources;

    fn modules(tree: &ModuleTree) -> Vec<(String, String, bool)> {
        tree.files
            .iter()
            .map(|(path, file)| {
                (
                    path.display().to_string(),
                    file.module.join("::"),
                    file.test_only,
                )
            })
            .collect()
    }

    #[test]
    fn mod_declarations_are_followed_like_rustc_does() {
        let sources = sources(&[
            (
                "src/lib.rs",
                "mod flat; mod nested; #[cfg(test)] mod tests;",
            ),
            ("src/flat.rs", "mod child; mod inline { mod deep; }"),
            ("src/flat/child.rs", ""),
            ("src/flat/inline/deep.rs", ""),
            ("src/nested/mod.rs", "#[path = \"other.rs\"] mod renamed;"),
            ("src/nested/other.rs", "#![cfg(test)]"),
            ("src/tests.rs", "mod helper;"),
            ("src/tests/helper.rs", ""),
        ]);
        let tree = ModuleTree::build(&sources, Path::new("src/lib.rs"));
        assert_eq!(tree.problems, Vec::<String>::new());
        assert_eq!(
            modules(&tree),
            [
                (
                    "src/flat/child.rs".to_owned(),
                    "flat::child".to_owned(),
                    false
                ),
                (
                    "src/flat/inline/deep.rs".to_owned(),
                    "flat::inline::deep".to_owned(),
                    false
                ),
                ("src/flat.rs".to_owned(), "flat".to_owned(), false),
                ("src/lib.rs".to_owned(), String::new(), false),
                ("src/nested/mod.rs".to_owned(), "nested".to_owned(), false),
                (
                    "src/nested/other.rs".to_owned(),
                    "nested::renamed".to_owned(),
                    true
                ),
                (
                    "src/tests/helper.rs".to_owned(),
                    "tests::helper".to_owned(),
                    true
                ),
                ("src/tests.rs".to_owned(), "tests".to_owned(), true),
            ]
        );
        let inline = vec!["flat".to_owned(), "inline".to_owned()];
        assert_eq!(
            tree.modules.get(&inline),
            Some(&PathBuf::from("src/flat.rs"))
        );
    }

    #[test]
    fn a_missing_or_broken_file_is_a_problem() {
        let sources = sources(&[
            ("src/main.rs", "mod gone; mod broken;"),
            ("src/broken.rs", "fn ("),
        ]);
        let tree = ModuleTree::build(&sources, Path::new("src/main.rs"));
        assert_eq!(tree.problems.len(), 2, "{:?}", tree.problems);
        assert!(
            tree.problems[0].contains("src/gone.rs"),
            "{:?}",
            tree.problems
        );
        assert!(
            tree.problems[1].contains("src/broken.rs does not parse"),
            "{:?}",
            tree.problems
        );
    }
}
