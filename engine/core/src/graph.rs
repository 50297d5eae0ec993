//! The dependency graph between the composed resources of one Composition.
//!
//! Built once per Composition (petgraph), immutable afterwards. Edges point from a dependency to
//! its dependent. Three kinds:
//! - [`EdgeKind::DependsOn`]: an explicit `dependsOn`;
//! - [`EdgeKind::ResourceRef`]: a `FromResourceFieldPath` patch reads another resource;
//! - [`EdgeKind::ThroughComposite`]: inferred data flow through the XR (a `ToCompositeFieldPath`
//!   writer and a `FromCompositeFieldPath`/`CombineFromComposite` reader of overlapping paths).
//!
//! The first two *gate* creation: a resource is withheld until its dependencies exist and are
//! Ready. Inferred edges only order deletion (and creation through `policy.fromFieldPath:
//! Required`, which render handles), so a Crossplane Composition keeps Crossplane's behaviour.
//! A cycle of gating edges is an error naming every member; an inferred edge that would close a
//! cycle is dropped and reported, because Crossplane accepts such Compositions.
//!
//! Orders are deterministic: ties are broken by declaration order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// Why one resource depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// The dependent's `dependsOn` names the dependency; gates creation.
    DependsOn,
    /// A `FromResourceFieldPath` patch of the dependent reads the dependency; gates creation.
    ResourceRef,
    /// The dependency writes an XR field (`ToCompositeFieldPath`) that the dependent reads;
    /// orders deletion only.
    ThroughComposite,
}

impl EdgeKind {
    /// True for edges that withhold creation until the dependency is Ready.
    pub fn gates_creation(self) -> bool {
        matches!(self, EdgeKind::DependsOn | EdgeKind::ResourceRef)
    }

    /// The name `strata graph` prints (`dependsOn`, `fromResource`, `throughComposite`).
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::DependsOn => "dependsOn",
            EdgeKind::ResourceRef => "fromResource",
            EdgeKind::ThroughComposite => "throughComposite",
        }
    }
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proposed edge: `from` must come before `to`. Indexes are declaration positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeSpec {
    /// The dependency.
    pub from: usize,
    /// The dependent.
    pub to: usize,
    /// Why; only gating kinds may form a cycle error, others are dropped instead.
    pub kind: EdgeKind,
    /// What created the edge, for people: the field path or the `dependsOn` entry.
    pub detail: String,
}

/// Why a graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Gating edges form a cycle.
    #[error("dependency cycle: {}", .members.join(" -> "))]
    Cycle {
        /// The resources on one cycle, in edge order, the first repeated at the end.
        members: Vec<String>,
    },
    /// A resource's `dependsOn` names itself.
    #[error("resource `{resource}` depends on itself")]
    SelfDependency {
        /// The resource.
        resource: String,
    },
    /// A resource's `dependsOn` names a resource the Composition does not declare.
    #[error("resource `{resource}` depends on unknown resource `{missing}`{hint}")]
    Unknown {
        /// The dependent.
        resource: String,
        /// The name it depends on.
        missing: String,
        /// A "did you mean" suffix, or empty.
        hint: String,
    },
    /// Two resources share a name; holds it.
    #[error("duplicate resource name `{0}`")]
    Duplicate(String),
}

/// An inferred edge that was not kept because it would have closed a cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedEdge {
    /// The dependency's name.
    pub from: String,
    /// The dependent's name.
    pub to: String,
    /// What inferred the edge: the field path through the XR.
    pub detail: String,
}

/// The immutable dependency graph of a Composition.
#[derive(Clone, Debug)]
pub struct DependencyGraph {
    graph: DiGraph<String, (EdgeKind, String)>,
    order: Vec<usize>,
    creation_waves: Vec<Vec<usize>>,
    deletion_waves: Vec<Vec<usize>>,
    dropped: Vec<DroppedEdge>,
}

