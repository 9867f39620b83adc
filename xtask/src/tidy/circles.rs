//! The import-circle rule: within one crate, files do not import each other
//! in a circle. A file's edges come from the paths it names (see
//! [`super::paths`]), each resolved to the file of the module it names.
//!
//! Two kinds of edge never make a circle: a module using one of its
//! ancestors (a child reaching its parent's items through `super::` or
//! `crate::`), and a module using one of its descendants (a parent declaring
//! and re-exporting its children). What is left are edges between siblings
//! and cousins, and a circle of those is what the rule forbids.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::PathBuf;

use super::modules::{ModulePath, ModuleTree};
use super::paths::{NamedPath, named_paths};

/// An import from one file to another, with the first path that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edge {
    /// The importing file.
    pub(super) from: PathBuf,
    /// The imported file.
    pub(super) to: PathBuf,
    /// The path as written in `from`, `crate::a::B`.
    pub(super) via: String,
}

/// Files that import each other in a circle: one strongly connected
/// component of the import graph, and one circle through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Circle {
    /// Every file of the component, sorted.
    pub(super) files: Vec<PathBuf>,
    /// One circle through the component, starting and ending at its first file.
    pub(super) path: Vec<Edge>,
}

impl fmt::Display for Circle {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        write!(formatter, "{{{}}}", files.join(", "))?;
        for (index, edge) in self.path.iter().enumerate() {
            if index == 0 {
                write!(formatter, ": {}", edge.from.display())?;
            }
            write!(formatter, " -> {} (`{}`)", edge.to.display(), edge.via)?;
        }
        Ok(())
    }
}

/// The import circles of the crate `tree` describes, files that only exist
/// for tests left out.
pub(super) fn circles(tree: &ModuleTree) -> Vec<Circle> {
    let edges = edges(tree);
    let mut graph: BTreeMap<&PathBuf, Vec<&Edge>> = BTreeMap::new();
    for edge in &edges {
        graph.entry(&edge.from).or_default().push(edge);
    }
    strongly_connected(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|files| {
            let members: BTreeSet<&PathBuf> = files.iter().collect();
            let path = circle_through(&graph, &members, &files[0]);
            Circle { files, path }
        })
        .collect()
}

/// The edges between files that count for the rule, one per pair of files.
fn edges(tree: &ModuleTree) -> Vec<Edge> {
    let mut edges: BTreeMap<(PathBuf, PathBuf), String> = BTreeMap::new();
    for (from, file) in &tree.files {
        if file.test_only {
            continue;
        }
        for named in named_paths(&file.syntax, &file.module) {
            let Some(to) = resolve(tree, &named) else {
                continue;
            };
            let Some(target) = tree.files.get(&to) else {
                continue;
            };
            let related = to == *from
                || target.module.starts_with(&file.module)
                || file.module.starts_with(&target.module);
            if !related && !target.test_only {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| named.text());
            }
        }
    }
    edges
        .into_iter()
        .map(|((from, to), via)| Edge { from, to, via })
        .collect()
}

/// The file of the deepest module `named` goes through: `crate::a::b::C`
/// names the file of `a::b` when that is a module, else the file of `a`.
fn resolve(tree: &ModuleTree, named: &NamedPath) -> Option<PathBuf> {
    let mut module: ModulePath = Vec::new();
    let mut rest = named.segments.iter().peekable();
    match rest.next().map(String::as_str) {
        Some("crate") => {}
        Some("self") => module.clone_from(&named.module),
        Some("super") => {
            module.clone_from(&named.module);
            module.pop()?;
        }
        _ => return None,
    }
    while rest.peek().is_some_and(|segment| *segment == "super") {
        rest.next();
        module.pop()?;
    }
    let mut deepest = tree.modules.get(&module)?;
    for segment in rest {
        module.push(segment.clone());
        match tree.modules.get(&module) {
            Some(file) => deepest = file,
            None => break,
        }
    }
    Some(deepest.clone())
}

/// Tarjan's algorithm: the strongly connected components of `graph`, each
/// sorted.
fn strongly_connected(graph: &BTreeMap<&PathBuf, Vec<&Edge>>) -> Vec<Vec<PathBuf>> {
    #[derive(Default)]
    struct State<'a> {
        next_index: usize,
        index: BTreeMap<&'a PathBuf, usize>,
        lowest: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        components: Vec<Vec<PathBuf>>,
    }

    fn visit<'a>(
        node: &'a PathBuf,
        graph: &BTreeMap<&'a PathBuf, Vec<&'a Edge>>,
        state: &mut State<'a>,
    ) {
        state.index.insert(node, state.next_index);
        state.lowest.insert(node, state.next_index);
        state.next_index += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        for edge in graph.get(node).into_iter().flatten() {
            let next = &edge.to;
            if !state.index.contains_key(next) {
                visit(next, graph, state);
                let lowest = state.lowest[node].min(state.lowest[next]);
                state.lowest.insert(node, lowest);
            } else if state.on_stack.contains(next) {
                let lowest = state.lowest[node].min(state.index[next]);
                state.lowest.insert(node, lowest);
            }
        }
        if state.lowest[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            component.sort();
            state.components.push(component);
        }
    }

    let mut state = State::default();
    for node in graph.keys() {
        if !state.index.contains_key(*node) {
            visit(node, graph, &mut state);
        }
    }
    state.components.sort();
    state.components
}

