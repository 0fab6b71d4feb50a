//! Definitions in terms of themselves: `list a = [b]` with `list b = [a]`.
//!
//! Since names must be defined before use, every cycle also contains a use
//! above a definition; reporting the cycle as such says what is really
//! wrong (moving a definition up cannot fix it). Strongly connected
//! components are found with an iterative Tarjan, so a chain of 100 000
//! definitions cannot overflow the stack.

use std::collections::{HashMap, VecDeque};

use super::Checker;
use crate::diag::{Diagnostic, codes, list};
use crate::span::Span;
use crate::syntax::ast;

/// The most references a cycle report lists.
const MAX_SHOWN: usize = 6;

impl Checker<'_, '_> {
    /// Reports each cycle among `definitions` (this file's first
    /// definitions of each name, in order) and records its members in
    /// `self.cyclic`.
    pub(super) fn report_cycles(&mut self, definitions: &[&ast::Item]) {
        let index: HashMap<&str, usize> = definitions
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Some((definition_name(item)?.name.as_str(), i)))
            .collect();
        // Edges: each reference to a definition of this file, with its span.
        let edges: Vec<Vec<(usize, Span)>> = definitions
            .iter()
            .map(|item| {
                let mut refs = Vec::new();
                references(item, &mut refs);
                refs.into_iter()
                    .filter_map(|r| Some((*index.get(r.name.as_str())?, r.span)))
                    .collect()
            })
            .collect();
        for (number, component) in components(&edges).into_iter().enumerate() {
            let first = component[0];
            let self_loop = edges[first].iter().any(|&(to, _)| to == first);
            if component.len() == 1 && !self_loop {
                continue;
            }
            let names: Vec<&ast::Ident> = component
                .iter()
                .filter_map(|&i| definition_name(definitions[i]))
                .collect();
            for name in &names {
                self.cyclic.insert(name.name.clone(), number);
            }
            let path = cycle_path(&edges, &component);
            let is_list = matches!(definitions[first], ast::Item::List(_));
            self.cycle_error(definitions, &names, is_list, &path);
        }
    }

    fn cycle_error(
        &mut self,
        definitions: &[&ast::Item],
        names: &[&ast::Ident],
        is_list: bool,
        path: &[(usize, usize, Span)],
    ) {
        let name = |i: usize| definition_name(definitions[i]).map_or("?", |n| n.name.as_str());
        let message = match names {
            [one] => format!(
                "{} `{}` is defined in terms of itself",
                if is_list { "list" } else { "macro" },
                one.name
            ),
            _ => {
                let mut shown: Vec<String> = names
                    .iter()
                    .take(MAX_SHOWN)
                    .map(|n| format!("`{}`", n.name))
                    .collect();
                if names.len() > MAX_SHOWN {
                    shown.truncate(MAX_SHOWN - 1);
                    shown.push(format!("{} others", names.len() - (MAX_SHOWN - 1)));
                }
                format!("{} are defined in terms of each other", list(&shown, "and"))
            }
        };
        let Some(&(from, to, span)) = path.first() else {
            return;
        };
        let refers = |from: usize, to: usize| {
            if from == to {
                format!("`{}` refers to itself here", name(from))
            } else {
                format!("`{}` refers to `{}` here", name(from), name(to))
            }
        };
        let mut diagnostic =
            Diagnostic::error(codes::DEFINITION_CYCLE, message, span, refers(from, to));
        for &(from, to, span) in path.iter().skip(1).take(MAX_SHOWN - 1) {
            diagnostic = diagnostic.with_secondary(span, refers(from, to));
        }
        self.error(diagnostic.with_help(
            "a list or macro can only use names defined above it, so its expansion is finite; break the cycle",
        ));
    }
}

fn definition_name(item: &ast::Item) -> Option<&ast::Ident> {
    match item {
        ast::Item::List(l) => Some(&l.name),
        ast::Item::Macro(m) => Some(&m.name),
        _ => None,
    }
}