impl DependencyGraph {
    /// Builds the graph from resource names (declaration order) and proposed edges.
    pub fn build(names: &[String], edges: &[EdgeSpec]) -> Result<Self, GraphError> {
        let mut graph: DiGraph<String, (EdgeKind, String)> =
            DiGraph::with_capacity(names.len(), edges.len());
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for name in names {
            if !seen.insert(name.as_str()) {
                return Err(GraphError::Duplicate(name.clone()));
            }
            graph.add_node(name.clone());
        }
        if let Some(e) = edges
            .iter()
            .find(|e| e.from >= names.len() || e.to >= names.len())
        {
            return Err(GraphError::Unknown {
                resource: names
                    .get(e.to)
                    .cloned()
                    .unwrap_or_else(|| format!("#{}", e.to)),
                missing: format!("#{}", e.from.max(e.to)),
                hint: String::new(),
            });
        }
        // Gating edges first: they must be acyclic.
        let mut sorted: Vec<&EdgeSpec> = edges.iter().collect();
        sorted.sort_by_key(|e| (e.kind, e.to, e.from));
        let has_inferred = sorted.iter().any(|e| !e.kind.gates_creation());
        let mut dropped = Vec::new();
        let mut previous: Option<(usize, usize, EdgeKind)> = None;
        for edge in sorted.iter().filter(|e| e.kind.gates_creation()) {
            if edge.from == edge.to {
                return Err(GraphError::SelfDependency {
                    resource: names[edge.to].clone(),
                });
            }
            // Edges are sorted, so a duplicate is always next to its twin.
            let key = (edge.from, edge.to, edge.kind);
            if previous != Some(key) {
                let (a, b) = (NodeIndex::new(edge.from), NodeIndex::new(edge.to));
                graph.add_edge(a, b, (edge.kind, edge.detail.clone()));
            }
            previous = Some(key);
        }
        // A topological order that misses nodes means a cycle; only then find and name it.
        let mut order = topological_order(&graph);
        if order.len() < graph.node_count() {
            let members = first_cycle(&graph).unwrap_or_default();
            return Err(GraphError::Cycle { members });
        }
        // Inferred edges: keep those that do not close a cycle.
        for edge in sorted.iter().filter(|e| !e.kind.gates_creation()) {
            if edge.from == edge.to {
                continue;
            }
            let (a, b) = (NodeIndex::new(edge.from), NodeIndex::new(edge.to));
            if graph.contains_edge(a, b) {
                continue;
            }
            if petgraph::algo::has_path_connecting(&graph, b, a, None) {
                dropped.push(DroppedEdge {
                    from: names[edge.from].clone(),
                    to: names[edge.to].clone(),
                    detail: edge.detail.clone(),
                });
                continue;
            }
            graph.add_edge(a, b, (edge.kind, edge.detail.clone()));
        }
        if has_inferred {
            order = topological_order(&graph);
        }
        let creation_waves = waves(&graph, &order, petgraph::Direction::Incoming);
        let mut reversed = order.clone();
        reversed.reverse();
        let deletion_waves = waves(&graph, &reversed, petgraph::Direction::Outgoing);
        Ok(Self {
            graph,
            order,
            creation_waves,
            deletion_waves,
            dropped,
        })
    }

    /// The number of resources (nodes).
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True for a Composition without resources.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The name of the resource at a declaration index; panics on an index out of range.
    pub fn name(&self, index: usize) -> &str {
        &self.graph[NodeIndex::new(index)]
    }

    /// Every resource, dependencies before dependents, ties by declaration order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Resources grouped into waves that can be created together, first wave first.
    pub fn creation_waves(&self) -> &[Vec<usize>] {
        &self.creation_waves
    }

    /// Resources grouped into waves that can be deleted together, first wave first: dependents
    /// before their dependencies.
    pub fn deletion_waves(&self) -> &[Vec<usize>] {
        &self.deletion_waves
    }

    /// The resources `index` depends on, with the edge kind, ties by declaration order.
    pub fn dependencies(&self, index: usize) -> Vec<(usize, EdgeKind)> {
        let mut deps: Vec<(usize, EdgeKind)> = self
            .graph
            .edges_directed(NodeIndex::new(index), petgraph::Direction::Incoming)
            .map(|e| (e.source().index(), e.weight().0))
            .collect();
        deps.sort();
        deps
    }

    /// Every kept edge as (from, to, kind, detail), sorted.
    pub fn edges(&self) -> Vec<(usize, usize, EdgeKind, &str)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_references()
            .map(|e| {
                (
                    e.source().index(),
                    e.target().index(),
                    e.weight().0,
                    e.weight().1.as_str(),
                )
            })
            .collect();
        edges.sort();
        edges
    }

    /// Inferred edges that were dropped because they would have closed a cycle.
    pub fn dropped_edges(&self) -> &[DroppedEdge] {
        &self.dropped
    }
}