/// The shortest circle from `start` back to itself inside `members`.
fn circle_through(
    graph: &BTreeMap<&PathBuf, Vec<&Edge>>,
    members: &BTreeSet<&PathBuf>,
    start: &PathBuf,
) -> Vec<Edge> {
    let mut reached_by: BTreeMap<&PathBuf, &Edge> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for edge in graph.get(node).into_iter().flatten() {
            if !members.contains(&edge.to) || reached_by.contains_key(&edge.to) {
                continue;
            }
            reached_by.insert(&edge.to, edge);
            if edge.to == *start {
                queue.clear();
                break;
            }
            queue.push_back(&edge.to);
        }
    }
    let mut path = Vec::new();
    let mut node = start;
    while let Some(edge) = reached_by.get(node) {
        path.push((*edge).clone());
        node = &edge.from;
        if node == start {
            break;
        }
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::tidy::workspace::in_memory;

    fn circles_of(files: &[(&str, &str)]) -> Vec<String> {
        let tree = ModuleTree::build(&in_memory(files), Path::new("src/lib.rs"));
        assert_eq!(tree.problems, Vec::<String>::new());
        circles(&tree).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn siblings_importing_each_other_are_a_circle() {
        assert_eq!(
            circles_of(&[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "use crate::b::B; pub struct A;"),
                ("src/b.rs", "pub struct B; fn f() { super::a::helper() }"),
            ]),
            [
                "{src/a.rs, src/b.rs}: src/a.rs -> src/b.rs (`crate::b::B`) -> src/a.rs (`super::a::helper`)"
            ]
        );
    }

    #[test]
    fn cousins_in_a_longer_circle_are_found_and_one_path_is_named() {
        assert_eq!(
            circles_of(&[
                ("src/lib.rs", "mod p; mod q; mod r;"),
                ("src/p/mod.rs", "mod x; pub use x::X;"),
                ("src/p/x.rs", "use crate::q::Q;"),
                ("src/q.rs", "use crate::r::R; use crate::p::X;"),
                ("src/r.rs", "use crate::p::x::X;"),
            ]),
            [
                "{src/p/x.rs, src/q.rs, src/r.rs}: src/p/x.rs -> src/q.rs (`crate::q::Q`) -> src/r.rs (`crate::r::R`) -> src/p/x.rs (`crate::p::x::X`)"
            ]
        );
    }

    #[test]
    fn parents_and_children_using_each_other_are_not_a_circle() {
        assert_eq!(
            circles_of(&[
                (
                    "src/lib.rs",
                    "mod a; pub use a::A; use crate::a::b::B; struct Root;"
                ),
                (
                    "src/a.rs",
                    "mod b; pub use self::b::B; pub struct A; use crate::Root;"
                ),
                (
                    "src/a/b.rs",
                    "use super::A; use crate::Root; use super::super::Root as R;"
                ),
            ]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn imports_in_tests_and_test_only_files_are_not_a_circle() {
        assert_eq!(
            circles_of(&[
                ("src/lib.rs", "mod a; mod b; #[cfg(test)] mod tests;"),
                (
                    "src/a.rs",
                    "use crate::b::B; #[cfg(test)] mod tests { use crate::tests::T; }"
                ),
                (
                    "src/b.rs",
                    "pub struct B; #[cfg(test)] mod tests { use crate::a::A; }"
                ),
                ("src/tests.rs", "use crate::a::A; use crate::b::B;"),
            ]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn inline_modules_resolve_to_their_file() {
        assert_eq!(
            circles_of(&[
                ("src/lib.rs", "mod a; mod b;"),
                (
                    "src/a.rs",
                    "pub mod inner { pub fn f() { super::super::b::g() } }"
                ),
                ("src/b.rs", "pub fn g() { crate::a::inner::f() }"),
            ]),
            [
                "{src/a.rs, src/b.rs}: src/a.rs -> src/b.rs (`super::super::b::g`) -> src/a.rs (`crate::a::inner::f`)"
            ]
        );
    }
}