/// Every name a definition's body mentions (some are not definitions:
/// `pid1` in `ancestor(pid1, …)`; the caller keeps only definitions).
fn references<'a>(item: &'a ast::Item, out: &mut Vec<&'a ast::Ident>) {
    match item {
        ast::Item::List(l) => out.extend(l.items.iter().filter_map(|v| match v {
            ast::Value::Name(n) => Some(n),
            ast::Value::Literal(_) => None,
        })),
        ast::Item::Macro(m) => expr_references(&m.body, out),
        _ => {}
    }
}

/// Recursion is bounded by the parser's operator limit per item.
fn expr_references<'a>(expr: &'a ast::Expr, out: &mut Vec<&'a ast::Ident>) {
    match &expr.kind {
        ast::ExprKind::Name(n) => out.push(n),
        ast::ExprKind::Call(call) => call_references(call, out),
        ast::ExprKind::And(a, b) | ast::ExprKind::Or(a, b) => {
            expr_references(a, out);
            expr_references(b, out);
        }
        ast::ExprKind::Not(a) | ast::ExprKind::Paren(a) => expr_references(a, out),
    }
}

/// The names a call's arguments refer to (lists), those of a call among them too
/// (`ancestor(any, exe(daemons))`). Recursion is bounded like [`expr_references`]'s: each
/// call has a `(`.
fn call_references<'a>(call: &'a ast::Call, out: &mut Vec<&'a ast::Ident>) {
    for arg in &call.args {
        match arg {
            ast::Arg::Ident(n) => out.push(n),
            ast::Arg::Call(inner) => call_references(inner, out),
            _ => {}
        }
    }
}

/// Tarjan's strongly connected components, iteratively. Each component is
/// sorted (so its first member is its first definition in the file), and
/// components are in order of their first member.
fn components(edges: &[Vec<(usize, Span)>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut out) = (Vec::new(), Vec::new());
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge to follow)
        let mut work = vec![(root, 0usize)];
        while let Some(&(v, e)) = work.last() {
            if e == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&(w, _)) = edges[v].get(e) {
                if let Some(top) = work.last_mut() {
                    top.1 += 1;
                }
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out.sort_unstable_by_key(|c| c[0]);
    out
}

/// A shortest cycle through the component's first member, as
/// `(from, to, reference span)` steps.
fn cycle_path(edges: &[Vec<(usize, Span)>], component: &[usize]) -> Vec<(usize, usize, Span)> {
    let start = component[0];
    let member = |v: usize| component.binary_search(&v).is_ok();
    let mut parent: HashMap<usize, (usize, Span)> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut last = None;
    'search: while let Some(v) = queue.pop_front() {
        for &(w, span) in &edges[v] {
            if w == start {
                last = Some((v, span));
                break 'search;
            }
            if member(w) && !parent.contains_key(&w) {
                parent.insert(w, (v, span));
                queue.push_back(w);
            }
        }
    }
    let Some((mut v, span)) = last else {
        return Vec::new();
    };
    let mut path = vec![(v, start, span)];
    while v != start {
        let Some(&(p, span)) = parent.get(&v) else {
            break;
        };
        path.push((p, v, span));
        v = p;
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_of_a_long_chain_and_a_ring() {
        let s = Span::default();
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let edges = vec![
            vec![(1, s)],
            vec![(2, s)],
            vec![(0, s)],
            vec![(3, s)],
            vec![(0, s)],
        ];
        assert_eq!(components(&edges), [vec![0, 1, 2], vec![3], vec![4]]);
        let path = cycle_path(&edges, &[0, 1, 2]);
        let steps: Vec<(usize, usize)> = path.iter().map(|&(a, b, _)| (a, b)).collect();
        assert_eq!(steps, [(0, 1), (1, 2), (2, 0)]);
        let n = 200_000;
        let chain: Vec<Vec<(usize, Span)>> = (0..n).map(|i| vec![((i + 1) % n, s)]).collect();
        assert_eq!(components(&chain).len(), 1);
    }
}