/// Names the members of the first cycle found (in declaration order of its lowest member),
/// closing the loop: `a -> b -> a`.
fn first_cycle(graph: &DiGraph<String, (EdgeKind, String)>) -> Option<Vec<String>> {
    let mut cycles: Vec<Vec<NodeIndex>> = tarjan_scc(graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .collect();
    for scc in &mut cycles {
        scc.sort();
    }
    cycles.sort();
    let scc = cycles.into_iter().next()?;
    // Walk the cycle from its first member, staying inside the component.
    let start = scc[0];
    let mut path = vec![start];
    let mut current = start;
    loop {
        let mut next: Vec<NodeIndex> = graph
            .neighbors(current)
            .filter(|n| scc.contains(n))
            .collect();
        next.sort();
        let step = next
            .iter()
            .copied()
            .find(|n| !path.contains(n))
            .or_else(|| next.iter().copied().find(|n| *n == start));
        match step {
            Some(n) if n == start => break,
            Some(n) => {
                path.push(n);
                current = n;
            }
            None => break,
        }
    }
    // Members of the component not on the walked path are still part of the cycle(s).
    for member in &scc {
        if !path.contains(member) {
            path.push(*member);
        }
    }
    let mut names: Vec<String> = path.iter().map(|n| graph[*n].clone()).collect();
    names.push(graph[start].clone());
    Some(names)
}

/// Kahn's algorithm with a min-heap on declaration order.
fn topological_order(graph: &DiGraph<String, (EdgeKind, String)>) -> Vec<usize> {
    let n = graph.node_count();
    let mut indegree = vec![0usize; n];
    for e in graph.edge_references() {
        indegree[e.target().index()] += 1;
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|i| indegree[*i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors(NodeIndex::new(i)) {
            let j = next.index();
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    order
}

/// Groups nodes into waves: a node's wave is one more than the highest wave of its neighbours
/// in `towards` direction. `order` must visit those neighbours first.
fn waves(
    graph: &DiGraph<String, (EdgeKind, String)>,
    order: &[usize],
    towards: petgraph::Direction,
) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; graph.node_count()];
    for &i in order {
        level[i] = graph
            .neighbors_directed(NodeIndex::new(i), towards)
            .map(|n| level[n.index()] + 1)
            .max()
            .unwrap_or(0);
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); if graph.node_count() == 0 { 0 } else { depth }];
    for i in 0..graph.node_count() {
        out[level[i]].push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }
    fn edge(from: usize, to: usize, kind: EdgeKind) -> EdgeSpec {
        EdgeSpec {
            from,
            to,
            kind,
            detail: String::new(),
        }
    }

    #[test]
    fn orders_dependencies_first_with_ties_by_declaration() {
        let g = DependencyGraph::build(
            &names(&["c", "b", "a", "d"]),
            &[
                edge(2, 1, EdgeKind::DependsOn),
                edge(1, 0, EdgeKind::ResourceRef),
            ],
        )
        .expect("acyclic");
        assert_eq!(g.order(), &[2, 1, 0, 3]);
        assert_eq!(g.creation_waves(), &[vec![2, 3], vec![1], vec![0]]);
        assert_eq!(g.deletion_waves(), &[vec![0, 3], vec![1], vec![2]]);
    }

    #[test]
    fn a_cycle_names_every_member() {
        let err = DependencyGraph::build(
            &names(&["a", "b", "c", "d"]),
            &[
                edge(0, 1, EdgeKind::DependsOn),
                edge(1, 2, EdgeKind::DependsOn),
                edge(2, 0, EdgeKind::ResourceRef),
            ],
        )
        .expect_err("cycle");
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn self_and_duplicate_are_rejected() {
        let e = DependencyGraph::build(&names(&["a"]), &[edge(0, 0, EdgeKind::DependsOn)]);
        assert_eq!(
            e.expect_err("self").to_string(),
            "resource `a` depends on itself"
        );
        let e = DependencyGraph::build(&names(&["a", "a"]), &[]);
        assert_eq!(
            e.expect_err("dup").to_string(),
            "duplicate resource name `a`"
        );
    }

    #[test]
    fn inferred_edges_that_close_a_cycle_are_dropped_not_fatal() {
        let g = DependencyGraph::build(
            &names(&["a", "b"]),
            &[
                edge(0, 1, EdgeKind::DependsOn),
                edge(1, 0, EdgeKind::ThroughComposite),
            ],
        )
        .expect("inferred cycles are tolerated");
        assert_eq!(g.dropped_edges().len(), 1);
        assert_eq!(g.order(), &[0, 1]);
    }

    #[test]
    fn ten_thousand_nodes_build_and_sort() {
        let n = 10_000;
        let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let edges: Vec<EdgeSpec> = (1..n)
            .map(|i| edge((i * 7919) % i, i, EdgeKind::DependsOn))
            .collect();
        let g = DependencyGraph::build(&names, &edges).expect("acyclic");
        assert_eq!(g.order().len(), n);
        let mut position = vec![0; n];
        for (p, i) in g.order().iter().enumerate() {
            position[*i] = p;
        }
        for e in &edges {
            assert!(position[e.from] < position[e.to]);
        }
    }
}
